import Database from 'better-sqlite3';
import type {
  ArchivableEvent, ArchiveReaderSpec, ArchiveStore, BundleRecord, BundleStatus, Lease, NewBundle, PendingSummary,
} from '../port.js';
import { ChainConflictError, FencedError } from '../port.js';
import { ARCHIVE_MIGRATIONS } from './schema.js';

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

const LEASE = 'archiver';
/** How long a write waits for the store's writer to let go of the database before it fails (SQLITE_BUSY). */
const BUSY_MS = 10_000;

const isBusy = (e: unknown): boolean => typeof e === 'object' && e !== null && String((e as { code?: unknown }).code).startsWith('SQLITE_BUSY');

/**
 * The archive state in the embedded store's SQLite file (WAL mode), through a connection of its own:
 * it reads the `events` table the store writes and owns the `archive_*` tables. The store must have
 * created its schema first (it does when it opens).
 */
export class SqliteArchiveStore implements ArchiveStore {
  private readonly db: Database.Database;
  private readonly s;

  /**
   * `reader`: a second connection for the archive's worker thread, which only reads (the archiver's own
   * connection has already migrated the tables): no migration, no write at open.
   */
  constructor(private readonly file: string, opts: { reader?: boolean } = {}) {
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
      countBetween: db.prepare<[number, number], { n: number }>('SELECT COUNT(*) AS n FROM events WHERE face = 0 AND pos > ? AND pos < ?'),
      latest: db.prepare<[], BundleRow>('SELECT * FROM archive_bundles ORDER BY seq DESC LIMIT 1'),
      get: db.prepare<[number], BundleRow>('SELECT * FROM archive_bundles WHERE seq = ?'),
      head: db.prepare<[], BundleRow>(`SELECT * FROM archive_bundles WHERE status = 'confirmed' ORDER BY seq DESC LIMIT 1`),
      insert: db.prepare(`INSERT INTO archive_bundles (seq, status, prev_tx, first_pos, last_pos, count, first_ts, last_ts,
        bytes, sha256, file, cut_at) VALUES (@seq, 'cut', @prevTx, @firstPos, @lastPos, @count, @firstTs, @lastTs,
        @bytes, @sha256, @file, @cutAt)`),
      adopt: db.prepare(`UPDATE archive_bundles SET status = 'confirmed', txid = ?, accepted_at = ?, confirmed_at = ? WHERE seq = ?`),
      sign: db.prepare(`UPDATE archive_bundles SET status = 'signed', txid = ?, tx_json = ? WHERE seq = ? AND status = 'cut'`),
      resign: db.prepare(`UPDATE archive_bundles SET status = 'signed', txid = @txid, tx_json = @txJson, upload_state = NULL,
        replaced_txids = json_insert(replaced_txids, '$[#]', @oldTxid)
        WHERE seq = @seq AND txid = @oldTxid AND status IN ('signed', 'uploading', 'dropped')`),
      upload: db.prepare(`UPDATE archive_bundles SET status = 'uploading', upload_state = ?
        WHERE seq = ? AND status IN ('signed', 'uploading', 'dropped')`),
      toPending: db.prepare(`UPDATE archive_bundles SET status = 'pending', accepted_at = coalesce(accepted_at, ?)
        WHERE seq = ? AND status IN ('signed', 'uploading')`),
      confirmations: db.prepare(`UPDATE archive_bundles SET confirmations = ? WHERE seq = ? AND status = 'pending'`),
      drop: db.prepare(`UPDATE archive_bundles SET status = 'dropped', reposts = reposts + 1, upload_state = NULL, confirmations = 0
        WHERE seq = ? AND status = 'pending'`),
      confirm: db.prepare(`UPDATE archive_bundles SET status = 'confirmed', confirmations = ?, confirmed_at = ?
        WHERE seq = ? AND status = 'pending'`),
      takeLease: db.prepare<{ name: string; holder: string; expiresAt: number; now: number }, { token: number }>(`INSERT INTO archive_lease
        (name, holder, expires_at, token) VALUES (@name, @holder, @expiresAt, 1)
        ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
          token = CASE WHEN archive_lease.holder = excluded.holder AND archive_lease.expires_at > 0 THEN archive_lease.token
                       ELSE archive_lease.token + 1 END
        WHERE (archive_lease.holder = excluded.holder AND archive_lease.expires_at > 0) OR archive_lease.expires_at <= @now
        RETURNING token`),
      dropLease: db.prepare('UPDATE archive_lease SET expires_at = 0 WHERE name = ? AND holder = ?'),
      getLease: db.prepare<[string], { holder: string; expires_at: number; token: number }>('SELECT holder, expires_at, token FROM archive_lease WHERE name = ?'),
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

  async latestBundle(): Promise<BundleRecord | null> {
    const r = this.s.latest.get();
    return r ? toBundle(r) : null;
  }

  async getBundle(seq: number): Promise<BundleRecord | null> {
    const r = this.s.get.get(seq);
    return r ? toBundle(r) : null;
  }

  async head(): Promise<BundleRecord | null> {
    const r = this.s.head.get();
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

  /** Runs `fn` in a write transaction after checking that `token` is the lease's current fencing token. */
  private fenced<T>(token: number, fn: () => T): Promise<T> {
    return this.busy(() => this.db.transaction(() => {
      const lease = this.s.getLease.get(LEASE);
      if (!lease || lease.token !== token || lease.expires_at <= 0) {
        throw new FencedError(`archive write with fencing token ${token} refused: the lease's token is ${lease && lease.expires_at > 0 ? lease.token : 'none (released)'}`);
      }
      return fn();
    }).immediate());
  }

  async insertBundle(b: NewBundle, token: number): Promise<BundleRecord> {
    await this.fenced(token, () => this.insertChecked(b));
    return toBundle(this.s.get.get(b.seq) as BundleRow);
  }

  async adoptBundle(b: NewBundle, txid: string, at: number, token: number): Promise<BundleRecord> {
    await this.fenced(token, () => {
      const existing = this.s.get.get(b.seq);
      if (existing?.txid === txid) return;
      this.insertChecked(b);
      this.s.adopt.run(txid, at, at, b.seq);
    });
    return toBundle(this.s.get.get(b.seq) as BundleRow);
  }

  /** The chain rules of insertBundle; runs inside a write transaction. */
  private insertChecked(b: NewBundle): void {
    const last = this.s.latest.get();
    const expectSeq = (last?.seq ?? 0) + 1;
    if (b.seq !== expectSeq) throw new ChainConflictError(`bundle ${b.seq} cannot follow bundle ${last?.seq ?? 0}`);
    if (last && last.status !== 'confirmed') throw new ChainConflictError(`bundle ${last.seq} is not confirmed yet`);
    if ((last?.txid ?? null) !== b.prevTx) throw new ChainConflictError(`bundle ${b.seq} must link to ${last?.txid ?? 'nothing'}`);
    if (last && b.firstPos <= last.last_pos) throw new ChainConflictError(`bundle ${b.seq} overlaps bundle ${last.seq}`);
    const between = this.s.countBetween.get(last?.last_pos ?? 0, b.firstPos);
    if ((between?.n ?? 0) > 0) throw new ChainConflictError(`bundle ${b.seq} would leave events unarchived`);
    this.s.insert.run(b);
  }

  async markSigned(seq: number, txid: string, txJson: string, token: number): Promise<void> {
    await this.fenced(token, () => {
      if (this.s.sign.run(txid, txJson, seq).changes === 1) return;
      const b = this.s.get.get(seq);
      if (b?.txid === txid) return;
      throw new ChainConflictError(`bundle ${seq} is not waiting to be signed (status ${b?.status ?? 'missing'})`);
    });
  }

  async resign(seq: number, oldTxid: string, txid: string, txJson: string, token: number): Promise<void> {
    await this.fenced(token, () => {
      if (this.s.resign.run({ seq, oldTxid, txid, txJson }).changes === 1) return;
      const b = this.s.get.get(seq);
      throw new ChainConflictError(`bundle ${seq} cannot be re-signed: its transaction is ${b?.txid ?? 'none'} (status ${b?.status ?? 'missing'}), not ${oldTxid}`);
    });
  }

  async saveUploadState(seq: number, state: string, token: number): Promise<void> {
    await this.fenced(token, () => {
      if (this.s.upload.run(state, seq).changes !== 1) throw new ChainConflictError(`bundle ${seq} is not signed, uploading or dropped`);
    });
  }

  async markPending(seq: number, at: number, token: number): Promise<void> {
    await this.fenced(token, () => {
      if (this.s.toPending.run(at, seq).changes === 1) return;
      const status = this.s.get.get(seq)?.status;
      if (status === 'pending' || status === 'confirmed') return;
      throw new ChainConflictError(`bundle ${seq} is not signed or uploading (status ${status ?? 'missing'})`);
    });
  }

  async saveConfirmations(seq: number, confirmations: number, token: number): Promise<void> {
    await this.fenced(token, () => {
      if (this.s.confirmations.run(confirmations, seq).changes !== 1) throw new ChainConflictError(`bundle ${seq} is not pending`);
    });
  }

  async markDropped(seq: number, token: number): Promise<void> {
    await this.fenced(token, () => {
      if (this.s.drop.run(seq).changes !== 1) throw new ChainConflictError(`bundle ${seq} is not pending`);
    });
  }

  async markConfirmed(seq: number, confirmations: number, at: number, token: number): Promise<void> {
    await this.fenced(token, () => {
      if (this.s.confirm.run(confirmations, at, seq).changes === 1) return;
      const status = this.s.get.get(seq)?.status;
      if (status === 'confirmed') return;
      throw new ChainConflictError(`bundle ${seq} is not pending (status ${status ?? 'missing'})`);
    });
  }

  async acquireLease(holder: string, now: number, ttlMs: number): Promise<number | null> {
    return (await this.busy(() => this.s.takeLease.get({ name: LEASE, holder, expiresAt: now + ttlMs, now })))?.token ?? null;
  }

  async releaseLease(holder: string): Promise<void> {
    await this.busy(() => this.s.dropLease.run(LEASE, holder));
  }

  async lease(): Promise<Lease | null> {
    const r = this.s.getLease.get(LEASE);
    return r && r.expires_at > 0 ? { holder: r.holder, expiresAt: r.expires_at, token: r.token } : null;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  readerSpec(): ArchiveReaderSpec {
    return { kind: 'sqlite', file: this.file };
  }
}
