import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../clock.js';
import { requireStored, type ObjectStore } from '../../files/port.js';
import type { PushBus, PushItem } from '../../bus/hub.js';
import type { Relay } from '../relay/relay.js';
import { Role, type Access } from '../seaking/seaking.js';
import { Face, type NewEvent, type RangeQuery, type Store, type StoredEvent } from '../../store/port.js';
import { readPush } from '../chat/render.js';
import { draftBody, ImKind, Scope, type Draft, type ImBody, type ImWire } from './events.js';

export interface ImServiceDeps {
  relay: Relay;
  store: Store;
  files: ObjectStore;
  push: PushBus;
  wire: ImWire;
  clock: Clock;
  /** SeaKing's access decision (cached by the gateway for a short time). */
  access: (user: string, cid: string) => Promise<Access>;
  /** Everyone a group event goes to (SeaKing: token holders and the owner). */
  audience: (cid: string) => Promise<string[]>;
  revokeWindowMs: number;
  maxPending: number;
}

/** `resent`: the send named a client id already stored for this sender and conversation; nothing new was stored. */
export interface SendResult { cid: string; mid: number; t: number; resent?: boolean }

/**
 * The store key of an /im send with a client id: the events' unique id column, which Relation ONE message
 * ids (0x + 64 hex) never collide with, so both stores' duplicate check and uniqueness (also between
 * processes on one PostgreSQL) hold for it as they do for signed messages.
 */
export const clientKey = (user: string, cid: string, cmid: string): string => `im:${user}:${cid}:${cmid}`;
const answer = (e: StoredEvent, resent: boolean): SendResult => ({ cid: e.cid, mid: e.seq, t: Math.floor(e.receivedAt / 1000), ...(resent ? { resent } : {}) });

/**
 * The domain of the MsgPack face, without a socket: send (text, file, revoke with its rules), ack,
 * queries. Checks run before the commit, so a refused event stores nothing; the push follows the commit.
 */
export class ImService {
  private pending = 0;
  private accepting = true;

  constructor(private readonly deps: ImServiceDeps) {}

  async send(user: string, d: Draft): Promise<SendResult> {
    if (!this.accepting) throw new AppError('SHUTTING_DOWN');
    if (this.pending >= this.deps.maxPending) throw new AppError('OVERLOADED');
    this.pending++;
    try {
      const access = await this.deps.access(user, d.cid);
      const key = d.cmid !== undefined ? clientKey(user, d.cid, d.cmid) : null;
      // A resend after a lost answer: the first one's answer, before any rule that the first one's
      // success changed (a revoke's target is revoked by now).
      const first = key !== null ? await this.deps.store.getEventById(key) : null;
      if (first) return answer(first, true);
      const body = draftBody(d);
      const event = await this.admit(user, d, access, body);
      event.id = key;
      if (access.kind === 'group' && !(await this.deps.store.getChat(user, d.cid))) await this.deps.store.ensureChat(user, d.cid, null);
      // Who the event is for is read before the commit, so the push right after it stays in mid order;
      // who of them is online is asked after it: a device that connected meanwhile must get the push.
      const recipients = await this.recipients(event, access);
      const outcome = await this.deps.relay.appendOutcome(event);
      // /im events carry no MLS rule, so the store never refuses one; the union says it could.
      if (outcome.status === 'refused') throw new AppError(outcome.code, undefined, { currentEpoch: outcome.currentEpoch });
      const stored = outcome.event;
      if (outcome.status === 'duplicate') return answer(stored, true); // the same resend, at once on another connection or process
      const online = recipients.filter((u) => this.deps.push.isOnline(u));
      if (online.length > 0) {
        const item: PushItem = { event: stored, cid: stored.cid, seq: stored.seq, alert: true };
        // Encoded once here from the body still in hand; a file's needs its signed download URL anyway.
        item.imFrame = stored.kind === ImKind.FILE ? await this.deps.wire.pushFrameOf(stored, body) : this.deps.wire.pushFrameSync(stored, body);
        this.deps.push.publish(online, item);
      } else {
        this.deps.push.publish([], { event: stored, cid: stored.cid, seq: stored.seq, alert: true }); // rings the other processes
      }
      return answer(stored, false);
    } finally {
      this.pending--;
    }
  }

  stop(): void {
    this.accepting = false;
  }

  private async admit(user: string, d: Draft, access: Access, body: ImBody): Promise<NewEvent> {
    const now = this.deps.clock.now();
    const event: NewEvent = {
      cid: d.cid, id: null, face: Face.IM, kind: d.k, sender: user, ts: now, receivedAt: now, body: JSON.stringify(body),
      counts: true, onlyFor: null, participants: access.kind === 'dm' ? access.participants : null, hides: null, revokes: null,
    };
    if (d.k === ImKind.REVOKE) {
      event.counts = false;
      const target = await this.visibleTarget(user, d.cid, d.target);
      if (d.scope === Scope.ONLY_ME) {
        event.onlyFor = user;
        event.hides = { seq: target.seq };
        return event;
      }
      if (target.face !== Face.IM) throw new AppError('INVALID_TARGET', 'a signed Relation ONE message cannot be revoked for everyone; scope 2 hides it for you');
      if (target.revokedBy !== undefined) throw new AppError('INVALID_TARGET', 'the message is revoked already');
      const own = target.sender === user;
      const privileged = access.kind === 'group' && (access.role === Role.OWNER || access.role === Role.ADMIN);
      if (!own && !privileged) {
        throw new AppError('FORBIDDEN', access.kind === 'dm' ? 'in a direct chat only one\'s own messages can be revoked' : 'only the owner or an admin may revoke others\' messages');
      }
      if (own && !privileged && now - target.receivedAt > this.deps.revokeWindowMs) throw new AppError('REVOKE_WINDOW_PASSED');
      event.revokes = { seq: target.seq };
      return event;
    }
    if (d.replyTo !== undefined) await this.visibleTarget(user, d.cid, d.replyTo);
    if (d.k === ImKind.FILE) {
      await requireStored(this.deps.files, d.file.fid, d.file.size);
    }
    return event;
  }

  /** A chat message (not a control event) of the same conversation that the user can see. */
  private async visibleTarget(user: string, cid: string, mid: number): Promise<StoredEvent> {
    const t = await this.deps.relay.get(cid, mid);
    if (!t || !t.counts || (t.onlyFor !== null && t.onlyFor !== user)) {
      throw new AppError('INVALID_TARGET', `mid ${mid} names no message of this conversation`);
    }
    return t;
  }

  private async recipients(e: NewEvent, access: Access): Promise<readonly string[]> {
    if (e.onlyFor !== null) return [e.onlyFor];
    if (access.kind === 'dm') return access.participants[0] === access.participants[1] ? [access.participants[0]] : access.participants;
    return this.deps.audience(e.cid);
  }

  /**
   * Raises the user's read marker in the conversation; returns the marker in force. When it moved, the
   * user's other devices (both faces) are told; `origin`, the connection that acked, is not.
   */
  async ack(user: string, cid: string, mid: number, origin?: object): Promise<number> {
    const access = await this.deps.access(user, cid);
    const before = (await this.deps.store.ensureChat(user, cid, access.kind === 'dm' ? access.peer : null)).lastReadSeq;
    const now = await this.deps.store.markRead(user, cid, Math.min(mid, await this.deps.relay.lastMid(cid)));
    if (now > before) this.deps.push.publish([user], readPush(user, cid, now, origin));
    return now;
  }

  /** Events of one conversation the user may read, by mid and/or time range. */
  async query(user: string, q: Omit<RangeQuery, 'viewer'>): Promise<StoredEvent[]> {
    await this.deps.access(user, q.cid);
    return this.deps.relay.range({ ...q, viewer: user });
  }
}
