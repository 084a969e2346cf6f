import { Redis } from 'ioredis';
import pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { AppError } from '../../errors/app-error.js';

/** What is limited: per client address (nonce, login, send over every face) and per user (userSend). */
export type LimitName = 'nonce' | 'login' | 'send' | 'userSend' | 'mlsClaim';

/** Where the limits count (RATE_LIMIT_STORE): this process, or a store every process of the deployment shares. */
export type SharedLimitStore =
  | { kind: 'memory' }
  | { kind: 'redis'; url: string; prefix: string }
  | { kind: 'postgres'; url: string; prefix: string };

export interface RateLimitOptions {
  /** Client addresses no limit applies to (RATE_LIMIT_EXEMPT; default none). */
  exempt: readonly string[];
  noncePerMin: number;
  loginPerMin: number;
  sendPerSec: number;
  userSendPerSec: number;
  /** Default memory. */
  store?: SharedLimitStore;
  /** Longest a shared store may take to count one request before this process counts it on its own. */
  storeTimeoutMs?: number;
  /** The shared store failed or was slow for one request (a warn log, rate-limited, and a metric). */
  onStoreError?: (err: unknown) => void;
  /** POST /mls/key-packages/claim per caller per minute (RATE_MLS_CLAIM_PER_MIN). */
  mlsClaimPerMin?: number;
}

interface Limiter {
  /** The shared store's limiter; null with RATE_LIMIT_STORE=memory. */
  shared: RateLimiterAbstract | null;
  /** This process's own count: the limiter with memory, the stand-in while the shared store fails. */
  local: RateLimiterMemory;
}

/** The table the PostgreSQL limiters share (key = `<prefix>:<limit>:<address or user>`). */
export const PG_TABLE = 'rim_rate_limits';

/**
 * The abuse bounds of every face, as rate-limiter-flexible fixed windows (one record per key, dropped when
 * its window ends). A refusal is RATE_LIMITED with `details.retryAfterMs`: REST answers 429 with
 * `Retry-After`, the WebSocket faces an error frame carrying it. A limit of 0 is off.
 *
 * With RATE_LIMIT_STORE=memory each process counts its own (N processes allow N times the rates). With
 * `redis` or `postgres` every process counts in one shared store, so the rates hold for the deployment;
 * a key over its limit is then also remembered in this process until its window ends, so a flood is
 * refused without a store round trip. When the shared store fails or takes longer than storeTimeoutMs,
 * the request is counted by this process's own limiter instead (fail over to per-process limits, not
 * open and not closed; docs/operations.md) and onStoreError is told.
 */
export class RateLimits {
  private readonly exempt: ReadonlySet<string>;
  private readonly limiters = new Map<LimitName, Limiter>();
  private readonly redis: Redis | null = null;
  private readonly pool: pg.Pool | null = null;
  private readonly timeoutMs: number;
  private readonly onStoreError: (err: unknown) => void;
  readonly storeKind: SharedLimitStore['kind'];

  constructor(opts: RateLimitOptions) {
    this.exempt = new Set(opts.exempt);
    const store = opts.store ?? { kind: 'memory' };
    this.storeKind = store.kind;
    this.timeoutMs = opts.storeTimeoutMs ?? 200;
    this.onStoreError = opts.onStoreError ?? (() => undefined);
    if (store.kind === 'redis') {
      // Fail fast while disconnected (no offline queue, no retries of a command); reconnect in the background.
      this.redis = new Redis(store.url, {
        lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, connectTimeout: 2000,
        retryStrategy: (times: number) => Math.min(250 * times, 2000),
      });
      this.redis.on('error', () => undefined); // each failed count is reported through onStoreError
    } else if (store.kind === 'postgres') {
      // A pool of its own: counting never waits behind the store's commits, nor they behind it.
      this.pool = new pg.Pool({
        connectionString: store.url, max: 4, connectionTimeoutMillis: Math.max(1000, this.timeoutMs),
        statement_timeout: Math.max(1000, this.timeoutMs * 5), idleTimeoutMillis: 30_000,
      });
      this.pool.on('error', () => undefined);
    }
    const add = (name: LimitName, points: number, duration: number): void => {
      if (points <= 0) return;
      const local = new RateLimiterMemory({ points, duration, keyPrefix: name });
      let shared: RateLimiterAbstract | null = null;
      if (store.kind === 'redis') {
        shared = new RateLimiterRedis({
          storeClient: this.redis, points, duration, keyPrefix: `${store.prefix}:rl:${name}`,
          rejectIfRedisNotReady: true, inMemoryBlockOnConsumed: points + 1,
        });
      } else if (store.kind === 'postgres') {
        shared = new RateLimiterPostgres({
          storeClient: this.pool, storeType: 'pool', tableName: PG_TABLE, tableCreated: true, clearExpiredByTimeout: true,
          points, duration, keyPrefix: `${store.prefix}:${name}`, inMemoryBlockOnConsumed: points + 1,
        });
      }
      this.limiters.set(name, { shared, local });
    };
    add('nonce', opts.noncePerMin, 60);
    add('login', opts.loginPerMin, 60);
    add('send', opts.sendPerSec, 1);
    add('userSend', opts.userSendPerSec, 1);
    add('mlsClaim', opts.mlsClaimPerMin ?? 0, 60);
  }

  /**
   * Connects the shared store (creates the PostgreSQL table). A store that cannot be reached does not stop
   * the start: the limits count per process until it can (onStoreError says so).
   */
  async start(): Promise<void> {
    try {
      if (this.redis) await this.redis.connect();
      if (this.pool) {
        await this.pool.query(`CREATE TABLE IF NOT EXISTS ${PG_TABLE} (key varchar(255) PRIMARY KEY, points integer NOT NULL DEFAULT 0, expire bigint)`).catch((e: { code?: string }) => {
          if (e.code !== '23505') throw e; // another process created it at the same moment
        });
      }
    } catch (e) {
      this.onStoreError(e);
    }
  }

  async close(): Promise<void> {
    for (const l of this.limiters.values()) {
      const t = (l.shared as unknown as { _clearExpiredTimeoutId?: NodeJS.Timeout } | null)?._clearExpiredTimeoutId;
      if (t) clearTimeout(t);
    }
    if (this.redis) this.redis.disconnect();
    await this.pool?.end().catch(() => undefined);
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
      if (limiter.shared) await this.shared(limiter.shared, key);
      else await limiter.local.consume(key);
    } catch (e) {
      if (e instanceof RateLimiterRes) throw refusal(name, e);
      if (!limiter.shared) throw e;
      this.onStoreError(e);
      try {
        await limiter.local.consume(key);
      } catch (e2) {
        if (e2 instanceof RateLimiterRes) throw refusal(name, e2);
        throw e2;
      }
    }
  }

  private shared(limiter: RateLimiterAbstract, key: string): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the shared rate-limit store did not answer within ${this.timeoutMs} ms`)), this.timeoutMs);
      limiter.consume(key).then((r) => { clearTimeout(timer); resolve(r); }, (e: unknown) => { clearTimeout(timer); reject(e); });
    });
  }
}

function refusal(name: LimitName, e: RateLimiterRes): AppError {
  const retryAfterMs = Math.max(1, Math.ceil(e.msBeforeNext));
  return new AppError('RATE_LIMITED', `${LABEL[name]}: retry in ${retryAfterMs} ms`, { retryAfterMs, limit: name });
}

const LABEL: Record<LimitName, string> = {
  nonce: 'too many nonces from this address',
  login: 'too many logins from this address',
  send: 'too many sends from this address',
  userSend: 'too many sends by this user',
  mlsClaim: 'too many KeyPackage claims by this user',
};
