import pg from 'pg';

/**
 * Connections to PostgreSQL for every component that keeps state there (the store, the archive's state):
 * one pool per component, built the same way. Integers come back as JavaScript numbers: every bigint the
 * project stores (positions, seqs, milliseconds) stays far below 2^53, and a value that does not is
 * refused loudly rather than rounded.
 */
export interface PoolOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Connections in the pool. */
  max?: number;
  /** Name shown in pg_stat_activity.application_name. */
  applicationName?: string;
  /** How long to wait for a connection (a free one of the pool, or a new one's handshake) before a query fails (ms). */
  connectTimeoutMs?: number;
  /**
   * Longest one statement may run (ms): the server cancels it then (statement_timeout), and the client
   * gives up on its answer a second later (a server that hangs without answering at all, as a frozen or
   * unreachable host does, cancels nothing). Unset: no limit.
   */
  statementTimeoutMs?: number;
  /**
   * Send a checked-out connection's queries without waiting for each answer (pg's pipeline mode).
   * Statements of one transaction issued together then cost one round trip.
   */
  pipeline?: boolean;
  /** Called when an idle connection breaks (the server restarted, the network dropped): the pool replaces it. */
  onIdleError?: (err: Error) => void;
}

const INT8 = 20;
function int8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`PostgreSQL bigint ${text} is beyond 2^53`);
  return n;
}
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8 && format !== 'binary' ? int8 : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

export function createPool(opts: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.max ?? 10,
    application_name: opts.applicationName ?? 'relation-im',
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30_000,
    // TCP keepalive: a database host that vanishes without a reset is noticed instead of waited on forever.
    keepAlive: true,
    types,
    pipeline: opts.pipeline ?? false,
    ...(opts.statementTimeoutMs ? { statement_timeout: opts.statementTimeoutMs, query_timeout: opts.statementTimeoutMs + 1000 } : {}),
  });
  // Without a listener an idle connection's error (server restart) would crash the process; the pool
  // drops that connection and opens a new one for the next query.
  pool.on('error', (err) => opts.onIdleError?.(err));
  return pool;
}

/** Where a URL points, without its password, for messages. */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** Why the database could not be reached, said plainly; thrown at start so the server exits with it. */
export class DatabaseUnavailableError extends Error {
  constructor(url: string, cause: unknown) {
    const why = cause instanceof Error ? ((cause as NodeJS.ErrnoException).code ?? cause.message) : String(cause);
    super(`PostgreSQL at ${describeUrl(url)} cannot be reached (${why}${cause instanceof Error && (cause as NodeJS.ErrnoException).code ? `: ${cause.message}` : ''}); check DATABASE_URL and that the server is running`);
    this.name = 'DatabaseUnavailableError';
  }
}

/** Opens one connection to prove the database answers; throws DatabaseUnavailableError if not. */
export async function checkConnection(pool: pg.Pool, url: string): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (err) {
    throw new DatabaseUnavailableError(url, err);
  }
}

/** A connection taken from the pool for several statements; `release` gives it back (or drops a broken one). */
export interface Checkout {
  client: pg.PoolClient;
  release(broken?: Error): void;
}

/**
 * Takes a connection for several statements. A checked-out connection that breaks between two queries
 * (the server restarted) emits 'error', which without a listener would end the process: the listener
 * keeps the error, and the connection is then dropped instead of returned to the pool.
 */
export async function checkout(pool: pg.Pool): Promise<Checkout> {
  const client = await pool.connect();
  let lost: Error | undefined;
  const onError = (err: Error): void => { lost = err; };
  client.on('error', onError);
  return {
    client,
    release(broken?: Error): void {
      const err = broken ?? lost;
      // A dropped connection keeps the listener: it may still report its end, and it is never reused.
      if (!err) client.removeListener('error', onError);
      client.release(err);
    },
  };
}

/**
 * Runs `fn` in one transaction on one connection: COMMIT when it resolves, ROLLBACK when it throws. A
 * connection that failed mid-transaction is destroyed instead of returned to the pool.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const { client: c, release } = await checkout(pool);
  let broken: Error | undefined;
  try {
    await c.query(begin);
    const out = await fn(c);
    await c.query('COMMIT');
    return out;
  } catch (err) {
    try {
      await c.query('ROLLBACK');
    } catch (e) {
      broken = e as Error;
    }
    throw err;
  } finally {
    release(broken);
  }
}

/** A failure that may pass if tried again: the connection or the server went away, or it is starting. */
export function isTransient(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return err instanceof Error && /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Query read timeout/.test(err.message);
  // node errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE, ...), class 08 (connection exception),
  // 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now), 53300 (too many connections),
  // 57014 (statement cancelled: statement_timeout, a database too slow to answer).
  return code.startsWith('E') || code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300' || code === '57014';
}
