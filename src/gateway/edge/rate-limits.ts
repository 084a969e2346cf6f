import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { AppError } from '../../errors/app-error.js';

/** What is limited: per client address (nonce, login, send over every face) and per user (userSend). */
export type LimitName = 'nonce' | 'login' | 'send' | 'userSend' | 'mlsClaim';

export interface RateLimitOptions {
  /** Client addresses no limit applies to (default loopback, see RATE_LIMIT_EXEMPT). */
  exempt: readonly string[];
  noncePerMin: number;
  loginPerMin: number;
  sendPerSec: number;
  userSendPerSec: number;
  /** POST /mls/key-packages/claim per caller per minute (RATE_MLS_CLAIM_PER_MIN). */
  mlsClaimPerMin?: number;
}

/**
 * The abuse bounds of every face, with rate-limiter-flexible's in-memory fixed windows (one record per
 * key, dropped when its window ends, so memory follows the active clients). A refusal is RATE_LIMITED
 * with `details.retryAfterMs`: REST answers 429 with `Retry-After`, the WebSocket faces an error frame
 * carrying it. A limit of 0 is off. Limits are per process (several processes: each counts its own).
 */
export class RateLimits {
  private readonly exempt: ReadonlySet<string>;
  private readonly limiters = new Map<LimitName, RateLimiterMemory>();

  constructor(opts: RateLimitOptions) {
    this.exempt = new Set(opts.exempt);
    const add = (name: LimitName, points: number, duration: number): void => {
      if (points > 0) this.limiters.set(name, new RateLimiterMemory({ points, duration, keyPrefix: name }));
    };
    add('nonce', opts.noncePerMin, 60);
    add('login', opts.loginPerMin, 60);
    add('send', opts.sendPerSec, 1);
    add('userSend', opts.userSendPerSec, 1);
    add('mlsClaim', opts.mlsClaimPerMin ?? 0, 60);
  }

  /** True for a client address no limit applies to. */
  isExempt(address: string): boolean {
    return this.exempt.has(address);
  }

  /**
   * Counts one request of `key` (a client address, or a user for userSend) against `name`; throws
   * RATE_LIMITED past the limit. `address` is the client address the request came from: an exempt one
   * is never limited, whatever the key.
   */
  async take(name: LimitName, key: string, address: string): Promise<void> {
    const limiter = this.limiters.get(name);
    if (!limiter || this.exempt.has(address)) return;
    try {
      await limiter.consume(key);
    } catch (e) {
      if (!(e instanceof RateLimiterRes)) throw e;
      const retryAfterMs = Math.max(1, Math.ceil(e.msBeforeNext));
      throw new AppError('RATE_LIMITED', `${LABEL[name]}: retry in ${retryAfterMs} ms`, { retryAfterMs, limit: name });
    }
  }
}

const LABEL: Record<LimitName, string> = {
  nonce: 'too many nonces from this address',
  login: 'too many logins from this address',
  send: 'too many sends from this address',
  userSend: 'too many sends by this user',
  mlsClaim: 'too many KeyPackage claims by this user',
};
