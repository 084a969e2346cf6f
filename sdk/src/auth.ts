import { createSiweMessage } from 'viem/siwe';
import { ImError, toImError } from './errors.js';
import { request, type HttpOptions } from './http.js';
import { sessionSign, type SessionManager } from './session.js';
import type { Signer } from './signer.js';
import { getJson, setJson, type KeyValueStorage } from './storage.js';

export interface LoginResult {
  token: string;
  address: string;
  expiresAt: number;
}

export interface AuthOptions extends HttpOptions {
  signer: Signer;
  storage: KeyValueStorage;
  /** When given, logins are signed by the session key with its delegation: no wallet prompt per login. */
  sessions?: SessionManager;
  /** SIWE `domain`: must be one the server accepts (SIWE_DOMAINS; default the Host the request goes to, port included). */
  domain?: string;
  /** SIWE `uri` (default: the base URL's origin). */
  uri?: string;
  chainId?: number;
  statement?: string;
  /** Renew when less than this is left of the token (default 60 s). */
  renewBeforeMs?: number;
  now?: () => number;
}

/**
 * Sign-In with Ethereum (EIP-4361, message built by viem's maintained `createSiweMessage`) and the
 * token it yields: kept in storage, reused, renewed before it expires. Concurrent callers share one login.
 */
export class Auth {
  private current: LoginResult | null = null;
  private pending: Promise<LoginResult> | null = null;

  constructor(private readonly opts: AuthOptions) {}

  private get key(): string {
    return `token:${this.opts.baseUrl}:${this.opts.signer.address.toLowerCase()}`;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private fresh(t: LoginResult | null): t is LoginResult {
    return !!t && t.address.toLowerCase() === this.opts.signer.address.toLowerCase() && t.expiresAt - (this.opts.renewBeforeMs ?? 60_000) > this.now();
  }

  /** A token with time left: the kept one, or a new login. */
  async token(): Promise<string> {
    if (this.fresh(this.current)) return this.current.token;
    const stored = await getJson<LoginResult>(this.opts.storage, this.key);
    if (this.fresh(stored)) return (this.current = stored).token;
    return (await this.login()).token;
  }

  /** The last login's result, if any. */
  get session(): LoginResult | null {
    return this.current;
  }

  /** Forgets the kept token (after the server refused it). */
  async invalidate(token?: string): Promise<void> {
    if (token === undefined || this.current?.token === token) this.current = null;
    await this.opts.storage.remove(this.key);
  }

  /** Logs in now: nonce, SIWE message, signature (session key or wallet), `POST /auth/login`. */
  login(): Promise<LoginResult> {
    this.pending ??= this.doLogin().finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async doLogin(): Promise<LoginResult> {
    const { nonce } = (await request(this.opts, 'GET', '/auth/nonce')) as { nonce: string };
    const base = new URL(this.opts.baseUrl);
    let message: string;
    try {
      message = createSiweMessage({
        domain: this.opts.domain ?? base.host,
        address: this.opts.signer.address as `0x${string}`,
        statement: this.opts.statement ?? 'Sign in to Relation ONE',
        uri: this.opts.uri ?? base.origin,
        version: '1',
        chainId: this.opts.chainId ?? 1,
        nonce,
        issuedAt: new Date(this.now()),
      });
    } catch (e) {
      throw new ImError('INVALID_ARGUMENT', `cannot build the SIWE message: ${toImError(e).message}`, { cause: e });
    }
    let body: Record<string, string>;
    if (this.opts.sessions) {
      const s = await this.opts.sessions.get();
      body = { message, signature: sessionSign(s, message), delegationMessage: s.delegationMessage, delegationSig: s.delegationSig };
    } else {
      body = { message, signature: await this.opts.signer.signMessage(message) };
    }
    const r = (await request(this.opts, 'POST', '/auth/login', { body })) as LoginResult;
    if (typeof r?.token !== 'string' || typeof r.expiresAt !== 'number') throw new ImError('BAD_RESPONSE', 'login answer without token');
    this.current = r;
    await setJson(this.opts.storage, this.key, r);
    return r;
  }

  /** Revokes the token on the server (closes its sockets with 4002) and forgets it. */
  async logout(): Promise<void> {
    const t = this.current ?? (await getJson<LoginResult>(this.opts.storage, this.key));
    if (t) {
      try {
        await request(this.opts, 'POST', '/auth/logout', { token: t.token });
      } catch (e) {
        if (!(e instanceof ImError) || (e.code !== 'TOKEN_EXPIRED' && e.code !== 'UNAUTHENTICATED')) throw e;
      }
    }
    await this.invalidate();
  }
}
