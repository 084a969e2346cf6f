import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type {
  AppendOutcome, BanRecord, ChatState, ChatSummary, FaceId, ListQuery, MlsAt, MlsClaimed, MlsDevice, MlsGroupRecord, MlsGroupState, MlsUploadOutcome, NewEvent, RangeQuery, Store, StoredEvent, TokenRecord,
} from '../port.js';
import { prepareConnection } from './schema.js';
import { toEvent, type EventRow } from './writer-core.js';
import { InlineWriter, ThreadWriter, type CheckpointOptions, type WriterClient } from './writer-client.js';

interface ChatRow {
  user: string; cid: string; peer: string | null; last_read_seq: number; muted: number; pinned_at: number | null;
}
interface ChatListRow extends ChatRow { last_seq: number; last_post_at: number }

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
  /** The checkpointer's cadence (checkpoint-worker.js); the defaults are for production, tests shorten them. */
  checkpoint?: CheckpointOptions;
}

/**
 * The embedded store: one SQLite file in WAL mode. Writes go, in call order, to a writer thread and are
 * batched by the caller (group commit): one fsync covers many messages and never blocks this thread,
 * which keeps parsing, verifying and pushing. Reads run here on their own connection (WAL lets them run
 * beside the writer). Safe for one process; several processes need a database server.
 */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly s;
  private readonly writer: WriterClient;
  private readonly listCache = new Map<string, Database.Statement<Record<string, unknown>, EventRow>>();
  private readonly epochValue: string;

  /** The writer every write of this file goes through; the archive's state operations use it too (archive-state.js). */
  writerClient(): WriterClient {
    return this.writer;
  }

  constructor(opts: SqliteOptions) {
    const memory = opts.file === ':memory:';
    if (!memory) mkdirSync(path.dirname(opts.file), { recursive: true });
    this.db = new Database(opts.file);
    prepareConnection(this.db, opts.synchronous);
    this.writer = memory ? new InlineWriter(this.db) : new ThreadWriter(opts.file, opts.synchronous, opts.checkpoint);
    const db = this.db;
    this.epochValue = (db.prepare("SELECT value FROM store_meta WHERE key = 'epoch'").get() as { value: string }).value;
    this.s = {
      byId: db.prepare<[string], EventRow>('SELECT * FROM events WHERE id = ?'),
      bySeq: db.prepare<[string, number], EventRow>('SELECT * FROM events WHERE cid = ? AND seq = ?'),
      getChat: db.prepare<[string, string], ChatRow>('SELECT * FROM chat_members WHERE user = ? AND cid = ?'),
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
      mutedUsers: db.prepare<[string], { user: string }>('SELECT user FROM chat_members WHERE cid = ? AND muted = 1'),
      groupConversations: db.prepare<[], { cid: string }>("SELECT cid FROM conversations WHERE cid NOT LIKE 'dm:%' ORDER BY cid"),
      listAdmins: db.prepare<[string], { user: string }>('SELECT user FROM group_admins WHERE cid = ? ORDER BY user'),
      getToken: db.prepare<[string], { address: string; expires_at: number; revoked: number }>('SELECT * FROM tokens WHERE hash = ?'),
      lastSeq: db.prepare<[string], { last_seq: number }>('SELECT last_seq FROM conversations WHERE cid = ?'),
      mlsGroup: db.prepare<[string], { epoch: number; pending_removal_epoch: number | null; group_info: string | null; group_info_epoch: number | null }>('SELECT * FROM mls_groups WHERE cid = ?'),
      mlsDevices: db.prepare<[number, number, string], { device_id: string; address: string; credential: string; created_at: number; available: number; last_resort: number }>(`
        SELECT d.*, (SELECT COUNT(*) FROM mls_key_packages k WHERE k.device_id = d.device_id AND k.last_resort = 0 AND k.not_after > ?) AS available,
          EXISTS (SELECT 1 FROM mls_key_packages k WHERE k.device_id = d.device_id AND k.last_resort = 1 AND k.not_after > ?) AS last_resort
        FROM mls_devices d WHERE d.address = ? ORDER BY d.created_at, d.device_id`),
      listBans: db.prepare<[], { address: string; reason: string; created_at: number }>('SELECT * FROM bans ORDER BY created_at, address'),
    };
  }

  async appendEvents(events: readonly NewEvent[]): Promise<AppendOutcome[]> {
    const written = await this.writer.call('appendEvents', events);
    return written.map((w, i): AppendOutcome => {
      if (w.status === 'duplicate' || w.status === 'refused') return w;
      const ev = events[i] as NewEvent;
      return {
        status: 'stored',
        event: {
          pos: w.pos, cid: ev.cid, seq: w.seq, id: ev.id, face: ev.face, kind: ev.kind, sender: ev.sender,
          ts: ev.ts, receivedAt: ev.receivedAt, body: ev.body, counts: ev.counts, onlyFor: ev.onlyFor,
        },
      };
    });
  }

  async mlsGroup(cid: string): Promise<MlsGroupState> {
    const r = this.s.mlsGroup.get(cid);
    return { cid, epoch: r?.epoch ?? 0, pendingRemovalEpoch: r?.pending_removal_epoch ?? null };
  }

  async mlsGroupRecord(cid: string): Promise<MlsGroupRecord> {
    const r = this.s.mlsGroup.get(cid);
    return { cid, epoch: r?.epoch ?? 0, pendingRemovalEpoch: r?.pending_removal_epoch ?? null, groupInfo: r?.group_info ?? null, groupInfoEpoch: r?.group_info_epoch ?? null };
  }

  mlsUpload(...a: Parameters<Store['mlsUpload']>): Promise<MlsUploadOutcome> {
    return this.writer.call('mlsUpload', ...a);
  }

  async mlsDevices(address: string, at: MlsAt): Promise<MlsDevice[]> {
    const usable = at.now + at.minLeft;
    return this.s.mlsDevices.all(usable, usable, address).map((r) => ({
      deviceId: r.device_id, address: r.address, credential: r.credential, createdAt: r.created_at, available: r.available, lastResort: r.last_resort === 1,
    }));
  }

  mlsDeleteDevice(address: string, deviceId: string): Promise<boolean> {
    return this.writer.call('mlsDeleteDevice', address, deviceId);
  }

  mlsClaim(addresses: readonly string[], at: MlsAt): Promise<MlsClaimed[]> {
    return this.writer.call('mlsClaim', addresses, at);
  }

  mlsPutGroupInfo(cid: string, epoch: number, groupInfo: string, now: number): Promise<{ stored: boolean; currentEpoch: number }> {
    return this.writer.call('mlsPutGroupInfo', cid, epoch, groupInfo, now);
  }

  mlsSetPendingRemoval(cid: string, epoch: number): Promise<boolean> {
    return this.writer.call('mlsSetPendingRemoval', cid, epoch, Date.now());
  }

  mlsEpochAuth(cid: string, epoch: number, hash: string): Promise<string> {
    return this.writer.call('mlsEpochAuth', cid, epoch, hash);
  }

  metaGetOrSet(key: string, value: string): Promise<string> {
    return this.writer.call('metaGetOrSet', key, value);
  }

  async getEventById(id: string): Promise<StoredEvent | null> {
    const r = this.s.byId.get(id);
    return r ? toEvent(r) : null;
  }

  async getEventBySeq(cid: string, seq: number): Promise<StoredEvent | null> {
    const r = this.s.bySeq.get(cid, seq);
    return r ? toEvent(r) : null;
  }

  async listEvents(q: ListQuery): Promise<StoredEvent[]> {
    const after = q.afterSeq !== undefined;
    const key = `${after}:${q.face !== undefined}:${q.view !== undefined}`;
    let stmt = this.listCache.get(key);
    if (!stmt) {
      stmt = this.db.prepare<Record<string, unknown>, EventRow>(`SELECT * FROM events e WHERE e.cid = @cid
        ${after ? 'AND e.seq > @afterSeq' : ''} ${q.face !== undefined ? 'AND e.face = @face' : ''}
        ${q.view !== undefined ? 'AND (e.face = @view OR e.counts = 1)' : ''} AND ${VISIBLE}
        ORDER BY e.seq ${after ? 'ASC' : 'DESC'} LIMIT @limit OFFSET @offset`);
      this.listCache.set(key, stmt);
    }
    const params: Record<string, unknown> = { cid: q.cid, viewer: q.viewer, limit: q.limit, offset: q.offset };
    if (after) params['afterSeq'] = q.afterSeq;
    if (q.face !== undefined) params['face'] = q.face;
    if (q.view !== undefined) params['view'] = q.view;
    return stmt.all(params).map(toEvent);
  }

  async listUserEvents(viewer: string, limit: number, offset: number, face?: FaceId, view?: FaceId): Promise<StoredEvent[]> {
    const params: Record<string, unknown> = { viewer, limit, offset };
    if (face !== undefined) params['face'] = face;
    if (view !== undefined) params['view'] = view;
    const rows = this.db.prepare<Record<string, unknown>, EventRow>(`SELECT e.* FROM chat_members m
      JOIN events e ON e.cid = m.cid WHERE m.user = @viewer ${face !== undefined ? 'AND e.face = @face' : ''}
      ${view !== undefined ? 'AND (e.face = @view OR e.counts = 1)' : ''} AND ${VISIBLE}
      ORDER BY e.pos DESC LIMIT @limit OFFSET @offset`).all(params);
    return rows.map(toEvent);
  }

  async listRange(q: RangeQuery): Promise<StoredEvent[]> {
    const params: Record<string, unknown> = { cid: q.cid, viewer: q.viewer, limit: q.limit };
    const where: string[] = [];
    if (q.fromSeq !== undefined) { where.push('e.seq >= @fromSeq'); params['fromSeq'] = q.fromSeq; }
    if (q.toSeq !== undefined) { where.push('e.seq <= @toSeq'); params['toSeq'] = q.toSeq; }
    if (q.since !== undefined) { where.push('e.received_at >= @since'); params['since'] = q.since; }
    if (q.until !== undefined) { where.push('e.received_at <= @until'); params['until'] = q.until; }
    const key = `range:${where.join(',')}:${q.desc === true}`;
    let stmt = this.listCache.get(key);
    if (!stmt) {
      stmt = this.db.prepare<Record<string, unknown>, EventRow>(`SELECT * FROM events e WHERE e.cid = @cid
        ${where.map((w) => `AND ${w}`).join(' ')} AND ${VISIBLE}
        ORDER BY e.seq ${q.desc === true ? 'DESC' : 'ASC'} LIMIT @limit`);
      this.listCache.set(key, stmt);
    }
    return stmt.all(params).map(toEvent);
  }

  async lastSeq(cid: string): Promise<number> {
    return this.s.lastSeq.get(cid)?.last_seq ?? 0;
  }


  async getChat(user: string, cid: string): Promise<ChatState | null> {
    const r = this.s.getChat.get(user, cid);
    return r ? toChat(r) : null;
  }

  async ensureChat(user: string, cid: string, peer: string | null): Promise<ChatState> {
    await this.writer.call('ensureChat', user, cid, peer);
    return toChat(this.s.getChat.get(user, cid) as ChatRow);
  }

  async listChats(user: string, limit: number, offset: number): Promise<ChatSummary[]> {
    return this.s.listChats.all({ user, limit, offset }).map((r) => {
      const last = this.s.lastVisible.get({ cid: r.cid, viewer: user });
      const unread = this.s.unreadChat.get({ cid: r.cid, viewer: user, after: r.last_read_seq })?.n ?? 0;
      return { ...toChat(r), lastSeq: r.last_seq, lastPostAt: r.last_post_at, unread, last: last ? toEvent(last) : null };
    });
  }

  markRead(user: string, cid: string, seq: number): Promise<number> {
    return this.writer.call('markRead', user, cid, seq);
  }

  async unreadCount(user: string, cid?: string): Promise<number> {
    if (cid === undefined) return this.s.unreadAll.get({ viewer: user })?.n ?? 0;
    const chat = this.s.getChat.get(user, cid);
    if (!chat) return 0;
    return this.s.unreadChat.get({ cid, viewer: user, after: chat.last_read_seq })?.n ?? 0;
  }

  setMuted(user: string, cid: string, muted: boolean): Promise<void> {
    return this.writer.call('setMuted', user, cid, muted);
  }

  async mutedUsers(cid: string): Promise<string[]> {
    return this.s.mutedUsers.all(cid).map((r) => r.user);
  }

  removeChat(user: string, cid: string): Promise<void> {
    return this.writer.call('removeChat', user, cid);
  }

  async groupConversations(): Promise<string[]> {
    return this.s.groupConversations.all().map((r) => r.cid);
  }

  setAdmin(cid: string, user: string, admin: boolean): Promise<void> {
    return this.writer.call('setAdmin', cid, user, admin);
  }

  async listAdmins(cid: string): Promise<string[]> {
    return this.s.listAdmins.all(cid).map((r) => r.user);
  }

  setPinned(user: string, cid: string, pinnedAt: number | null): Promise<void> {
    return this.writer.call('setPinned', user, cid, pinnedAt);
  }

  putToken(hash: string, record: TokenRecord): Promise<void> {
    return this.writer.call('putToken', hash, record);
  }

  async getToken(hash: string): Promise<TokenRecord | null> {
    const r = this.s.getToken.get(hash);
    return r ? { address: r.address, expiresAt: r.expires_at, revoked: r.revoked === 1 } : null;
  }

  revokeToken(hash: string): Promise<void> {
    return this.writer.call('revokeToken', hash);
  }

  putNonce(nonce: string, expiresAt: number): Promise<void> {
    return this.writer.call('putNonce', nonce, expiresAt);
  }

  consumeNonce(nonce: string, now: number): Promise<boolean> {
    return this.writer.call('consumeNonce', nonce, now);
  }

  async epoch(): Promise<string> {
    return this.epochValue;
  }

  putBan(ban: BanRecord): Promise<void> {
    return this.writer.call('putBan', ban);
  }

  deleteBan(address: string): Promise<boolean> {
    return this.writer.call('deleteBan', address);
  }

  async listBans(): Promise<BanRecord[]> {
    return this.s.listBans.all().map((r) => ({ address: r.address, reason: r.reason, createdAt: r.created_at }));
  }

  async close(): Promise<void> {
    await this.writer.close();
    if (this.db.open) this.db.close();
    this.writer.release?.();
  }
}
