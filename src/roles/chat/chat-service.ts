import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../clock.js';
import { isAddress } from '../../protocol/message.js';
import type { PushBus } from '../../bus/hub.js';
import type { RelationReader } from '../relations/port.js';
import { Face, type ChatSummary, type Store, type StoredEvent } from '../../store/port.js';
import { chatIdFor, dmCid, dmParticipants, isDmCid } from './ids.js';
import { belongsTo } from './membership.js';
import { readPush } from './render.js';

export interface Page {
  limit: number;
  offset: number;
}

/** The seed's Chat structure (section 7.4) plus the read state a client needs to resume. */
export interface ChatView {
  id: string;
  name: string;
  avatar: string;
  channelType: 'P2P' | 'GROUP';
  unreadMessageCount: number;
  type: string;
  payload: string;
  /** Milliseconds as a decimal string, as in the seed. */
  lastPostAt: string;
  lastSeq: number;
  lastReadSeq: number;
  muted: boolean;
  pinned: boolean;
}

/** Reading side of the Relation ONE face: lists, read markers, unread counts, the chat list, mute and pin. */
export class ChatService {
  constructor(
    private readonly store: Store,
    private readonly relations: RelationReader,
    private readonly push: PushBus,
    private readonly clock: Clock,
  ) {}

  /** Maps a client's chat id (peer address, DAO address or `dm:` id) to a conversation the viewer takes part in. */
  async resolve(viewer: string, chatId: string): Promise<{ cid: string; peer: string | null }> {
    const lower = chatId.toLowerCase();
    if (lower.startsWith('dm:')) {
      const p = dmParticipants(lower);
      if (!p) throw new AppError('INVALID_FIELD', 'chatId is malformed', { field: 'chatId' });
      if (p[0] !== viewer && p[1] !== viewer) throw new AppError('FORBIDDEN', 'not a participant of this chat');
      return { cid: lower, peer: p[0] === viewer ? p[1] : p[0] };
    }
    if (!isAddress(lower)) throw new AppError('INVALID_FIELD', 'chatId must be an address', { field: 'chatId' });
    if (this.relations.available && (await this.relations.group(lower))) {
      if (!(await belongsTo(this.relations, lower, viewer))) throw new AppError('NOT_MEMBER', 'only members may read a group');
      return { cid: lower, peer: null };
    }
    return { cid: dmCid(viewer, lower), peer: lower };
  }

  /** Whether the viewer may see events of this conversation: a participant, or a member of the group. */
  private async canRead(viewer: string, cid: string): Promise<boolean> {
    const p = dmParticipants(cid);
    if (p) return p[0] === viewer || p[1] === viewer;
    return belongsTo(this.relations, cid, viewer);
  }

  /**
   * Gives the viewer a chat entry for every group conversation they belong to, and drops the entries of
   * groups they left, so the chat list and the unread total follow the chain. Membership comes from the
   * relation reader's cached member sets: no RPC per group once loaded.
   */
  private async syncGroups(viewer: string): Promise<void> {
    if (!this.relations.available) return;
    for (const cid of await this.store.groupConversations()) {
      const member = await belongsTo(this.relations, cid, viewer);
      const entry = await this.store.getChat(viewer, cid);
      if (member && !entry) await this.store.ensureChat(viewer, cid, null);
      else if (!member && entry) await this.store.removeChat(viewer, cid);
    }
  }

  async list(viewer: string, q: Page & { chatId?: string; afterSeq?: number }): Promise<StoredEvent[]> {
    // The REST face's view: its own events plus the MsgPack face's chat messages (text, file); only
    // control events of the other face (revokes) are gaps in its seq (SPEC section 3).
    if (q.chatId === undefined) {
      await this.syncGroups(viewer);
      return this.store.listUserEvents(viewer, q.limit, q.offset, undefined, Face.RELATION_ONE);
    }
    const { cid } = await this.resolve(viewer, q.chatId);
    const query = { cid, viewer, limit: q.limit, offset: q.offset, view: Face.RELATION_ONE };
    return this.store.listEvents(q.afterSeq === undefined ? query : { ...query, afterSeq: q.afterSeq });
  }

  /** Marks `messageId` and everything before it in its chat as read; tells the viewer's devices on both faces. */
  async markRead(viewer: string, messageId: string): Promise<{ chatId: string; lastReadSeq: number }> {
    const e = await this.store.getEventById(messageId.toLowerCase());
    if (!e || (e.onlyFor !== null && e.onlyFor !== viewer) || !(await this.canRead(viewer, e.cid))) {
      throw new AppError('MESSAGE_NOT_FOUND');
    }
    const chatId = chatIdFor(e.cid, viewer);
    const before = (await this.store.ensureChat(viewer, e.cid, isDmCid(e.cid) ? chatId : null)).lastReadSeq;
    const lastReadSeq = await this.store.markRead(viewer, e.cid, e.seq);
    // Only a move is news to the other devices (of both faces); the marker is never lowered.
    if (lastReadSeq > before) this.push.publish([viewer], readPush(viewer, e.cid, lastReadSeq));
    return { chatId, lastReadSeq };
  }

  async unreadCount(viewer: string, chatId?: string): Promise<number> {
    if (chatId === undefined) {
      await this.syncGroups(viewer);
      return this.store.unreadCount(viewer);
    }
    const { cid, peer } = await this.resolve(viewer, chatId);
    await this.store.ensureChat(viewer, cid, peer);
    return this.store.unreadCount(viewer, cid);
  }

  async chats(viewer: string, page: Page): Promise<ChatView[]> {
    await this.syncGroups(viewer);
    const rows = await this.store.listChats(viewer, page.limit, page.offset);
    return Promise.all(rows.map((r) => this.view(viewer, r)));
  }

  private async view(viewer: string, r: ChatSummary): Promise<ChatView> {
    const group = !isDmCid(r.cid);
    const id = group ? r.cid : (r.peer ?? chatIdFor(r.cid, viewer));
    const profile = group ? await this.relations.group(id) : await this.relations.profile(id);
    let type = '';
    let payload = '';
    if (r.last) {
      const body = JSON.parse(r.last.body) as { type?: unknown; payload?: unknown };
      type = typeof body.type === 'string' ? body.type : '';
      payload = typeof body.payload === 'string' ? body.payload : '';
    }
    return {
      id, name: profile?.name ?? '', avatar: profile?.avatar ?? '', channelType: group ? 'GROUP' : 'P2P', unreadMessageCount: r.unread, type, payload,
      lastPostAt: String(r.lastPostAt), lastSeq: r.lastSeq, lastReadSeq: r.lastReadSeq, muted: r.muted, pinned: r.pinnedAt !== null,
    };
  }

  async setMuted(viewer: string, chatId: string, muted: boolean): Promise<void> {
    const { cid, peer } = await this.resolve(viewer, chatId);
    await this.store.ensureChat(viewer, cid, peer);
    await this.store.setMuted(viewer, cid, muted);
  }

  async setPinned(viewer: string, chatId: string, pinned: boolean): Promise<void> {
    const { cid, peer } = await this.resolve(viewer, chatId);
    await this.store.ensureChat(viewer, cid, peer);
    await this.store.setPinned(viewer, cid, pinned ? this.clock.now() : null);
  }
}
