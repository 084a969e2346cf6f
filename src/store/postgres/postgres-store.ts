import type pg from 'pg';
import { AppError } from '../../errors/app-error.js';
import type {
  AppendOutcome, BanRecord, ChatState, ChatSummary, FaceId, ListQuery, MlsAt, MlsClaimed, MlsDevice, MlsNewPackage, MlsGroupRecord, MlsGroupState, MlsUploadOutcome, NewEvent, RangeQuery, Store, StoredEvent, TokenRecord,
} from '../port.js';
import { Batcher } from './batcher.js';
import { checkConnection, checkout, createPool, describeUrl, inTransaction, isTransient } from './db.js';
import { migrate } from './migrate.js';
import { STORE_COMPONENT, STORE_MIGRATIONS } from './schema.js';

export interface PostgresStoreOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Pool size (reads run beside the one write transaction in flight). */
  poolMax?: number;
  /** Most events merged into one transaction when calls queue up behind a commit. */
  mergeMax?: number;
  /** Send each transaction's statements in three flights rather than one by one (default true). */
  pipeline?: boolean;
  /** Told about idle connections that broke (the pool replaces them). */
  onIdleError?: (err: Error) => void;
  /** Longest one statement may take before it fails as STORE_UNAVAILABLE (ms; unset: no limit). */
  statementTimeoutMs?: number;
  /** Longest a statement waits for a pooled connection (or a new one's handshake) (ms; default 5000). */
  acquireTimeoutMs?: number;
}

interface EventRow {
  pos: number; cid: string; seq: number; id: string | null; face: number; kind: number; sender: string; ts: number;
  received_at: number; body: string; counts: boolean; only_for: string | null; revoked_by: number | null;
}
interface ChatRow { member: string; cid: string; peer: string | null; last_read_seq: number; muted: boolean; pinned_at: number | null }

function toEvent(r: EventRow): StoredEvent {
  const e: StoredEvent = {
    pos: r.pos, cid: r.cid, seq: r.seq, id: r.id, face: r.face as FaceId, kind: r.kind, sender: r.sender, ts: r.ts,
    receivedAt: r.received_at, body: r.body, counts: r.counts, onlyFor: r.only_for,
  };
  if (r.revoked_by !== null && r.revoked_by !== undefined) e.revokedBy = r.revoked_by;
  return e;
}
const toChat = (r: ChatRow): ChatState => ({
  user: r.member, cid: r.cid, peer: r.peer, lastReadSeq: r.last_read_seq, muted: r.muted, pinnedAt: r.pinned_at,
});

// Visibility of event e to the viewer in parameter $1.
const VISIBLE = `(e.only_for IS NULL OR e.only_for = $1)
  AND NOT EXISTS (SELECT 1 FROM hidden h WHERE h.member = $1 AND h.cid = e.cid AND h.seq = e.seq)`;
const EVENT_COLS = 'e.pos, e.cid, e.seq, e.id, e.face, e.kind, e.sender, e.ts, e.received_at, e.body, e.counts, e.only_for, e.revoked_by';

interface Call { events: readonly NewEvent[]; resolve: (o: AppendOutcome[]) => void; reject: (e: unknown) => void }

/** What a conflicting concurrent writer (another process) can make a transaction fail with; tried again. */
const RETRY_CODES = new Set(['23505', '40001', '40P01']);
const RETRIES = 5;

/**
 * The store on a PostgreSQL server, shared by any number of processes.
 *
 * Writes: appendEvents calls run one transaction at a time per process, in call order; calls that queue
 * while a transaction is under way are merged into the next one (group commit, as the embedded store's
 * writer thread does), and if that merged transaction is refused each call is retried alone, so a
 * batch the database refuses fails by itself. One transaction: the duplicate check, the commit
 * position row (locked to COMMIT: every append in the cluster takes positions in commit order, so
 * committed positions are always a gap-free prefix 1..n and a reader by `pos` never skips one that
 * commits later), the conversations' counter rows (gap-free seq), then every event through one
 * multi-row INSERT. A conflicting writer in another process (the same id inserted at once) makes the
 * transaction fail as a whole; it is tried again and then finds the duplicate.
 *
 * An unreachable database answers STORE_UNAVAILABLE (503, temporary) and acknowledges nothing; the pool
 * opens new connections by itself once the server is back.
 */
export class PostgresStore implements Store {
  readonly pool: pg.Pool;
  private readonly ready: Promise<string>;
  private readonly queue: Call[] = [];
  private writing = false;
  private closed = false;
  private readonly mergeMax: number;
  private readonly byId = new Batcher<StoredEvent | null>(async (ids) => {
    const r = await this.q<EventRow>(`SELECT ${EVENT_COLS} FROM events e WHERE e.id = ANY($1::text[])`, [ids]);
    return new Map(r.rows.map((row) => [row.id as string, toEvent(row)]));
  }, () => null, (e) => (e ? { ...e } : e));
  private readonly muted = new Batcher<string[]>(async (cids) => {
    const r = await this.q<{ cid: string; member: string }>('SELECT cid, member FROM chat_members WHERE cid = ANY($1::text[]) AND muted', [cids]);
    const out = new Map<string, string[]>();
    for (const row of r.rows) {
      const list = out.get(row.cid);
      if (list) list.push(row.member);
      else out.set(row.cid, [row.member]);
    }
    return out;
  }, () => [], (l) => [...l]);

  constructor(private readonly opts: PostgresStoreOptions) {
    this.pool = createPool({
      url: opts.url, max: opts.poolMax ?? 8, applicationName: 'relation-im store', pipeline: opts.pipeline ?? true, onIdleError: opts.onIdleError,
      ...(opts.statementTimeoutMs ? { statementTimeoutMs: opts.statementTimeoutMs } : {}), ...(opts.acquireTimeoutMs ? { connectTimeoutMs: opts.acquireTimeoutMs } : {}),
    });
    this.mergeMax = opts.mergeMax ?? 8192;
    this.ready = this.init();
    this.ready.catch(() => {}); // reported to whoever awaits open() or any call
  }

  private async init(): Promise<string> {
    // Migrations run on a connection of their own without the statement timeout (an index built at an
    // upgrade may take longer than any request should).
    const boot = this.opts.statementTimeoutMs ? createPool({ url: this.opts.url, max: 1, applicationName: 'relation-im migrate', ...(this.opts.acquireTimeoutMs ? { connectTimeoutMs: this.opts.acquireTimeoutMs } : {}) }) : this.pool;
    try {
      await checkConnection(boot, this.opts.url);
      await migrate(boot, STORE_COMPONENT, STORE_MIGRATIONS);
    } finally {
      if (boot !== this.pool) await boot.end();
    }
    const r = await this.pool.query<{ value: string }>("SELECT value FROM store_meta WHERE key = 'epoch'");
    const epoch = r.rows[0]?.value;
    if (!epoch) throw new Error(`the store at ${describeUrl(this.opts.url)} has no epoch row`);
    return epoch;
  }

  /** Resolves once the database answered and the schema is current; rejects with why not. */
  open(): Promise<void> {
    return this.ready.then(() => undefined);
  }

  epoch(): Promise<string> {
    return this.ready;
  }

  /** One statement on any pooled connection; a lost database becomes STORE_UNAVAILABLE. */
  private async q<R extends pg.QueryResultRow>(text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    await this.ready;
    try {
      return await this.pool.query<R>(text, values);
    } catch (err) {
      throw unavailable(err);
    }
  }

  appendEvents(events: readonly NewEvent[]): Promise<AppendOutcome[]> {
    if (this.closed) return Promise.reject(new Error('store closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ events, resolve, reject });
      if (!this.writing) void this.pump();
    });
  }

  private async pump(): Promise<void> {
    this.writing = true;
    try {
      await this.ready.catch(() => {});
      while (this.queue.length > 0) {
        let n = 0;
        let k = 0;
        while (k < this.queue.length && (k === 0 || n + (this.queue[k] as Call).events.length <= this.mergeMax)) {
          n += (this.queue[k] as Call).events.length;
          k++;
        }
        await this.commitGroup(this.queue.splice(0, k));
      }
    } finally {
      this.writing = false;
    }
  }

  private async commitGroup(group: Call[]): Promise<void> {
    try {
      await this.ready;
    } catch (err) {
      for (const c of group) c.reject(err);
      return;
    }
    const all = group.length === 1 ? (group[0] as Call).events : group.flatMap((c) => c.events);
    try {
      const outs = await this.appendWithRetry(all);
      let at = 0;
      for (const c of group) c.resolve(outs.slice(at, (at += c.events.length)));
      return;
    } catch (err) {
      if (group.length === 1 || isTransient(err) || err instanceof AppError) {
        const e = unavailable(err);
        for (const c of group) c.reject(e);
        return;
      }
    }
    // The merged transaction was refused: each call alone, so only the one the database refuses fails.
    for (const c of group) {
      try {
        c.resolve(await this.appendWithRetry(c.events));
      } catch (err) {
        c.reject(unavailable(err));
      }
    }
  }

  private async appendWithRetry(events: readonly NewEvent[]): Promise<AppendOutcome[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.appendOnce(events);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (attempt >= RETRIES || code === undefined || !RETRY_CODES.has(code)) throw err;
      }
    }
  }

  private async appendOnce(events: readonly NewEvent[]): Promise<AppendOutcome[]> {
    if (events.length === 0) return [];
    const ids = [...new Set(events.flatMap((e) => (e.id === null ? [] : [e.id])))];
    const { client, release } = await checkout(this.pool);
    let broken: Error | undefined;
    try {
      // Three flights of statements, each sent without waiting between its statements (the pool
      // pipelines): BEGIN and the duplicate check; the position and counter rows; the inserts and COMMIT.
      // The hot statements are named: pg prepares each once per connection, and PostgreSQL then skips
      // parsing and planning them in every transaction (docs/benchmarks.md, issue 18 fifth pass).
      // The commit_position lock is held from the second flight to COMMIT: fewer round trips inside it
      // is shorter waiting for every other process.
      const existing = new Map<string, StoredEvent>();
      // MLS events (docs/e2ee.md section 4) add two statements to the first flight, only when the batch
      // holds any: the replay check, and the groups' epochs of its handshakes, locked FOR UPDATE in cid
      // order (before commit_position, as every transaction takes them: no deadlock) until COMMIT.
      const mlsEvents = events.filter((e) => e.mls);
      const handshakeCids = [...new Set(mlsEvents.filter((e) => e.mls?.role !== 'application').map((e) => e.cid))].sort();
      const [, dupRows, replayRows, groupRows] = await Promise.all([
        client.query('BEGIN'),
        ids.length > 0 ? client.query<EventRow>({ name: 'rim_append_dups', text: `SELECT ${EVENT_COLS} FROM events e WHERE e.id = ANY($1::text[])`, values: [ids] }) : null,
        mlsEvents.length > 0 ? client.query<{ cid: string; mls_hash: string }>(`SELECT e.cid, e.mls_hash FROM events e
          JOIN unnest($1::text[], $2::text[]) AS v(cid, h) ON e.cid = v.cid AND e.mls_hash = v.h`,
        [mlsEvents.map((e) => e.cid), mlsEvents.map((e) => e.mls?.hash)]) : null,
        handshakeCids.length > 0 ? client.query<{ cid: string; epoch: number }>('SELECT cid, epoch FROM mls_groups WHERE cid = ANY($1::text[]) ORDER BY cid FOR UPDATE', [handshakeCids]) : null,
      ]);
      for (const row of dupRows?.rows ?? []) existing.set(row.id as string, toEvent(row));
      const seenHashes = new Set((replayRows?.rows ?? []).map((r) => `${r.cid}\n${r.mls_hash}`));
      const groups = new Map<string, { epoch: number; known: boolean; dirty: boolean; at: number }>();
      for (const r of groupRows?.rows ?? []) groups.set(r.cid, { epoch: r.epoch, known: true, dirty: false, at: 0 });
      const refused = new Map<number, AppendOutcome>();
      // Which events are new; a later copy of an id in the same batch is a duplicate of the first.
      const firstOf = new Map<string, number>();
      const fresh: number[] = [];
      events.forEach((ev, i) => {
        if (ev.id !== null) {
          if (existing.has(ev.id) || firstOf.has(ev.id)) return;
          firstOf.set(ev.id, i);
        }
        const mls = ev.mls;
        if (mls) {
          let g = groups.get(ev.cid);
          if (!g) groups.set(ev.cid, (g = { epoch: 0, known: false, dirty: false, at: 0 }));
          const key = `${ev.cid}\n${mls.hash}`;
          if (seenHashes.has(key)) {
            refused.set(i, { status: 'refused', code: 'MLS_REPLAY', currentEpoch: g.epoch });
            return;
          }
          if (mls.role !== 'application') {
            if (mls.epoch !== g.epoch) {
              refused.set(i, { status: 'refused', code: 'MLS_STALE_EPOCH', currentEpoch: g.epoch });
              return;
            }
            if (mls.role === 'commit') {
              g.epoch++;
              g.dirty = true;
              g.at = ev.receivedAt;
            }
          }
          seenHashes.add(key);
        }
        fresh.push(i);
      });
      const stored = new Map<number, StoredEvent>();
      if (fresh.length > 0) {
        const per = new Map<string, { n: number; at: number }>();
        for (const i of fresh) {
          const ev = events[i] as NewEvent;
          const c = per.get(ev.cid) ?? { n: 0, at: 0 };
          c.n++;
          if (ev.counts) c.at = Math.max(c.at, ev.receivedAt);
          per.set(ev.cid, c);
        }
        const cids = [...per.keys()].sort();
        // Positions first: the row lock orders every appending transaction of the cluster until COMMIT;
        // then the counters, in cid order (as every transaction takes them: no deadlock).
        const [posRes, conv] = await Promise.all([
          client.query<{ last: number }>({ name: 'rim_append_pos', text: 'UPDATE commit_position SET last = last + $1 RETURNING last', values: [fresh.length] }),
          client.query<{ cid: string; last_seq: number }>({ name: 'rim_append_conversations', text: `INSERT INTO conversations (cid, last_seq, last_post_at)
          SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) ORDER BY 1
          ON CONFLICT (cid) DO UPDATE SET last_seq = conversations.last_seq + excluded.last_seq,
            last_post_at = GREATEST(conversations.last_post_at, excluded.last_post_at)
          RETURNING cid, last_seq`, values: [cids, cids.map((c) => per.get(c)?.n ?? 0), cids.map((c) => per.get(c)?.at ?? 0)] }),
        ]);
        const posRow = posRes.rows[0];
        if (!posRow) throw new Error('commit_position row missing');
        let pos = posRow.last - fresh.length;
        const next = new Map<string, number>();
        for (const r of conv.rows) next.set(r.cid, r.last_seq - (per.get(r.cid)?.n ?? 0));
        const cols = {
          pos: [] as number[], cid: [] as string[], seq: [] as number[], id: [] as (string | null)[], face: [] as number[],
          kind: [] as number[], sender: [] as string[], ts: [] as number[], at: [] as number[], body: [] as string[],
          counts: [] as boolean[], onlyFor: [] as (string | null)[], bytes: [] as number[], mlsHash: [] as (string | null)[],
        };
        const members: [string, string, string][] = [];
        const hides: [string, string, number][] = [];
        const revokes = new Map<string, [string, number, number]>();
        for (const i of fresh) {
          const ev = events[i] as NewEvent;
          const seq = (next.get(ev.cid) ?? 0) + 1;
          next.set(ev.cid, seq);
          pos++;
          cols.pos.push(pos); cols.cid.push(ev.cid); cols.seq.push(seq); cols.id.push(ev.id); cols.face.push(ev.face);
          cols.kind.push(ev.kind); cols.sender.push(ev.sender); cols.ts.push(ev.ts); cols.at.push(ev.receivedAt);
          cols.body.push(ev.body); cols.counts.push(ev.counts); cols.onlyFor.push(ev.onlyFor); cols.bytes.push(Buffer.byteLength(ev.body));
          cols.mlsHash.push(ev.mls ? ev.mls.hash : null);
          if (seq === 1 && ev.participants) {
            const [a, b] = ev.participants;
            members.push([a, ev.cid, b]);
            if (b !== a) members.push([b, ev.cid, a]);
          }
          if (ev.hides && ev.onlyFor !== null) hides.push([ev.onlyFor, ev.cid, ev.hides.seq]);
          // The first revoke of a target wins, as the target's revoked_by is only ever set once.
          if (ev.revokes) {
            const key = `${ev.cid}\n${ev.revokes.seq}`;
            if (!revokes.has(key)) revokes.set(key, [ev.cid, ev.revokes.seq, seq]);
          }
          stored.set(i, {
            pos, cid: ev.cid, seq, id: ev.id, face: ev.face, kind: ev.kind, sender: ev.sender, ts: ev.ts, receivedAt: ev.receivedAt,
            body: ev.body, counts: ev.counts, onlyFor: ev.onlyFor,
          });
        }
        const last: Promise<unknown>[] = [];
        last.push(client.query({ name: 'rim_append_events', text: `INSERT INTO events (pos, cid, seq, id, face, kind, sender, ts, received_at, body, counts, only_for, body_bytes, mls_hash)
          SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::smallint[], $6::integer[], $7::text[],
            $8::bigint[], $9::bigint[], $10::text[], $11::boolean[], $12::text[], $13::integer[], $14::text[])`,
        values: [cols.pos, cols.cid, cols.seq, cols.id, cols.face, cols.kind, cols.sender, cols.ts, cols.at, cols.body, cols.counts, cols.onlyFor, cols.bytes, cols.mlsHash] }));
        // Advanced epochs: rows locked above are updated; a group's first row is a plain INSERT, so a
        // concurrent first commit elsewhere makes this transaction fail (23505) and be retried.
        const moved = [...groups].filter(([, g]) => g.dirty);
        const upd = moved.filter(([, g]) => g.known);
        const ins = moved.filter(([, g]) => !g.known);
        if (upd.length > 0) {
          last.push(client.query(`UPDATE mls_groups m SET epoch = v.epoch, updated_at = v.at FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(cid, epoch, at)
            WHERE m.cid = v.cid`, [upd.map(([c]) => c), upd.map(([, g]) => g.epoch), upd.map(([, g]) => g.at)]));
        }
        if (ins.length > 0) {
          last.push(client.query(`INSERT INTO mls_groups (cid, epoch, updated_at) SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])`,
            [ins.map(([c]) => c), ins.map(([, g]) => g.epoch), ins.map(([, g]) => g.at)]));
        }
        if (members.length > 0) {
          last.push(client.query(`INSERT INTO chat_members (member, cid, peer) SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
            ON CONFLICT DO NOTHING`, [members.map((m) => m[0]), members.map((m) => m[1]), members.map((m) => m[2])]));
        }
        if (hides.length > 0) {
          last.push(client.query(`INSERT INTO hidden (member, cid, seq) SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
            ON CONFLICT DO NOTHING`, [hides.map((h) => h[0]), hides.map((h) => h[1]), hides.map((h) => h[2])]));
        }
        if (revokes.size > 0) {
          const r = [...revokes.values()];
          last.push(client.query(`UPDATE events e SET revoked_by = v.by FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS v(cid, target, by)
            WHERE e.cid = v.cid AND e.seq = v.target AND e.revoked_by IS NULL`, [r.map((x) => x[0]), r.map((x) => x[1]), r.map((x) => x[2])]));
        }
        // If a statement fails, PostgreSQL turns the COMMIT behind it into a ROLLBACK; Promise.all rejects
        // with that statement's error, so nothing is reported stored.
        last.push(client.query('COMMIT'));
        await Promise.all(last);
      } else {
        await client.query('COMMIT');
      }
      return events.map((ev, i): AppendOutcome => {
        const mine = stored.get(i);
        if (mine) return { status: 'stored', event: mine };
        const no = refused.get(i);
        if (no) return no;
        const id = ev.id as string;
        const firstRefusal = refused.get(firstOf.get(id) as number);
        if (firstRefusal && !existing.has(id)) return firstRefusal;
        const dup = existing.get(id) ?? stored.get(firstOf.get(id) as number);
        if (!dup) throw new Error(`duplicate ${id} without its stored event`);
        return { status: 'duplicate', event: dup };
      });
    } catch (err) {
      try {
        await client.query('ROLLBACK');
      } catch (e) {
        broken = e as Error;
      }
      throw err;
    } finally {
      release(broken);
    }
  }

  getEventById(id: string): Promise<StoredEvent | null> {
    return this.byId.get(id);
  }

  async getEventBySeq(cid: string, seq: number): Promise<StoredEvent | null> {
    const r = await this.q<EventRow>(`SELECT ${EVENT_COLS} FROM events e WHERE e.cid = $1 AND e.seq = $2`, [cid, seq]);
    return r.rows[0] ? toEvent(r.rows[0]) : null;
  }

  async listEvents(q: ListQuery): Promise<StoredEvent[]> {
    const p: unknown[] = [q.viewer, q.cid];
    const where = ['e.cid = $2'];
    const after = q.afterSeq !== undefined;
    if (after) where.push(`e.seq > $${p.push(q.afterSeq)}`);
    if (q.face !== undefined) where.push(`e.face = $${p.push(q.face)}`);
    if (q.view !== undefined) where.push(`(e.face = $${p.push(q.view)} OR e.counts)`);
    const limit = p.push(q.limit);
    const offset = p.push(q.offset);
    const r = await this.q<EventRow>(`SELECT ${EVENT_COLS} FROM events e WHERE ${where.join(' AND ')} AND ${VISIBLE}
      ORDER BY e.seq ${after ? 'ASC' : 'DESC'} LIMIT $${limit} OFFSET $${offset}`, p);
    return r.rows.map(toEvent);
  }

  async listUserEvents(viewer: string, limit: number, offset: number, face?: FaceId, view?: FaceId): Promise<StoredEvent[]> {
    const p: unknown[] = [viewer];
    const where = ['m.member = $1'];
    if (face !== undefined) where.push(`e.face = $${p.push(face)}`);
    if (view !== undefined) where.push(`(e.face = $${p.push(view)} OR e.counts)`);
    const l = p.push(limit);
    const o = p.push(offset);
    const r = await this.q<EventRow>(`SELECT ${EVENT_COLS} FROM chat_members m JOIN events e ON e.cid = m.cid
      WHERE ${where.join(' AND ')} AND ${VISIBLE} ORDER BY e.pos DESC LIMIT $${l} OFFSET $${o}`, p);
    return r.rows.map(toEvent);
  }

  async listRange(q: RangeQuery): Promise<StoredEvent[]> {
    const p: unknown[] = [q.viewer, q.cid];
    const where = ['e.cid = $2'];
    if (q.fromSeq !== undefined) where.push(`e.seq >= $${p.push(q.fromSeq)}`);
    if (q.toSeq !== undefined) where.push(`e.seq <= $${p.push(q.toSeq)}`);
    if (q.since !== undefined) where.push(`e.received_at >= $${p.push(q.since)}`);
    if (q.until !== undefined) where.push(`e.received_at <= $${p.push(q.until)}`);
    const l = p.push(q.limit);
    const r = await this.q<EventRow>(`SELECT ${EVENT_COLS} FROM events e WHERE ${where.join(' AND ')} AND ${VISIBLE}
      ORDER BY e.seq ${q.desc === true ? 'DESC' : 'ASC'} LIMIT $${l}`, p);
    return r.rows.map(toEvent);
  }

  async lastSeq(cid: string): Promise<number> {
    const r = await this.q<{ last_seq: number }>('SELECT last_seq FROM conversations WHERE cid = $1', [cid]);
    return r.rows[0]?.last_seq ?? 0;
  }

  async mlsGroup(cid: string): Promise<MlsGroupState> {
    const r = await this.q<{ epoch: number; pending_removal_epoch: number | null }>('SELECT epoch, pending_removal_epoch FROM mls_groups WHERE cid = $1', [cid]);
    const row = r.rows[0];
    return { cid, epoch: row?.epoch ?? 0, pendingRemovalEpoch: row?.pending_removal_epoch ?? null };
  }

  /** One transaction on a pooled connection; a lost database becomes STORE_UNAVAILABLE. */
  private async tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.ready;
    try {
      return await inTransaction(this.pool, fn);
    } catch (err) {
      throw unavailable(err);
    }
  }

  async mlsGroupRecord(cid: string): Promise<MlsGroupRecord> {
    const r = await this.q<{ epoch: number; pending_removal_epoch: number | null; group_info: string | null; group_info_epoch: number | null }>(
      'SELECT epoch, pending_removal_epoch, group_info, group_info_epoch FROM mls_groups WHERE cid = $1', [cid]);
    const row = r.rows[0];
    return { cid, epoch: row?.epoch ?? 0, pendingRemovalEpoch: row?.pending_removal_epoch ?? null, groupInfo: row?.group_info ?? null, groupInfoEpoch: row?.group_info_epoch ?? null };
  }

  mlsUpload(d: { deviceId: string; address: string; credential: string; createdAt: number }, packages: readonly MlsNewPackage[], lastResort: MlsNewPackage | null,
    limits: { maxDevices: number; maxPackages: number }, at: MlsAt): Promise<MlsUploadOutcome> {
    const usable = at.now + at.minLeft;
    return this.tx(async (c) => {
      // One upload per wallet at a time (in the cluster), so the device cap holds under concurrent uploads.
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`mls-devices:${d.address}`]);
      const owner = (await c.query<{ address: string }>('SELECT address FROM mls_devices WHERE device_id = $1', [d.deviceId])).rows[0];
      if (owner && owner.address !== d.address) return { status: 'refused', code: 'MLS_TOO_MANY_DEVICES' } as const;
      // The device's expired packages go first (docs/e2ee.md section 5): they do not count against the cap.
      if (owner) await c.query('DELETE FROM mls_key_packages WHERE device_id = $1 AND not_after <= $2', [d.deviceId, at.now]);
      const stored = owner ? (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM mls_key_packages WHERE device_id = $1 AND NOT last_resort', [d.deviceId])).rows[0]?.n ?? 0 : 0;
      if (stored + packages.length > limits.maxPackages) return { status: 'refused', code: 'TOO_MANY_PACKAGES' } as const;
      if (!owner) {
        const n = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM mls_devices WHERE address = $1', [d.address])).rows[0]?.n ?? 0;
        if (n >= limits.maxDevices) return { status: 'refused', code: 'MLS_TOO_MANY_DEVICES' } as const;
        await c.query('INSERT INTO mls_devices (device_id, address, credential, created_at) VALUES ($1, $2, $3, $4)', [d.deviceId, d.address, d.credential, d.createdAt]);
      }
      if (packages.length > 0) {
        await c.query(`INSERT INTO mls_key_packages (device_id, package, last_resort, not_after)
          SELECT $1, p, false, n FROM unnest($2::text[], $3::bigint[]) WITH ORDINALITY AS t(p, n, i) ORDER BY i`,
        [d.deviceId, packages.map((p) => p.keyPackage), packages.map((p) => p.notAfter)]);
      }
      if (lastResort !== null) {
        await c.query('DELETE FROM mls_key_packages WHERE device_id = $1 AND last_resort', [d.deviceId]);
        await c.query('INSERT INTO mls_key_packages (device_id, package, last_resort, not_after) VALUES ($1, $2, true, $3)', [d.deviceId, lastResort.keyPackage, lastResort.notAfter]);
      }
      const r = (await c.query<{ n: number; has: boolean }>(`SELECT count(*) FILTER (WHERE NOT last_resort)::int AS n, bool_or(last_resort) IS TRUE AS has
        FROM mls_key_packages WHERE device_id = $1 AND not_after > $2`, [d.deviceId, usable])).rows[0];
      return { status: 'ok', available: r?.n ?? 0, lastResort: r?.has ?? false } as const;
    });
  }

  async mlsDevices(address: string, at: MlsAt): Promise<MlsDevice[]> {
    const r = await this.q<{ device_id: string; address: string; credential: string; created_at: number; available: number; last_resort: boolean }>(`
      SELECT d.device_id, d.address, d.credential, d.created_at,
        (SELECT count(*)::int FROM mls_key_packages k WHERE k.device_id = d.device_id AND NOT k.last_resort AND k.not_after > $2) AS available,
        EXISTS (SELECT 1 FROM mls_key_packages k WHERE k.device_id = d.device_id AND k.last_resort AND k.not_after > $2) AS last_resort
      FROM mls_devices d WHERE d.address = $1 ORDER BY d.created_at, d.device_id`, [address, at.now + at.minLeft]);
    return r.rows.map((x) => ({ deviceId: x.device_id, address: x.address, credential: x.credential, createdAt: x.created_at, available: x.available, lastResort: x.last_resort }));
  }

  async mlsDeleteDevice(address: string, deviceId: string): Promise<boolean> {
    const r = await this.q('DELETE FROM mls_devices WHERE device_id = $1 AND address = $2', [deviceId, address]);
    return r.rowCount === 1;
  }

  mlsClaim(addresses: readonly string[], at: MlsAt): Promise<MlsClaimed[]> {
    const usable = at.now + at.minLeft;
    return this.tx(async (c) => {
      const devs = (await c.query<{ device_id: string; address: string }>('SELECT device_id, address FROM mls_devices WHERE address = ANY($1::text[]) ORDER BY address, created_at, device_id', [addresses])).rows;
      if (devs.length === 0) return [];
      const ids = devs.map((d) => d.device_id);
      // Expired packages of these devices are deleted (docs/e2ee.md section 5); one a concurrent claimer
      // holds is left to it (SKIP LOCKED), so the two never wait on each other here.
      await c.query(`DELETE FROM mls_key_packages k USING (
          SELECT id FROM mls_key_packages WHERE device_id = ANY($1::text[]) AND not_after <= $2 FOR UPDATE SKIP LOCKED) x
        WHERE k.id = x.id`, [ids, at.now]);
      // The oldest usable single-use package of each device, locked and deleted in one statement; a package
      // another claimer holds is skipped (SKIP LOCKED), so two claimers never get the same one.
      const taken = (await c.query<{ device_id: string; package: string }>(`DELETE FROM mls_key_packages k USING (
          SELECT p.id FROM unnest($1::text[]) AS d(device_id) CROSS JOIN LATERAL (
            SELECT id FROM mls_key_packages WHERE device_id = d.device_id AND NOT last_resort AND not_after > $2 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) p) x
        WHERE k.id = x.id RETURNING k.device_id, k.package`, [ids, usable])).rows;
      const got = new Map(taken.map((t) => [t.device_id, t.package]));
      const rest = ids.filter((id) => !got.has(id));
      const last = rest.length === 0 ? new Map<string, string>() : new Map((await c.query<{ device_id: string; package: string }>(
        'SELECT device_id, package FROM mls_key_packages WHERE device_id = ANY($1::text[]) AND last_resort AND not_after > $2', [rest, usable])).rows.map((r) => [r.device_id, r.package]));
      const left = new Map((await c.query<{ device_id: string; n: number }>(
        'SELECT device_id, count(*)::int AS n FROM mls_key_packages WHERE device_id = ANY($1::text[]) AND NOT last_resort AND not_after > $2 GROUP BY device_id', [ids, usable])).rows.map((r) => [r.device_id, r.n]));
      const out: MlsClaimed[] = [];
      for (const d of devs) {
        const one = got.get(d.device_id);
        if (one !== undefined) out.push({ address: d.address, deviceId: d.device_id, keyPackage: one, lastResort: false, available: left.get(d.device_id) ?? 0 });
        else {
          const lr = last.get(d.device_id);
          if (lr !== undefined) out.push({ address: d.address, deviceId: d.device_id, keyPackage: lr, lastResort: true, available: left.get(d.device_id) ?? 0 });
        }
      }
      return out;
    });
  }

  mlsPutGroupInfo(cid: string, epoch: number, groupInfo: string, now: number): Promise<{ stored: boolean; currentEpoch: number }> {
    return this.tx(async (c) => {
      const row = (await c.query<{ epoch: number }>('SELECT epoch FROM mls_groups WHERE cid = $1 FOR UPDATE', [cid])).rows[0];
      const currentEpoch = row?.epoch ?? 0;
      if (epoch !== currentEpoch) return { stored: false, currentEpoch };
      if (row) await c.query('UPDATE mls_groups SET group_info = $2, group_info_epoch = $3, updated_at = $4 WHERE cid = $1', [cid, groupInfo, epoch, now]);
      // No row yet (epoch 0): a first commit racing this one meets the unique key and is retried.
      else await c.query('INSERT INTO mls_groups (cid, epoch, group_info, group_info_epoch, updated_at) VALUES ($1, 0, $2, 0, $3) ON CONFLICT (cid) DO NOTHING', [cid, groupInfo, now]);
      return { stored: true, currentEpoch };
    });
  }

  async mlsSetPendingRemoval(cid: string, epoch: number): Promise<boolean> {
    const r = await this.q('UPDATE mls_groups SET pending_removal_epoch = $2, updated_at = $3 WHERE cid = $1 AND epoch = $2', [cid, epoch, Date.now()]);
    return r.rowCount === 1;
  }

  async mlsEpochAuth(cid: string, epoch: number, hash: string): Promise<string> {
    const r = await this.q<{ hash: string }>(`WITH ins AS (INSERT INTO mls_epoch_auth (cid, epoch, hash) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING RETURNING hash)
      SELECT hash FROM ins UNION ALL SELECT hash FROM mls_epoch_auth WHERE cid = $1 AND epoch = $2 LIMIT 1`, [cid, epoch, hash]);
    return (r.rows[0] as { hash: string }).hash;
  }

  async metaGetOrSet(key: string, value: string): Promise<string> {
    const r = await this.q<{ value: string }>(`WITH ins AS (INSERT INTO store_meta (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING value)
      SELECT value FROM ins UNION ALL SELECT value FROM store_meta WHERE key = $1 LIMIT 1`, [key, value]);
    return (r.rows[0] as { value: string }).value;
  }

  async getChat(user: string, cid: string): Promise<ChatState | null> {
    const r = await this.q<ChatRow>('SELECT * FROM chat_members WHERE member = $1 AND cid = $2', [user, cid]);
    return r.rows[0] ? toChat(r.rows[0]) : null;
  }

  async ensureChat(user: string, cid: string, peer: string | null): Promise<ChatState> {
    const r = await this.q<ChatRow>(`WITH ins AS (INSERT INTO chat_members (member, cid, peer) VALUES ($1, $2, $3)
        ON CONFLICT DO NOTHING RETURNING *)
      SELECT * FROM ins UNION ALL SELECT * FROM chat_members WHERE member = $1 AND cid = $2 LIMIT 1`, [user, cid, peer]);
    return toChat(r.rows[0] as ChatRow);
  }

  async listChats(user: string, limit: number, offset: number): Promise<ChatSummary[]> {
    // One statement: the chats, each with its newest visible chat message and its unread count.
    const r = await this.q<ChatRow & { last_seq: number; last_post_at: number; unread: number; last: EventRow | null }>(`
      SELECT m.*, c.last_seq, c.last_post_at,
        (SELECT count(*) FROM events e WHERE e.cid = m.cid AND e.seq > m.last_read_seq AND e.counts AND e.sender <> $1 AND ${VISIBLE}) AS unread,
        (SELECT to_jsonb(x) FROM (SELECT ${EVENT_COLS} FROM events e WHERE e.cid = m.cid AND e.counts AND ${VISIBLE}
           ORDER BY e.seq DESC LIMIT 1) x) AS last
      FROM chat_members m JOIN conversations c ON c.cid = m.cid
      WHERE m.member = $1
      ORDER BY (m.pinned_at IS NULL), m.pinned_at DESC, c.last_post_at DESC, m.cid
      LIMIT $2 OFFSET $3`, [user, limit, offset]);
    return r.rows.map((row) => ({
      ...toChat(row), lastSeq: row.last_seq, lastPostAt: row.last_post_at, unread: row.unread, last: row.last ? toEvent(row.last) : null,
    }));
  }

  async markRead(user: string, cid: string, seq: number): Promise<number> {
    const r = await this.q<{ last_read_seq: number }>(`UPDATE chat_members SET last_read_seq = GREATEST(last_read_seq, $3)
      WHERE member = $1 AND cid = $2 RETURNING last_read_seq`, [user, cid, seq]);
    return r.rows[0]?.last_read_seq ?? 0;
  }

  async unreadCount(user: string, cid?: string): Promise<number> {
    const r = cid === undefined
      ? await this.q<{ n: number }>(`SELECT count(*) AS n FROM chat_members m JOIN events e ON e.cid = m.cid AND e.seq > m.last_read_seq
          WHERE m.member = $1 AND e.counts AND e.sender <> $1 AND ${VISIBLE}`, [user])
      : await this.q<{ n: number }>(`SELECT count(*) AS n FROM chat_members m JOIN events e ON e.cid = m.cid AND e.seq > m.last_read_seq
          WHERE m.member = $1 AND m.cid = $2 AND e.counts AND e.sender <> $1 AND ${VISIBLE}`, [user, cid]);
    return r.rows[0]?.n ?? 0;
  }

  async setMuted(user: string, cid: string, muted: boolean): Promise<void> {
    await this.q('UPDATE chat_members SET muted = $3 WHERE member = $1 AND cid = $2', [user, cid, muted]);
  }

  mutedUsers(cid: string): Promise<string[]> {
    return this.muted.get(cid);
  }

  async removeChat(user: string, cid: string): Promise<void> {
    await this.q('DELETE FROM chat_members WHERE member = $1 AND cid = $2', [user, cid]);
  }

  async groupConversations(): Promise<string[]> {
    const r = await this.q<{ cid: string }>("SELECT cid FROM conversations WHERE cid NOT LIKE 'dm:%' ORDER BY cid", []);
    return r.rows.map((x) => x.cid);
  }

  async setAdmin(cid: string, user: string, admin: boolean): Promise<void> {
    if (admin) await this.q('INSERT INTO group_admins (cid, member) VALUES ($1, $2) ON CONFLICT DO NOTHING', [cid, user]);
    else await this.q('DELETE FROM group_admins WHERE cid = $1 AND member = $2', [cid, user]);
  }

  async listAdmins(cid: string): Promise<string[]> {
    const r = await this.q<{ member: string }>('SELECT member FROM group_admins WHERE cid = $1 ORDER BY member', [cid]);
    return r.rows.map((x) => x.member);
  }

  async setPinned(user: string, cid: string, pinnedAt: number | null): Promise<void> {
    await this.q('UPDATE chat_members SET pinned_at = $3 WHERE member = $1 AND cid = $2', [user, cid, pinnedAt]);
  }

  async putToken(hash: string, record: TokenRecord): Promise<void> {
    await this.q(`INSERT INTO tokens (hash, address, expires_at, revoked) VALUES ($1, $2, $3, $4)
      ON CONFLICT (hash) DO UPDATE SET address = excluded.address, expires_at = excluded.expires_at, revoked = excluded.revoked`,
    [hash, record.address, record.expiresAt, record.revoked]);
  }

  async getToken(hash: string): Promise<TokenRecord | null> {
    const r = await this.q<{ address: string; expires_at: number; revoked: boolean }>('SELECT address, expires_at, revoked FROM tokens WHERE hash = $1', [hash]);
    const row = r.rows[0];
    return row ? { address: row.address, expiresAt: row.expires_at, revoked: row.revoked } : null;
  }

  async revokeToken(hash: string): Promise<void> {
    await this.q('UPDATE tokens SET revoked = true WHERE hash = $1', [hash]);
  }

  async putNonce(nonce: string, expiresAt: number): Promise<void> {
    await this.q('INSERT INTO nonces (nonce, expires_at) VALUES ($1, $2)', [nonce, expiresAt]);
  }

  async consumeNonce(nonce: string, now: number): Promise<boolean> {
    // A row lock: of two processes consuming the same nonce at once, the second re-reads `used` after
    // the first commits and changes nothing.
    const r = await this.q('UPDATE nonces SET used = true WHERE nonce = $1 AND NOT used AND expires_at > $2', [nonce, now]);
    await this.q('DELETE FROM nonces WHERE expires_at < $1', [now - 86_400_000]);
    return r.rowCount === 1;
  }

  async putBan(ban: BanRecord): Promise<void> {
    await this.q(`INSERT INTO bans (address, reason, created_at) VALUES ($1, $2, $3)
      ON CONFLICT (address) DO UPDATE SET reason = excluded.reason, created_at = excluded.created_at`,
    [ban.address, ban.reason, ban.createdAt]);
  }

  async deleteBan(address: string): Promise<boolean> {
    const r = await this.q('DELETE FROM bans WHERE address = $1', [address]);
    return r.rowCount === 1;
  }

  async listBans(): Promise<BanRecord[]> {
    const r = await this.q<{ address: string; reason: string; created_at: number }>('SELECT address, reason, created_at FROM bans ORDER BY created_at, address', []);
    return r.rows.map((row) => ({ address: row.address, reason: row.reason, createdAt: row.created_at }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing || this.queue.length > 0) await new Promise((r) => setTimeout(r, 5));
    await this.pool.end();
  }
}

/** A database that cannot be reached (or went away mid-transaction) as the catalogue's temporary error. */
function unavailable(err: unknown): unknown {
  if (err instanceof AppError) return err;
  if (isTransient(err)) {
    return new AppError('STORE_UNAVAILABLE', undefined, { cause: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
  }
  return err;
}
