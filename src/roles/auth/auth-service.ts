import { createHash, randomBytes } from 'node:crypto';
import { SiweMessage } from 'siwe';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../clock.js';
import type { SignatureVerifier } from '../identity/verifier.js';
import { parseDelegation } from '../../protocol/delegation.js';
import { rfc3339Ms } from './rfc3339.js';
import type { PushBus } from '../../bus/hub.js';
import type { Store } from '../../store/port.js';

export interface LoginRequest {
  /** The EIP-4361 message text that was signed. */
  message: string;
  /** EIP-191 signature of `message` by the wallet, or by a session key when a delegation is given. */
  signature: string;
  delegationMessage?: string;
  delegationSig?: string;
}

export interface Session {
  address: string;
  expiresAt: number;
  tokenHash: string;
}

export interface AuthOptions {
  tokenTtlMs: number;
  nonceTtlMs: number;
  maxDelegationMs: number;
  /** Accepted SIWE domains; empty: the Host the request was sent to. */
  siweDomains: readonly string[];
}

/**
 * Reads a signed-in message: EIP-4361 grammar (the siwe library) and every time field strictly. Throws
 * SIWE_INVALID; nothing else. The one parser of sign-in text (scripts/fuzz-long.ts runs it).
 */
export function readSiwe(message: string): { siwe: SiweMessage; times: ReturnType<typeof siweTimes> } {
  let siwe: SiweMessage;
  try {
    siwe = new SiweMessage(message);
  } catch {
    throw new AppError('SIWE_INVALID', 'message is not a valid EIP-4361 message');
  }
  return { siwe, times: siweTimes(siwe) };
}

/** The SIWE time fields, each read strictly (RFC 3339); SIWE_INVALID names the first that cannot be read. */
function siweTimes(siwe: SiweMessage): { issuedAt?: number; expirationTime?: number; notBefore?: number } {
  const out: { issuedAt?: number; expirationTime?: number; notBefore?: number } = {};
  for (const [field, label] of [['issuedAt', 'Issued At'], ['expirationTime', 'Expiration Time'], ['notBefore', 'Not Before']] as const) {
    const text = siwe[field];
    if (text === undefined) continue;
    const ms = typeof text === 'string' ? rfc3339Ms(text) : null;
    if (ms === null) throw new AppError('SIWE_INVALID', `${label} is not a readable RFC 3339 time (leap seconds are refused)`);
    out[field] = ms;
  }
  return out;
}

const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/**
 * Sign-In with Ethereum: a single-use nonce, then a signed EIP-4361 message (by the wallet, or by a
 * session key with its delegation) buys an opaque bearer token. Only the token's SHA-256 is stored, so
 * a leaked database holds no usable token. Tokens expire and are revoked by logout.
 */
export class AuthService {
  constructor(
    private readonly store: Store,
    private readonly verifier: SignatureVerifier,
    private readonly push: PushBus,
    private readonly clock: Clock,
    private readonly opts: AuthOptions,
    /** The operator's ban list: a banned address can neither sign in nor use a token it holds. */
    private readonly bans?: { isBanned(address: string): boolean },
  ) {}

  async nonce(): Promise<{ nonce: string; expiresAt: number }> {
    const nonce = randomBytes(16).toString('hex');
    const expiresAt = this.clock.now() + this.opts.nonceTtlMs;
    await this.store.putNonce(nonce, expiresAt);
    return { nonce, expiresAt };
  }

  async login(req: LoginRequest, host: string | undefined): Promise<{ token: string; address: string; expiresAt: number }> {
    const now = this.clock.now();
    // Every time field is read strictly before anything else: one that cannot be read refuses the login
    // (never skipped, never NaN further down). A refused login spends no nonce and writes nothing.
    const { siwe, times } = readSiwe(req.message);
    const domains = this.opts.siweDomains.length > 0 ? this.opts.siweDomains : host ? [host] : [];
    if (!domains.includes(siwe.domain)) throw new AppError('SIWE_INVALID', `domain "${siwe.domain}" is not accepted here`);
    if (times.expirationTime !== undefined && times.expirationTime <= now) throw new AppError('SIWE_INVALID', 'the message has expired');
    if (times.notBefore !== undefined && times.notBefore > now) throw new AppError('SIWE_INVALID', 'the message is not valid yet');
    const address = siwe.address.toLowerCase();
    const signer = this.verifier.recoverText(req.message, req.signature);
    let expiresAt = now + this.opts.tokenTtlMs;
    if (req.delegationMessage !== undefined || req.delegationSig !== undefined) {
      if (req.delegationMessage === undefined || req.delegationSig === undefined) {
        throw new AppError('INVALID_DELEGATION', 'delegationMessage and delegationSig go together');
      }
      const d = parseDelegation(req.delegationMessage, this.opts.maxDelegationMs);
      if (now < d.createdAt || now > d.expiresAt) throw new AppError('DELEGATION_EXPIRED', 'the delegation is not valid now');
      if (this.verifier.recoverText(req.delegationMessage, req.delegationSig) !== address) {
        throw new AppError('INVALID_SIGNATURE', 'delegationSig does not recover to the SIWE address');
      }
      if (signer !== d.sessionAddress) throw new AppError('INVALID_SIGNATURE', 'signature does not recover to the delegated session key');
      expiresAt = Math.min(expiresAt, d.expiresAt);
    } else if (signer !== address) {
      throw new AppError('INVALID_SIGNATURE', 'signature does not recover to the SIWE address');
    }
    if (times.expirationTime !== undefined) expiresAt = Math.min(expiresAt, times.expirationTime);
    // After the signatures: only the address's owner learns it is banned. Still before the nonce is spent.
    if (this.bans?.isBanned(address)) throw new AppError('BANNED');
    if (!(await this.store.consumeNonce(siwe.nonce, now))) throw new AppError('NONCE_INVALID');
    const token = randomBytes(32).toString('base64url');
    await this.store.putToken(hashToken(token), { address, expiresAt, revoked: false });
    return { token, address, expiresAt };
  }

  /** The session behind a bearer token; throws UNAUTHENTICATED or TOKEN_EXPIRED. */
  async authenticate(token: string | undefined): Promise<Session> {
    if (!token) throw new AppError('UNAUTHENTICATED');
    const tokenHash = hashToken(token);
    const rec = await this.store.getToken(tokenHash);
    if (!rec) throw new AppError('UNAUTHENTICATED', 'unknown token');
    if (rec.revoked || rec.expiresAt <= this.clock.now()) throw new AppError('TOKEN_EXPIRED');
    if (this.bans?.isBanned(rec.address)) throw new AppError('BANNED');
    return { address: rec.address, expiresAt: rec.expiresAt, tokenHash };
  }

  /** Revokes the token and closes its WebSocket connections (close 4002). */
  async logout(session: Session): Promise<void> {
    await this.store.revokeToken(session.tokenHash);
    this.push.revokeToken(session.tokenHash);
  }
}
