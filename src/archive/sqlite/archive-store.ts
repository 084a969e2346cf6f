import Database from 'better-sqlite3';
import type {
  ArchivableEvent, ArchiveStore, BundleRecord, BundleStatus, Lease, NewBundle, PendingSummary,
} from '../port.js';
import { ChainConflictError } from '../port.js';
import { ARCHIVE_MIGRATIONS } from './schema.js';

interface BundleRow {
  seq: number; status: string; prev_tx: string | null; first_pos: number; last_pos: number; count: number;
  first_ts: number; last_ts: number; bytes: number; sha256: string; file: string; cut_at: number;
  txid: string | null; tx_json: string | null; upload_state: string | null; accepted_at: number | null;
}

const toBundle = (r: BundleRow): BundleRecord => ({
  seq: r.seq, status: r.status as BundleStatus, prevTx: r.prev_tx, firstPos: r.first_pos, lastPos: r.last_pos,
  count: r.count, firstTs: r.first_ts, lastTs: r.last_ts, bytes: r.bytes, sha256: r.sha256, file: r.file,
  cutAt: r.cut_at, txid: r.txid, txJson: r.tx_json, uploadState: r.upload_state, acceptedAt: r.accepted_at,
});

const LEASE = 'archiver';

/**
 * The archive state in the embedded store's SQLite file (WAL mode), through a connection of its own:
 * it reads the `events` table the store writes and owns the `archive_*` tables. The store must have
 * created its schema first (it does when it opens).
 */
export class SqliteArchiveStore implements ArchiveStore {
  private readonly db: Database.Database;
  private readonly s;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
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
      head: db.prepare<[], BundleRow>(`SELECT * FROM archive_bundles WHERE status = 'accepted' ORDER BY seq DESC LIMIT 1`),
      insert: db.prepare(`INSERT INTO archive_bundles (seq, status, prev_tx, first_pos, last_pos, count, first_ts, last_ts,
        bytes, sha256, file, cut_at) VALUES (@seq, 'cut', @prevTx, @firstPos, @lastPos, @count, @firstTs, @lastTs,
        @bytes, @sha256, @file, @cutAt)`),
      adopt: db.prepare(`UPDATE archive_bundles SET status = 'accepted', txid = ?, accepted_at = ? WHERE seq = ?`),
      sign: db.prepare(`UPDATE archive_bundles SET status = 'signed', txid = ?, tx_json = ? WHERE seq = ? AND status = 'cut'`),
      upload: db.prepare(`UPDATE archive_bundles SET status = 'uploading', upload_state = ?
        WHERE seq = ? AND status IN ('signed', 'uploading')`),
      accept: db.prepare(`UPDATE archive_bundles SET status = 'accepted', accepted_at = ?
        WHERE seq = ? AND status IN ('signed', 'uploading')`),
      takeLease: db.prepare(`INSERT INTO archive_lease (name, holder, expires_at) VALUES (@name, @holder, @expiresAt)
        ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
        WHERE archive_lease.holder = excluded.holder OR archive_lease.expires_at <= @now`),
      dropLease: db.prepare('DELETE FROM archive_lease WHERE name = ? AND holder = ?'),
      getLease: db.prepare<[string], { holder: string; expires_at: number }>('SELECT holder, expires_at FROM archive_lease WHERE name = ?'),
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

  async insertBundle(b: NewBundle): Promise<BundleRecord> {
    this.db.transaction(() => this.insertChecked(b)).immediate();
    return toBundle(this.s.get.get(b.seq) as BundleRow);
  }

  async adoptBundle(b: NewBundle, txid: string, at: number): Promise<BundleRecord> {
    this.db.transaction(() => {
      const existing = this.s.get.get(b.seq);
      if (existing?.txid === txid) return;
      this.insertChecked(b);
      this.s.adopt.run(txid, at, b.seq);
    }).immediate();
    return toBundle(this.s.get.get(b.seq) as BundleRow);
  }

  /** The chain rules of insertBundle; runs inside a write transaction. */
  private insertChecked(b: NewBundle): void {
    const last = this.s.latest.get();
    const expectSeq = (last?.seq ?? 0) + 1;
    if (b.seq !== expectSeq) throw new ChainConflictError(`bundle ${b.seq} cannot follow bundle ${last?.seq ?? 0}`);
    if (last && last.status !== 'accepted') throw new ChainConflictError(`bundle ${last.seq} is not accepted yet`);
    if ((last?.txid ?? null) !== b.prevTx) throw new ChainConflictError(`bundle ${b.seq} must link to ${last?.txid ?? 'nothing'}`);
    if (last && b.firstPos <= last.last_pos) throw new ChainConflictError(`bundle ${b.seq} overlaps bundle ${last.seq}`);
    const between = this.s.countBetween.get(last?.last_pos ?? 0, b.firstPos);
    if ((between?.n ?? 0) > 0) throw new ChainConflictError(`bundle ${b.seq} would leave events unarchived`);
    this.s.insert.run(b);
  }

  async markSigned(seq: number, txid: string, txJson: string): Promise<void> {
    if (this.s.sign.run(txid, txJson, seq).changes !== 1) {
      const b = this.s.get.get(seq);
      if (b?.txid === txid) return;
      throw new ChainConflictError(`bundle ${seq} is not waiting to be signed (status ${b?.status ?? 'missing'})`);
    }
  }

  async saveUploadState(seq: number, state: string): Promise<void> {
    if (this.s.upload.run(state, seq).changes !== 1) throw new ChainConflictError(`bundle ${seq} is not signed or uploading`);
  }

  async markAccepted(seq: number, at: number): Promise<void> {
    if (this.s.accept.run(at, seq).changes !== 1) {
      if (this.s.get.get(seq)?.status === 'accepted') return;
      throw new ChainConflictError(`bundle ${seq} is not signed or uploading`);
    }
  }

  async acquireLease(holder: string, now: number, ttlMs: number): Promise<boolean> {
    return this.s.takeLease.run({ name: LEASE, holder, expiresAt: now + ttlMs, now }).changes === 1;
  }

  async releaseLease(holder: string): Promise<void> {
    this.s.dropLease.run(LEASE, holder);
  }

  async lease(): Promise<Lease | null> {
    const r = this.s.getLease.get(LEASE);
    return r ? { holder: r.holder, expiresAt: r.expires_at } : null;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
