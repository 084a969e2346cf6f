import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type {
  AppendOutcome, ChatState, ChatSummary, FaceId, ListQuery, NewEvent, Store, StoredEvent, TokenRecord,
} from '../port.js';
import { MIGRATIONS } from './schema.js';

interface EventRow {
  pos: number; cid: string; seq: number; id: string | null; face: number; kind: number; sender: string;
  ts: number; received_at: number; body: string; counts: number; only_for: string | null;
}
interface ChatRow {
  user: string; cid: string; peer: string | null; last_read_seq: number; muted: number; pinned_at: number | null;
}
interface ChatListRow extends ChatRow { last_seq: number; last_post_at: number }

const toEvent = (r: EventRow): StoredEvent => ({
  pos: r.pos, cid: r.cid, seq: r.seq, id: r.id, face: r.face as FaceId, kind: r.kind, sender: r.sender, ts: r.ts,
  receivedAt: r.received_at, body: r.body, counts: r.counts === 1, onlyFor: r.only_for,
});
const toChat = (r: ChatRow): ChatState => ({
  user: r.user, cid: r.cid, peer: r.peer, lastReadSeq: r.last_read_seq, muted: r.muted === 1, pinnedAt: r.pinned_at,
});

// Visibility of event e to the user bound as @viewer.
const VISIBLE = `(e.only_for IS NULL OR e.only_for = @viewer)
  AND NOT EXISTS (SELECT 1 FROM hidden h WHERE h.user = @viewer AND h.cid = e.cid AND h.seq = e.seq)`;

export interface SqliteOptions {
  /** Path of the database file, or ':memory:'. */
  file: string;
  synchronous: 'FULL' | 'NORMAL';
}

/**
 * The embedded store: one SQLite file in WAL mode. Writes are batched by the caller (group commit), so
 * one fsync covers many messages. Safe for one process; several processes need a database server.
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly s;
  private readonly appendTx: (events: readonly NewEvent[]) => AppendOutcome[];

  constructor(opts: SqliteOptions) {
    if (opts.file !== ':memory:') mkdirSync(path.dirname(opts.file), { recursive: true });
    this.db = new Database(opts.file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma(`synchronous = ${opts.synchronous}`);
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    const db = this.db;
    this.s = {
      byId: db.prepare<[string], EventRow>('SELECT * FROM events WHERE id = ?'),
      bySeq: db.prepare<[string, number], EventRow>('SELECT * FROM events WHERE cid = ? AND seq = ?'),
      conv: db.prepare<[string], { last_seq: number; last_post_at: number }>('SELECT last_seq, last_post_at FROM conversations WHERE cid = ?'),
      insertEvent: db.prepare(`INSERT INTO events (cid, seq, id, face, kind, sender, ts, received_at, body, counts, only_for)
        VALUES (@cid, @seq, @id, @face, @kind, @sender, @ts, @receivedAt, @body, @counts, @onlyFor)`),
      upsertConv: db.prepare(`INSERT INTO conversations (cid, last_seq, last_post_at) VALUES (@cid, @lastSeq, @lastPostAt)
        ON CONFLICT (cid) DO UPDATE SET last_seq = excluded.last_seq, last_post_at = excluded.last_post_at`),
      ensureChat: db.prepare('INSERT OR IGNORE INTO chat_members (user, cid, peer) VALUES (?, ?, ?)'),
      getChat: db.prepare<[string, string], ChatRow>('SELECT * FROM chat_members WHERE user = ? AND cid = ?'),
      hide: db.prepare('INSERT OR IGNORE INTO hidden (user, cid, seq) VALUES (?, ?, ?)'),
      listChats: db.prepare<{ user: string; limit: number; offset: number }, ChatListRow>(`
        SELECT m.*, c.last_seq, c.last_post_at FROM chat_members m JOIN conversations c ON c.cid = m.cid
        WHERE m.user = @user
        ORDER BY (m.pinned_at IS NULL), m.pinned_at DESC, c.last_post_at DESC, m.cid
        LIMIT @limit OFFSET @offset`),
      lastVisible: db.prepare<{ cid: string; viewer: string }, EventRow>(`
        SELECT * FROM events e WHERE e.cid = @cid AND e.counts = 1 AND ${VISIBLE} ORDER BY e.seq DESC LIMIT 1`),
      unreadChat: db.prepare<{ cid: string; viewer: string; after: number }, { n: number }>(`
        SELECT COUNT(*) AS n FROM events e WHERE e.cid = @cid AND e.seq > @after AND e.counts = 1
        AND e.sender <> @viewer AND ${VISIBLE}`),
      unreadAll: db.prepare<{ viewer: string }, { n: number }>(`
        SELECT COUNT(*) AS n FROM chat_members m JOIN events e ON e.cid = m.cid AND e.seq > m.last_read_seq
        WHERE m.user = @viewer AND e.counts = 1 AND e.sender <> @viewer AND ${VISIBLE}`),
      markRead: db.prepare('UPDATE chat_members SET last_read_seq = MAX(last_read_seq, ?) WHERE user = ? AND cid = ?'),
      setMuted: db.prepare('UPDATE chat_members SET muted = ? WHERE user = ? AND cid = ?'),
      setPinned: db.prepare('UPDATE chat_members SET pinned_at = ? WHERE user = ? AND cid = ?'),
      putToken: db.prepare('INSERT OR REPLACE INTO tokens (hash, address, expires_at, revoked) VALUES (?, ?, ?, ?)'),
      getToken: db.prepare<[string], { address: string; expires_at: number; revoked: number }>('SELECT * FROM tokens WHERE hash = ?'),
      revokeToken: db.prepare('UPDATE tokens SET revoked = 1 WHERE hash = ?'),
      putNonce: db.prepare('INSERT INTO nonces (nonce, expires_at) VALUES (?, ?)'),
      consumeNonce: db.prepare('UPDATE nonces SET used = 1 WHERE nonce = ? AND used = 0 AND expires_at > ?'),
      pruneNonces: db.prepare('DELETE FROM nonces WHERE expires_at < ?'),
    };
    this.appendTx = this.db.transaction((events: readonly NewEvent[]) => this.appendInTx(events));
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        this.db.exec(MIGRATIONS[v] as string);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private appendInTx(events: readonly NewEvent[]): AppendOutcome[] {
    const outcomes: AppendOutcome[] = [];
    const convs = new Map<string, { lastSeq: number; lastPostAt: number }>();
    for (const ev of events) {
      if (ev.id !== null) {
        const existing = this.s.byId.get(ev.id);
        if (existing) {
          outcomes.push({ status: 'duplicate', event: toEvent(existing) });
          continue;
        }
      }
      let conv = convs.get(ev.cid);
      if (!conv) {
        const row = this.s.conv.get(ev.cid);
        conv = { lastSeq: row?.last_seq ?? 0, lastPostAt: row?.last_post_at ?? 0 };
        convs.set(ev.cid, conv);
      }
      const seq = conv.lastSeq + 1;
      conv.lastSeq = seq;
      if (ev.counts) conv.lastPostAt = Math.max(conv.lastPostAt, ev.receivedAt);
      const info = this.s.insertEvent.run({
        cid: ev.cid, seq, id: ev.id, face: ev.face, kind: ev.kind, sender: ev.sender, ts: ev.ts,
        receivedAt: ev.receivedAt, body: ev.body, counts: ev.counts ? 1 : 0, onlyFor: ev.onlyFor,
      });
      if (seq === 1 && ev.participants) {
        const [a, b] = ev.participants;
        this.s.ensureChat.run(a, ev.cid, b);
        if (b !== a) this.s.ensureChat.run(b, ev.cid, a);
      }
      if (ev.hides && ev.onlyFor !== null) this.s.hide.run(ev.onlyFor, ev.cid, ev.hides.seq);
      outcomes.push({
        status: 'stored',
        event: {
          pos: Number(info.lastInsertRowid), cid: ev.cid, seq, id: ev.id, face: ev.face, kind: ev.kind, sender: ev.sender,
          ts: ev.ts, receivedAt: ev.receivedAt, body: ev.body, counts: ev.counts, onlyFor: ev.onlyFor,
        },
      });
    }
    for (const [cid, c] of convs) this.s.upsertConv.run({ cid, lastSeq: c.lastSeq, lastPostAt: c.lastPostAt });
    return outcomes;
  }

  async appendEvents(events: readonly NewEvent[]): Promise<AppendOutcome[]> {
    return events.length === 0 ? [] : this.appendTx(events);
  }

  async getEventById(id: string): Promise<StoredEvent | null> {
    const r = this.s.byId.get(id);
    return r ? toEvent(r) : null;
  }

  async getEventBySeq(cid: string, seq: number): Promise<StoredEvent | null> {
    const r = this.s.bySeq.get(cid, seq);
    return r ? toEvent(r) : null;
  }

  private readonly listCache = new Map<string, Database.Statement<Record<string, unknown>, EventRow>>();

  async listEvents(q: ListQuery): Promise<StoredEvent[]> {
    const after = q.afterSeq !== undefined;
    const key = `${after}:${q.face !== undefined}`;
    let stmt = this.listCache.get(key);
    if (!stmt) {
      stmt = this.db.prepare<Record<string, unknown>, EventRow>(`SELECT * FROM events e WHERE e.cid = @cid
        ${after ? 'AND e.seq > @afterSeq' : ''} ${q.face !== undefined ? 'AND e.face = @face' : ''} AND ${VISIBLE}
        ORDER BY e.seq ${after ? 'ASC' : 'DESC'} LIMIT @limit OFFSET @offset`);
      this.listCache.set(key, stmt);
    }
    const params: Record<string, unknown> = { cid: q.cid, viewer: q.viewer, limit: q.limit, offset: q.offset };
    if (after) params['afterSeq'] = q.afterSeq;
    if (q.face !== undefined) params['face'] = q.face;
    return stmt.all(params).map(toEvent);
  }

  async listUserEvents(viewer: string, limit: number, offset: number, face?: FaceId): Promise<StoredEvent[]> {
    const rows = this.db.prepare<Record<string, unknown>, EventRow>(`SELECT e.* FROM chat_members m
      JOIN events e ON e.cid = m.cid WHERE m.user = @viewer ${face !== undefined ? 'AND e.face = @face' : ''} AND ${VISIBLE}
      ORDER BY e.pos DESC LIMIT @limit OFFSET @offset`).all(face !== undefined ? { viewer, limit, offset, face } : { viewer, limit, offset });
    return rows.map(toEvent);
  }

  async getChat(user: string, cid: string): Promise<ChatState | null> {
    const r = this.s.getChat.get(user, cid);
    return r ? toChat(r) : null;
  }

  async ensureChat(user: string, cid: string, peer: string | null): Promise<ChatState> {
    this.s.ensureChat.run(user, cid, peer);
    return toChat(this.s.getChat.get(user, cid) as ChatRow);
  }

  async listChats(user: string, limit: number, offset: number): Promise<ChatSummary[]> {
    return this.s.listChats.all({ user, limit, offset }).map((r) => {
      const last = this.s.lastVisible.get({ cid: r.cid, viewer: user });
      const unread = this.s.unreadChat.get({ cid: r.cid, viewer: user, after: r.last_read_seq })?.n ?? 0;
      return { ...toChat(r), lastSeq: r.last_seq, lastPostAt: r.last_post_at, unread, last: last ? toEvent(last) : null };
    });
  }

  async markRead(user: string, cid: string, seq: number): Promise<number> {
    this.s.markRead.run(seq, user, cid);
    return this.s.getChat.get(user, cid)?.last_read_seq ?? 0;
  }

  async unreadCount(user: string, cid?: string): Promise<number> {
    if (cid === undefined) return this.s.unreadAll.get({ viewer: user })?.n ?? 0;
    const chat = this.s.getChat.get(user, cid);
    if (!chat) return 0;
    return this.s.unreadChat.get({ cid, viewer: user, after: chat.last_read_seq })?.n ?? 0;
  }

  async setMuted(user: string, cid: string, muted: boolean): Promise<void> {
    this.s.setMuted.run(muted ? 1 : 0, user, cid);
  }

  async setPinned(user: string, cid: string, pinnedAt: number | null): Promise<void> {
    this.s.setPinned.run(pinnedAt, user, cid);
  }

  async putToken(hash: string, record: TokenRecord): Promise<void> {
    this.s.putToken.run(hash, record.address, record.expiresAt, record.revoked ? 1 : 0);
  }

  async getToken(hash: string): Promise<TokenRecord | null> {
    const r = this.s.getToken.get(hash);
    return r ? { address: r.address, expiresAt: r.expires_at, revoked: r.revoked === 1 } : null;
  }

  async revokeToken(hash: string): Promise<void> {
    this.s.revokeToken.run(hash);
  }

  async putNonce(nonce: string, expiresAt: number): Promise<void> {
    this.s.putNonce.run(nonce, expiresAt);
  }

  async consumeNonce(nonce: string, now: number): Promise<boolean> {
    const ok = this.s.consumeNonce.run(nonce, now).changes === 1;
    this.s.pruneNonces.run(now - 86_400_000);
    return ok;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
