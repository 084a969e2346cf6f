import Database from 'better-sqlite3';
import type {
  ArchivableEvent, ArchiveReaderSpec, ArchiveStore, BundleRecord, BundleStatus, Lease, NewBundle, PendingSummary,
} from '../port.js';
import { ChainConflictError, FencedError } from '../port.js';
import { ARCHIVE_MIGRATIONS } from './schema.js';
import { createArchiveState, type ArchiveState, type ArchiveStateOp } from './archive-state.js';
import type { WriterClient } from '../../store/sqlite/writer-client.js';

interface BundleRow {
  seq: number; status: string; prev_tx: string | null; first_pos: number; last_pos: number; count: number;
  first_ts: number; last_ts: number; bytes: number; sha256: string; file: string; cut_at: number;
  txid: string | null; tx_json: string | null; upload_state: string | null; accepted_at: number | null;
  confirmations: number; confirmed_at: number | null; reposts: number; replaced_txids: string;
}

const toBundle = (r: BundleRow): BundleRecord => ({
  seq: r.seq, status: r.status as BundleStatus, prevTx: r.prev_tx, firstPos: r.first_pos, lastPos: r.last_pos,
  count: r.count, firstTs: r.first_ts, lastTs: r.last_ts, bytes: r.bytes, sha256: r.sha256, file: r.file,
  cutAt: r.cut_at, txid: r.txid, txJson: r.tx_json, uploadState: r.upload_state, acceptedAt: r.accepted_at,
  confirmations: r.confirmations, confirmedAt: r.confirmed_at, reposts: r.reposts, replacedTxids: JSON.parse(r.replaced_txids) as string[],
});

/** How long a write waits for the store's writer to let go of the database before it fails (SQLITE_BUSY). */
const BUSY_MS = 10_000;

const isBusy = (e: unknown): boolean => typeof e === 'object' && e !== null && String((e as { code?: unknown }).code).startsWith('SQLITE_BUSY');

/**
 * The archive state in the embedded store's SQLite file (WAL mode): it reads the `events` table the store
 * writes and owns the `archive_*` tables. The store must have created its schema first (it does when it
 * opens). The bundle records and the lease (archive-state.js) are read and written on the store's writer
 * thread when `writer` is given (the server does so), else on a connection of this store's own.
 */
export class SqliteArchiveStore implements ArchiveStore {
  private readonly db: Database.Database;
  private readonly s;
  private readonly writer: WriterClient | null;
  private local: ArchiveState | null = null;

  /**
   * `reader`: a second connection for the archive's worker thread, which only reads (the archiver's own
   * connection has already migrated the tables): no migration, no write at open.
   * `writer`: the store's writer (SqliteStore.writerClient()), which then runs every state operation.
   */
  constructor(private readonly file: string, opts: { reader?: boolean; writer?: WriterClient } = {}) {
    this.writer = opts.writer ?? null;
    this.db = new Database(file);
    if (!opts.reader) {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
      this.db.pragma('busy_timeout = 5000');
      this.migrate();
    }
    // From here on a write that finds the database locked (the store's writer thread commits all the time
    // under load) fails at once and is retried after a timer (`busy`), instead of SQLite's busy handler
    // sleeping inside the call, which would hold the event loop of the thread that archives.
    this.db.pragma('busy_timeout = 0');
    const db = this.db;
    this.s = {
      pending: db.prepare<[number], { n: number; bytes: number | null; last: number | null }>(`SELECT COUNT(*) AS n,
        SUM(body_bytes) AS bytes, MAX(pos) AS last FROM events WHERE face = 0 AND pos > ?`),
      between: db.prepare<[number, number, number], ArchivableEvent>(`SELECT pos, ts, body FROM events
        WHERE face = 0 AND pos > ? AND pos <= ? ORDER BY pos LIMIT ?`),
      sizes: db.prepare<[number], { pos: number; ts: number; len: number }>(`SELECT pos, ts, body_bytes AS len
        FROM events WHERE face = 0 AND pos > ? ORDER BY pos`),
    };
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS archive_schema (version INTEGER NOT NULL)');
    const row = this.db.prepare<[], { version: number }>('SELECT version FROM archive_schema').get();
    for (let v = row?.version ?? 0; v < ARCHIVE_MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(ARCHIVE_MIGRATIONS[v] as string);
        this.db.exec('DELETE FROM archive_schema');
        this.db.prepare('INSERT INTO archive_schema (version) VALUES (?)').run(v + 1);
      }).immediate();
    }
  }

  async pendingSince(afterPos: number): Promise<PendingSummary> {
    const r = this.s.pending.get(afterPos);
    return { count: r?.n ?? 0, bodyBytes: r?.bytes ?? 0, lastPos: r?.last ?? afterPos };
  }

  async eventsBetween(afterPos: number, uptoPos: number, limit: number): Promise<ArchivableEvent[]> {
    return this.s.between.all(afterPos, uptoPos, limit);
  }

  async planBundle(afterPos: number, maxBytes: number) {
    let plan: { count: number; bodyBytes: number; firstPos: number; lastPos: number; firstTs: number; lastTs: number } | null = null;
    for (const r of this.s.sizes.iterate(afterPos)) {
      if (plan === null) {
        plan = { count: 1, bodyBytes: r.len, firstPos: r.pos, lastPos: r.pos, firstTs: r.ts, lastTs: r.ts };
        continue;
      }
      // 2 brackets + bodies + commas, with this one added
      if (2 + plan.bodyBytes + r.len + plan.count > maxBytes) break;
      plan.count += 1;
      plan.bodyBytes += r.len;
      plan.lastPos = r.pos;
      plan.lastTs = r.ts;
    }
    return plan;
  }

  /**
   * Runs one of the archive state's operations (archive-state.js): on the store's writer thread when
   * there is one (queued with its commits, no SQLite on this thread), else on this connection, waiting
   * on timers (not inside SQLite) while another connection holds the write lock. Named errors come back
   * as this module's classes.
   */
  private async state<K extends ArchiveStateOp>(op: K, ...args: Parameters<ArchiveState[K]>): Promise<ReturnType<ArchiveState[K]>> {
    try {
      if (this.writer) return (await this.writer.call('archive', op, args)) as ReturnType<ArchiveState[K]>;
      const local = (this.local ??= createArchiveState(this.db));
      return await this.busy(() => (local[op] as (...a: unknown[]) => ReturnType<ArchiveState[K]>)(...args));
    } catch (e) {
      if (e instanceof Error && e.name === 'FencedError') throw new FencedError(e.message);
      if (e instanceof Error && e.name === 'ChainConflictError') throw new ChainConflictError(e.message);
      throw e;
    }
  }

  async latestBundle(): Promise<BundleRecord | null> {
    const r = await this.state('latestBundle');
    return r ? toBundle(r) : null;
  }

  async getBundle(seq: number): Promise<BundleRecord | null> {
    const r = await this.state('getBundle', seq);
    return r ? toBundle(r) : null;
  }

  async head(): Promise<BundleRecord | null> {
    const r = await this.state('head');
    return r ? toBundle(r) : null;
  }

  /** Runs a write, waiting on timers (not inside SQLite) while another connection holds the write lock. */
  private async busy<T>(fn: () => T): Promise<T> {
    const deadline = Date.now() + BUSY_MS;
    for (let wait = 1; ; wait = Math.min(wait * 2, 25)) {
      try {
        return fn();
      } catch (e) {
        if (!isBusy(e) || Date.now() >= deadline) throw e;
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async insertBundle(b: NewBundle, token: number): Promise<BundleRecord> {
    return toBundle(await this.state('insertBundle', b, token));
  }

  async adoptBundle(b: NewBundle, txid: string, at: number, token: number): Promise<BundleRecord> {
    return toBundle(await this.state('adoptBundle', b, txid, at, token));
  }

  async markSigned(seq: number, txid: string, txJson: string, token: number): Promise<void> {
    await this.state('markSigned', seq, txid, txJson, token);
  }

  async resign(seq: number, oldTxid: string, txid: string, txJson: string, token: number): Promise<void> {
    await this.state('resign', seq, oldTxid, txid, txJson, token);
  }

  async saveUploadState(seq: number, state: string, token: number): Promise<void> {
    await this.state('saveUploadState', seq, state, token);
  }

  async markPending(seq: number, at: number, token: number): Promise<void> {
    await this.state('markPending', seq, at, token);
  }

  async saveConfirmations(seq: number, confirmations: number, token: number): Promise<void> {
    await this.state('saveConfirmations', seq, confirmations, token);
  }

  async markDropped(seq: number, token: number): Promise<void> {
    await this.state('markDropped', seq, token);
  }

  async markConfirmed(seq: number, confirmations: number, at: number, token: number): Promise<void> {
    await this.state('markConfirmed', seq, confirmations, at, token);
  }

  async acquireLease(holder: string, now: number, ttlMs: number): Promise<number | null> {
    return this.state('acquireLease', holder, now, ttlMs);
  }

  async releaseLease(holder: string): Promise<void> {
    await this.state('releaseLease', holder);
  }

  async lease(): Promise<Lease | null> {
    return this.state('lease');
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  readerSpec(): ArchiveReaderSpec {
    return { kind: 'sqlite', file: this.file };
  }
}
