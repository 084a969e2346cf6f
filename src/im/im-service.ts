import { AppError } from '../errors/app-error.js';
import type { Clock } from '../clock.js';
import { requireStored, type ObjectStore } from '../files/port.js';
import type { PushBus } from '../push/hub.js';
import type { Relay } from '../relay/relay.js';
import { Role, type Access } from '../seaking/seaking.js';
import { Face, type NewEvent, type RangeQuery, type Store, type StoredEvent } from '../store/port.js';
import { dmParticipants } from '../chat/ids.js';
import { readPush } from '../chat/render.js';
import { ImKind, Scope, storedBody, type Draft, type ImWire } from './events.js';

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

export interface SendResult { cid: string; mid: number; t: number }

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
      const event = await this.admit(user, d, access);
      if (access.kind === 'group' && !(await this.deps.store.getChat(user, d.cid))) await this.deps.store.ensureChat(user, d.cid, null);
      // Who gets the push is read before the commit, so the push right after it stays in mid order.
      const online = (await this.recipients(event)).filter((u) => this.deps.push.isOnline(u));
      const stored = await this.deps.relay.append(event);
      if (stored.kind === ImKind.FILE) await this.deps.wire.preparePush(stored);
      if (online.length > 0) this.deps.push.publish(online, { event: stored, cid: stored.cid, seq: stored.seq, alert: true });
      return { cid: stored.cid, mid: stored.seq, t: Math.floor(stored.receivedAt / 1000) };
    } finally {
      this.pending--;
    }
  }

  stop(): void {
    this.accepting = false;
  }

  private async admit(user: string, d: Draft, access: Access): Promise<NewEvent> {
    const now = this.deps.clock.now();
    const base = {
      cid: d.cid, id: null, face: Face.IM, kind: d.k, sender: user, ts: now, receivedAt: now, body: storedBody(d),
      participants: access.kind === 'dm' ? dmParticipants(d.cid) : null,
    };
    if (d.k === ImKind.REVOKE) {
      const target = await this.visibleTarget(user, d.cid, d.target);
      if (d.scope === Scope.ONLY_ME) {
        return { ...base, counts: false, onlyFor: user, hides: { seq: target.seq }, revokes: null };
      }
      if (target.face !== Face.IM) throw new AppError('INVALID_TARGET', 'a signed Relation ONE message cannot be revoked for everyone; scope 2 hides it for you');
      if (target.revokedBy !== undefined) throw new AppError('INVALID_TARGET', 'the message is revoked already');
      const own = target.sender === user;
      const privileged = access.kind === 'group' && (access.role === Role.OWNER || access.role === Role.ADMIN);
      if (!own && !privileged) {
        throw new AppError('FORBIDDEN', access.kind === 'dm' ? 'in a direct chat only one\'s own messages can be revoked' : 'only the owner or an admin may revoke others\' messages');
      }
      if (own && !privileged && now - target.receivedAt > this.deps.revokeWindowMs) throw new AppError('REVOKE_WINDOW_PASSED');
      return { ...base, counts: false, onlyFor: null, hides: null, revokes: { seq: target.seq } };
    }
    if (d.replyTo !== undefined) await this.visibleTarget(user, d.cid, d.replyTo);
    if (d.k === ImKind.FILE) {
      await requireStored(this.deps.files, d.file.fid, d.file.size);
    }
    return { ...base, counts: true, onlyFor: null, hides: null, revokes: null };
  }

  /** A chat message (not a control event) of the same conversation that the user can see. */
  private async visibleTarget(user: string, cid: string, mid: number): Promise<StoredEvent> {
    const t = await this.deps.relay.get(cid, mid);
    if (!t || !t.counts || (t.onlyFor !== null && t.onlyFor !== user)) {
      throw new AppError('INVALID_TARGET', `mid ${mid} names no message of this conversation`);
    }
    return t;
  }

  private async recipients(e: NewEvent): Promise<string[]> {
    if (e.onlyFor !== null) return [e.onlyFor];
    if (e.cid.startsWith('dm:')) return [...new Set(dmParticipants(e.cid) ?? [])];
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
