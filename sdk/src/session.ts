import { ImError } from './errors.js';
import { bytesToHex, hexToBytes, type Hex } from './hex.js';
import { addressOf, personalSign, randomPrivateKey } from './keys.js';
import type { Signer } from './signer.js';
import { getJson, setJson, type KeyValueStorage } from './storage.js';

/** SPEC section 2: the exact text the wallet signs to delegate to a session key (full-width `，` and `：`). */
export function delegationText(sessionAddress: string, createdAtMs: number, expiresAtMs: number): string {
  return `授权 ${sessionAddress} 代理签名，创建时间：${createdAtMs}, 过期时间：${expiresAtMs}`;
}

/** A session key with the wallet's delegation: what signs every message and, in place of the wallet, logins. */
export interface SessionKey {
  /** The wallet that delegated (as the signer reported it). */
  owner: string;
  privateKey: Hex;
  address: string;
  createdAt: number;
  expiresAt: number;
  delegationMessage: string;
  delegationSig: string;
}

/** Signs a new delegation with the wallet (one wallet prompt) for a fresh (or given) session key. */
export async function createSession(signer: Signer, opts: { lifetimeMs?: number; now?: number; privateKey?: string } = {}): Promise<SessionKey> {
  const key = opts.privateKey ? hexToBytes(opts.privateKey) : randomPrivateKey();
  const address = addressOf(key);
  const createdAt = opts.now ?? Date.now();
  const expiresAt = createdAt + (opts.lifetimeMs ?? DEFAULT_LIFETIME_MS);
  const delegationMessage = delegationText(address, createdAt, expiresAt);
  const delegationSig = await signer.signMessage(delegationMessage);
  return { owner: signer.address, privateKey: bytesToHex(key), address, createdAt, expiresAt, delegationMessage, delegationSig };
}

/** Signs bytes or text with the session key (EIP-191). */
export function sessionSign(session: SessionKey, message: string | Uint8Array): Hex {
  return personalSign(hexToBytes(session.privateKey), message);
}

/** One week; the server allows at most MAX_DELEGATION_MS (31 days by default). */
export const DEFAULT_LIFETIME_MS = 7 * 24 * 3600_000;

export interface SessionManagerOptions {
  signer: Signer;
  storage: KeyValueStorage;
  lifetimeMs?: number;
  /** Renew when less than this is left (default: a tenth of the lifetime, at least 10 minutes). */
  renewBeforeMs?: number;
  now?: () => number;
}

/**
 * Keeps one session key per wallet in storage and reuses it until it is near expiry, then has the wallet
 * delegate a new one. Concurrent callers share one renewal (one wallet prompt).
 */
export class SessionManager {
  private pending: Promise<SessionKey> | null = null;
  private current: SessionKey | null = null;

  constructor(private readonly opts: SessionManagerOptions) {}

  private get key(): string {
    return `session:${this.opts.signer.address.toLowerCase()}`;
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private usable(s: SessionKey | null): s is SessionKey {
    if (!s || s.owner.toLowerCase() !== this.opts.signer.address.toLowerCase()) return false;
    const lifetime = s.expiresAt - s.createdAt;
    const margin = this.opts.renewBeforeMs ?? Math.max(600_000, Math.floor(lifetime / 10));
    return this.now() < s.expiresAt - margin && this.now() >= s.createdAt;
  }

  /** A session key valid for at least the renewal margin: the kept one, or a newly delegated one. */
  async get(): Promise<SessionKey> {
    if (this.usable(this.current)) return this.current;
    const stored = await getJson<SessionKey>(this.opts.storage, this.key);
    if (this.usable(stored)) return (this.current = stored);
    return this.renew();
  }

  /** Delegates a new session key now (even if the current one is still good). */
  renew(): Promise<SessionKey> {
    this.pending ??= (async () => {
      try {
        const s = await createSession(this.opts.signer, { lifetimeMs: this.opts.lifetimeMs ?? DEFAULT_LIFETIME_MS, now: this.now() });
        await setJson(this.opts.storage, this.key, s);
        this.current = s;
        return s;
      } finally {
        this.pending = null;
      }
    })();
    return this.pending;
  }

  /** Forgets the kept key (logout). */
  async clear(): Promise<void> {
    this.current = null;
    await this.opts.storage.remove(this.key);
  }
}

export function assertSession(s: SessionKey, at: number): void {
  if (at < s.createdAt || at > s.expiresAt) throw new ImError('DELEGATION_EXPIRED', 'the session key is not valid at this time');
}
