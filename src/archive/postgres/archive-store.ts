import type pg from 'pg';
import { checkConnection, createPool, inTransaction } from '../../store/postgres/db.js';
import { migrate } from '../../store/postgres/migrate.js';
import type {
  ArchivableEvent, ArchiveReaderSpec, ArchiveStore, BundleRecord, BundleStatus, Lease, NewBundle, PendingSummary,
} from '../port.js';
import { ChainConflictError, FencedError } from '../port.js';
import { ARCHIVE_COMPONENT, ARCHIVE_PG_MIGRATIONS } from './schema.js';

interface BundleRow {
  seq: number; status: string; prev_tx: string | null; first_pos: number; last_pos: number; count: number;
  first_ts: number; last_ts: number; bytes: number; sha256: string; file: string; cut_at: number;
  txid: string | null; tx_json: string | null; upload_state: string | null; accepted_at: number | null;
  confirmations: number; confirmed_at: number | null; reposts: number; replaced_txids: string[];
}

const toBundle = (r: BundleRow): BundleRecord => ({
  seq: r.seq, status: r.status as BundleStatus, prevTx: r.prev_tx, firstPos: r.first_pos, lastPos: r.last_pos,
  count: r.count, firstTs: r.first_ts, lastTs: r.last_ts, bytes: r.bytes, sha256: r.sha256, file: r.file,
  cutAt: r.cut_at, txid: r.txid, txJson: r.tx_json, uploadState: r.upload_state, acceptedAt: r.accepted_at,
  confirmations: r.confirmations, confirmedAt: r.confirmed_at, reposts: r.reposts, replacedTxids: r.replaced_txids,
});

const LEASE = 'archiver';
/** Rows read per query while planning a bundle (sizes only, never bodies). */
const PLAN_PAGE = 10_000;

export interface PostgresArchiveStoreOptions {
  /** The store's DATABASE_URL: the archive reads its `events` and keeps its tables beside them. */
  url: string;
  poolMax?: number;
  onIdleError?: (err: Error) => void;
}

/**
 * The archive state in PostgreSQL, beside the PostgreSQL store's tables, shared by every process on that
 * database: the lease row elects one archiver among them, and its fencing token guards every write.
 *
 * Fencing: each write runs in one transaction that first locks the lease row (`SELECT … FOR UPDATE`) and
 * checks the writer's token, then writes. A new holder's `acquireLease` updates that same row, so it waits
 * for a fenced write under way to commit, and every write after it sees the new token: a holder that lost
 * the lease can never write after its successor took over.
 */
export class PostgresArchiveStore implements ArchiveStore {
  private constructor(private readonly pool: pg.Pool, private readonly url: string) {}

  /** Connects, migrates the archive's tables (the store's own migration creates `events`) and returns the store. */
  static async open(opts: PostgresArchiveStoreOptions): Promise<PostgresArchiveStore> {
    const pool = createPool({ url: opts.url, max: opts.poolMax ?? 4, applicationName: 'relation-im archive', ...(opts.onIdleError ? { onIdleError: opts.onIdleError } : {}) });
    try {
      await checkConnection(pool, opts.url);
      await migrate(pool, ARCHIVE_COMPONENT, ARCHIVE_PG_MIGRATIONS);
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw e;
    }
    return new PostgresArchiveStore(pool, opts.url);
  }

  private async one<R extends pg.QueryResultRow>(text: string, values: unknown[] = [], c: pg.Pool | pg.PoolClient = this.pool): Promise<R | undefined> {
    return (await c.query<R>(text, values)).rows[0];
  }

  async pendingSince(afterPos: number): Promise<PendingSummary> {
    const r = await this.one<{ n: number; bytes: number | null; last: number | null }>(
      'SELECT count(*)::int8 AS n, sum(body_bytes)::int8 AS bytes, max(pos) AS last FROM events WHERE face = 0 AND pos > $1', [afterPos]);
    return { count: r?.n ?? 0, bodyBytes: r?.bytes ?? 0, lastPos: r?.last ?? afterPos };
  }

  async eventsBetween(afterPos: number, uptoPos: number, limit: number): Promise<ArchivableEvent[]> {
    return (await this.pool.query<ArchivableEvent>('SELECT pos, ts, body FROM events WHERE face = 0 AND pos > $1 AND pos <= $2 ORDER BY pos LIMIT $3',
      [afterPos, uptoPos, limit])).rows;
  }

  async planBundle(afterPos: number, maxBytes: number) {
    let plan: { count: number; bodyBytes: number; firstPos: number; lastPos: number; firstTs: number; lastTs: number } | null = null;
    let cursor = afterPos;
    for (;;) {
      const rows = (await this.pool.query<{ pos: number; ts: number; len: number }>(
        'SELECT pos, ts, body_bytes AS len FROM events WHERE face = 0 AND pos > $1 ORDER BY pos LIMIT $2', [cursor, PLAN_PAGE])).rows;
      for (const r of rows) {
        if (plan === null) {
          plan = { count: 1, bodyBytes: r.len, firstPos: r.pos, lastPos: r.pos, firstTs: r.ts, lastTs: r.ts };
          continue;
        }
        if (2 + plan.bodyBytes + r.len + plan.count > maxBytes) return plan;
        plan.count += 1;
        plan.bodyBytes += r.len;
        plan.lastPos = r.pos;
        plan.lastTs = r.ts;
      }
      if (rows.length < PLAN_PAGE) return plan;
      cursor = (rows[rows.length - 1] as { pos: number }).pos;
    }
  }

  async latestBundle(): Promise<BundleRecord | null> {
    const r = await this.one<BundleRow>('SELECT * FROM archive_bundles ORDER BY seq DESC LIMIT 1');
    return r ? toBundle(r) : null;
  }

  async getBundle(seq: number): Promise<BundleRecord | null> {
    const r = await this.one<BundleRow>('SELECT * FROM archive_bundles WHERE seq = $1', [seq]);
    return r ? toBundle(r) : null;
  }

  async head(): Promise<BundleRecord | null> {
    const r = await this.one<BundleRow>(`SELECT * FROM archive_bundles WHERE status = 'confirmed' ORDER BY seq DESC LIMIT 1`);
    return r ? toBundle(r) : null;
  }

  /** Runs `fn` in a transaction that holds the lease row locked and has checked `token` is current. */
  private fenced<T>(token: number, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, async (c) => {
      const lease = await this.one<{ token: number; expires_at: number }>('SELECT token, expires_at FROM archive_lease WHERE name = $1 FOR UPDATE', [LEASE], c);
      if (!lease || lease.token !== token || lease.expires_at <= 0) {
        throw new FencedError(`archive write with fencing token ${token} refused: the lease's token is ${lease && lease.expires_at > 0 ? lease.token : 'none (released)'}`);
      }
      return fn(c);
    });
  }

  /** Updates one bundle; false when no row matched. */
  private async update(c: pg.PoolClient, sql: string, values: unknown[]): Promise<boolean> {
    return ((await c.query(sql, values)).rowCount ?? 0) === 1;
  }

  private async statusOf(c: pg.PoolClient, seq: number): Promise<BundleRow | undefined> {
    return this.one<BundleRow>('SELECT * FROM archive_bundles WHERE seq = $1', [seq], c);
  }

  async insertBundle(b: NewBundle, token: number): Promise<BundleRecord> {
    return this.fenced(token, async (c) => {
      await this.insertChecked(c, b);
      return toBundle(await this.statusOf(c, b.seq) as BundleRow);
    });
  }

  async adoptBundle(b: NewBundle, txid: string, at: number, token: number): Promise<BundleRecord> {
    return this.fenced(token, async (c) => {
      const existing = await this.statusOf(c, b.seq);
      if (existing?.txid !== txid) {
        await this.insertChecked(c, b);
        await c.query(`UPDATE archive_bundles SET status = 'confirmed', txid = $1, accepted_at = $2, confirmed_at = $2 WHERE seq = $3`, [txid, at, b.seq]);
      }
      return toBundle(await this.statusOf(c, b.seq) as BundleRow);
    });
  }

  /** The chain rules of insertBundle, inside the fenced transaction (the lease row lock serialises writers). */
  private async insertChecked(c: pg.PoolClient, b: NewBundle): Promise<void> {
    const last = await this.one<BundleRow>('SELECT * FROM archive_bundles ORDER BY seq DESC LIMIT 1', [], c);
    const expectSeq = (last?.seq ?? 0) + 1;
    if (b.seq !== expectSeq) throw new ChainConflictError(`bundle ${b.seq} cannot follow bundle ${last?.seq ?? 0}`);
    if (last && last.status !== 'confirmed') throw new ChainConflictError(`bundle ${last.seq} is not confirmed yet`);
    if ((last?.txid ?? null) !== b.prevTx) throw new ChainConflictError(`bundle ${b.seq} must link to ${last?.txid ?? 'nothing'}`);
    if (last && b.firstPos <= last.last_pos) throw new ChainConflictError(`bundle ${b.seq} overlaps bundle ${last.seq}`);
    const between = await this.one<{ n: number }>('SELECT count(*)::int8 AS n FROM events WHERE face = 0 AND pos > $1 AND pos < $2', [last?.last_pos ?? 0, b.firstPos], c);
    if ((between?.n ?? 0) > 0) throw new ChainConflictError(`bundle ${b.seq} would leave events unarchived`);
    await c.query(`INSERT INTO archive_bundles (seq, status, prev_tx, first_pos, last_pos, count, first_ts, last_ts, bytes, sha256, file, cut_at)
      VALUES ($1, 'cut', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    [b.seq, b.prevTx, b.firstPos, b.lastPos, b.count, b.firstTs, b.lastTs, b.bytes, b.sha256, b.file, b.cutAt]);
  }

  async markSigned(seq: number, txid: string, txJson: string, token: number): Promise<void> {
    await this.fenced(token, async (c) => {
      if (await this.update(c, `UPDATE archive_bundles SET status = 'signed', txid = $1, tx_json = $2 WHERE seq = $3 AND status = 'cut'`, [txid, txJson, seq])) return;
      const b = await this.statusOf(c, seq);
      if (b?.txid === txid) return;
      throw new ChainConflictError(`bundle ${seq} is not waiting to be signed (status ${b?.status ?? 'missing'})`);
    });
  }

  async resign(seq: number, oldTxid: string, txid: string, txJson: string, token: number): Promise<void> {
    await this.fenced(token, async (c) => {
      if (await this.update(c, `UPDATE archive_bundles SET status = 'signed', txid = $1, tx_json = $2, upload_state = NULL,
        replaced_txids = array_append(replaced_txids, $3) WHERE seq = $4 AND txid = $3 AND status IN ('signed', 'uploading', 'dropped')`,
      [txid, txJson, oldTxid, seq])) return;
      const b = await this.statusOf(c, seq);
      throw new ChainConflictError(`bundle ${seq} cannot be re-signed: its transaction is ${b?.txid ?? 'none'} (status ${b?.status ?? 'missing'}), not ${oldTxid}`);
    });
  }

  async saveUploadState(seq: number, state: string, token: number): Promise<void> {
    await this.fenced(token, async (c) => {
      if (!(await this.update(c, `UPDATE archive_bundles SET status = 'uploading', upload_state = $1 WHERE seq = $2 AND status IN ('signed', 'uploading', 'dropped')`, [state, seq]))) {
        throw new ChainConflictError(`bundle ${seq} is not signed, uploading or dropped`);
      }
    });
  }

  async markPending(seq: number, at: number, token: number): Promise<void> {
    await this.fenced(token, async (c) => {
      if (await this.update(c, `UPDATE archive_bundles SET status = 'pending', accepted_at = coalesce(accepted_at, $1) WHERE seq = $2 AND status IN ('signed', 'uploading')`, [at, seq])) return;
      const status = (await this.statusOf(c, seq))?.status;
      if (status === 'pending' || status === 'confirmed') return;
      throw new ChainConflictError(`bundle ${seq} is not signed or uploading (status ${status ?? 'missing'})`);
    });
  }

  async saveConfirmations(seq: number, confirmations: number, token: number): Promise<void> {
    await this.fenced(token, async (c) => {
      if (!(await this.update(c, `UPDATE archive_bundles SET confirmations = $1 WHERE seq = $2 AND status = 'pending'`, [confirmations, seq]))) {
        throw new ChainConflictError(`bundle ${seq} is not pending`);
      }
    });
  }

  async markDropped(seq: number, token: number): Promise<void> {
    await this.fenced(token, async (c) => {
      if (!(await this.update(c, `UPDATE archive_bundles SET status = 'dropped', reposts = reposts + 1, upload_state = NULL, confirmations = 0
        WHERE seq = $1 AND status = 'pending'`, [seq]))) {
        throw new ChainConflictError(`bundle ${seq} is not pending`);
      }
    });
  }

  async markConfirmed(seq: number, confirmations: number, at: number, token: number): Promise<void> {
    await this.fenced(token, async (c) => {
      if (await this.update(c, `UPDATE archive_bundles SET status = 'confirmed', confirmations = $1, confirmed_at = $2 WHERE seq = $3 AND status = 'pending'`, [confirmations, at, seq])) return;
      const status = (await this.statusOf(c, seq))?.status;
      if (status === 'confirmed') return;
      throw new ChainConflictError(`bundle ${seq} is not pending (status ${status ?? 'missing'})`);
    });
  }

  async acquireLease(holder: string, now: number, ttlMs: number): Promise<number | null> {
    const r = await this.one<{ token: number }>(`INSERT INTO archive_lease (name, holder, expires_at, token) VALUES ($1, $2, $3, 1)
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
        token = CASE WHEN archive_lease.holder = excluded.holder AND archive_lease.expires_at > 0 THEN archive_lease.token
                     ELSE archive_lease.token + 1 END
      WHERE (archive_lease.holder = excluded.holder AND archive_lease.expires_at > 0) OR archive_lease.expires_at <= $4
      RETURNING token`, [LEASE, holder, now + ttlMs, now]);
    return r?.token ?? null;
  }

  async releaseLease(holder: string): Promise<void> {
    await this.pool.query('UPDATE archive_lease SET expires_at = 0 WHERE name = $1 AND holder = $2', [LEASE, holder]);
  }

  async lease(): Promise<Lease | null> {
    const r = await this.one<{ holder: string; expires_at: number; token: number }>('SELECT holder, expires_at, token FROM archive_lease WHERE name = $1', [LEASE]);
    return r && r.expires_at > 0 ? { holder: r.holder, expiresAt: r.expires_at, token: r.token } : null;
  }

  readerSpec(): ArchiveReaderSpec {
    return { kind: 'postgres', url: this.url };
  }

  async close(): Promise<void> {
    await this.pool.end().catch(() => undefined);
  }
}
