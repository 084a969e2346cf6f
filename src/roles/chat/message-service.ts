import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../clock.js';
import type { SignatureVerifier } from '../identity/verifier.js';
import { canonicalJson, Kind, parseMessage, tagValue, type RelationMessage } from '../../protocol/message.js';
import type { PushBus } from '../../bus/hub.js';
import type { GroupInfo, RelationReader } from '../relations/port.js';
import { Face, type MlsEventInfo, type NewEvent, type Store, type StoredEvent } from '../../store/port.js';
import { ContentType, parseMlsBytes, strictBase64, type MlsHeader } from '../../protocol/mls-header.js';
import { createHash } from 'node:crypto';
import { MlsEpochCache } from './mls-epochs.js';
import type { GroupCommitter } from './committer.js';
import { chatIdFor, dmCid, dmParticipants, isDmCid } from './ids.js';
import { belongsTo, groupAudience } from './membership.js';
import { messageFrame } from './render.js';

export interface SubmitResult {
  id: string;
  /** The chat id as the sender sees it (peer address or DAO address). */
  chatId: string;
  seq: number;
  receivedAt: number;
  /** True when this id was stored before: same answer, nothing stored or pushed again. */
  duplicate: boolean;
}

export interface MessageServiceDeps {
  store: Store;
  committer: GroupCommitter;
  verifier: SignatureVerifier;
  relations: RelationReader;
  push: PushBus;
  clock: Clock;
  requireName: boolean;
  /** Most submissions under way at once; past it a send is refused with OVERLOADED instead of queueing without bound. */
  maxPending: number;
  /**
   * For the archive importer only: the messages were accepted once already, so who could send them is
   * not asked again (names and memberships today say nothing about then). Ids, signatures, delegation
   * windows and hide targets are still checked.
   */
  trustHistory?: boolean;
  /**
   * The proxy's own address (its MLS chain watcher, docs/e2ee.md section 6): its MLS proposals to a DAO
   * group need neither a name nor a token. Anything else it might send is checked like anyone's.
   */
  proxySender?: () => string | null;
  /** The operator's ban list: a banned sender's messages are refused (BANNED); never asked for history. */
  bans?: { isBanned(address: string): boolean };
  /** Per-user send limits (risk control), counted after the signatures verified so a forger cannot spend another's. */
  limits?: { take(name: 'userSend', user: string, clientAddress: string): Promise<void> };
  /**
   * DEVELOPMENT ONLY (ALLOW_DEV_PLAINTEXT): accept `encryptedBy: "dev-plaintext-NOT-end-to-end-encrypted"`.
   * Off (the default), such a message is refused with PLAINTEXT_REFUSED; history (trustHistory) is kept as it was.
   */
  allowDevPlaintext?: boolean;
}

/** The SDK's development encryptor marker (sdk/src/encryptor.ts): the payload is the text itself. */
export const DEV_PLAINTEXT = 'dev-plaintext-NOT-end-to-end-encrypted';

/** Who is pushed an event (online here or elsewhere), and who of them muted its chat. */
interface Audience {
  /** Everyone the event is for, online or not: who of them is online is asked at the push (after the commit). */
  recipients: string[];
  muted: ReadonlySet<string>;
}

/** Where a submission came from: the client's address, for the per-user send limit. Absent: an internal caller. */
export interface SubmitOrigin {
  clientAddress: string;
}

/**
 * The one entry for a new Relation ONE message, whatever carried it (REST, /ws, the archive importer):
 * validate -> idempotency -> verify -> authorise -> durable group commit -> push. Nothing is pushed or
 * answered before the commit, and a rejected message changes nothing.
 */
export class MessageService {
  /** Submissions of an id under way in this process, so a concurrent resend waits instead of racing. */
  private readonly inflight = new Map<string, Promise<SubmitResult>>();
  private accepting = true;
  /** Each MLS group's current epoch as last seen here (commit results, store reads): the application-epoch check. */
  readonly mlsEpochs: MlsEpochCache;

  constructor(private readonly deps: MessageServiceDeps) {
    this.mlsEpochs = new MlsEpochCache(deps.store);
  }

  async submit(input: unknown, origin?: SubmitOrigin): Promise<SubmitResult> {
    if (!this.accepting) throw new AppError('SHUTTING_DOWN');
    const m = parseMessage(input);
    if (this.deps.bans?.isBanned(m.sender) && this.deps.trustHistory !== true) throw new AppError('BANNED');
    const body = canonicalJson(m);
    const running = this.inflight.get(m.id);
    if (running) {
      const first = await running.catch(() => null);
      if (first) return this.sameAnswer(first, body, m.id);
      return this.submit(input, origin); // the first try failed: this one gets its own verdict
    }
    if (this.inflight.size >= this.deps.maxPending) throw new AppError('OVERLOADED');
    const p = this.admit(m, body, origin);
    this.inflight.set(m.id, p);
    try {
      return await p;
    } finally {
      this.inflight.delete(m.id);
    }
  }

  /** Refuses new submissions (SHUTTING_DOWN) and resolves once those under way have been answered. */
  async stop(): Promise<void> {
    this.accepting = false;
    await Promise.allSettled([...this.inflight.values()]);
  }

  private async sameAnswer(first: SubmitResult, body: string, id: string): Promise<SubmitResult> {
    const stored = await this.deps.store.getEventById(id);
    if (!stored || stored.body !== body) throw new AppError('ID_CONFLICT');
    return { ...first, duplicate: true };
  }

  private async admit(m: RelationMessage, body: string, origin: SubmitOrigin | undefined): Promise<SubmitResult> {
    const { store, verifier, clock } = this.deps;
    const sender = m.sender.toLowerCase();
    let event: NewEvent;
    let audience: Audience;
    try {
      if (m.encryptedBy === DEV_PLAINTEXT && this.deps.allowDevPlaintext !== true && this.deps.trustHistory !== true) {
        throw new AppError('PLAINTEXT_REFUSED');
      }
      const mls = this.classifyMls(m);
      const verified = await verifier.verifyMessage(m, clock.now());
      if (origin && this.deps.limits) await this.deps.limits.take('userSend', verified.sender, origin.clientAddress);
      event = await this.authorise(m, verified.sender, body);
      if (mls) {
        if (mls.header.contentType === ContentType.APPLICATION && this.deps.trustHistory !== true) await this.checkApplicationEpoch(event.cid, mls.header.epoch);
        // Handshake messages never count as unread nor become a chat's preview.
        event.counts = event.counts && mls.info.role === 'application';
        event.mls = mls.info;
      }
      audience = await this.audience(event);
    } catch (e) {
      // A resend of a stored message gets the first delivery's answer whatever changed since (its
      // delegation expired, its sender left the group, a limit): the store is asked here, on the way to
      // a refusal, and not before every new message; a resend that passes every check is found by the
      // commit itself (the store refuses a second copy of an id and returns the first).
      const existing = await store.getEventById(m.id);
      if (existing) return this.duplicateOf(existing, body, sender);
      throw e;
    }
    const outcome = await this.deps.committer.append(event);
    if (outcome.status === 'duplicate') return this.duplicateOf(outcome.event, body, sender);
    if (outcome.status === 'refused') {
      // Nothing was stored nor is pushed (a losing commit's Welcome is never released).
      if (outcome.code === 'MLS_STALE_EPOCH') this.mlsEpochs.saw(event.cid, outcome.currentEpoch);
      throw new AppError(outcome.code, undefined, { currentEpoch: outcome.currentEpoch });
    }
    if (event.mls?.role === 'commit') this.mlsEpochs.saw(event.cid, event.mls.epoch + 1);
    this.publish(outcome.event, audience);
    return { id: m.id, chatId: chatIdFor(outcome.event.cid, sender), seq: outcome.event.seq, receivedAt: outcome.event.receivedAt, duplicate: false };
  }

  /**
   * docs/e2ee.md section 4 on a message's own bytes (no store read): the payload of an `encryptedBy: "MLS"`
   * message is one well-formed MLS message of this conversation's group, and `type` is `MLS` exactly for
   * handshakes. Hides (kind 4) carry no content and are not MLS messages whatever they say.
   */
  private classifyMls(m: RelationMessage): { header: MlsHeader; info: MlsEventInfo } | null {
    if (m.encryptedBy !== 'MLS' || m.kind === Kind.HIDE) {
      if (m.type === 'MLS') throw new AppError('INVALID_FIELD', 'type MLS is only for MLS handshake messages', { field: 'type' });
      return null;
    }
    const bytes = strictBase64(m.payload);
    const header = parseMlsBytes(bytes);
    const sender = m.sender.toLowerCase();
    const receiver = m.receiver.toLowerCase();
    const cid = m.kind === Kind.P2P ? dmCid(sender, receiver) : receiver;
    if (header.groupId !== cid) throw new AppError('MLS_WRONG_GROUP');
    const handshake = header.contentType !== ContentType.APPLICATION;
    if (handshake !== (m.type === 'MLS')) {
      throw new AppError('INVALID_FIELD', handshake ? 'an MLS proposal or commit has type MLS' : 'type MLS is only for MLS handshake messages', { field: 'type' });
    }
    const role = header.contentType === ContentType.COMMIT ? 'commit' : header.contentType === ContentType.PROPOSAL ? 'proposal' : 'application';
    return { header, info: { role, epoch: header.epoch, hash: createHash('sha256').update(bytes).digest('hex') } };
  }

  /**
   * An application message may not be ahead of the group's epoch, nor at an epoch whose removal the proxy
   * proposed and nobody committed. Checked against this process's view (no store read once the group is
   * known here); a message that looks ahead re-reads the store first, as another process may have stored
   * the commit. (Handshakes are checked by the store's commit transaction itself.)
   */
  private async checkApplicationEpoch(cid: string, epoch: number): Promise<void> {
    let g = await this.mlsEpochs.get(cid);
    if (epoch > g.epoch) g = await this.mlsEpochs.refresh(cid);
    if (epoch > g.epoch) throw new AppError('MLS_FUTURE_EPOCH', undefined, { currentEpoch: g.epoch });
    if (g.pendingRemovalEpoch !== null && g.pendingRemovalEpoch === g.epoch && epoch === g.epoch) {
      throw new AppError('MLS_COMMIT_REQUIRED', undefined, { currentEpoch: g.epoch });
    }
  }

  private duplicateOf(existing: StoredEvent, body: string, sender: string): SubmitResult {
    if (existing.body !== body) throw new AppError('ID_CONFLICT');
    return { id: existing.id ?? '', chatId: chatIdFor(existing.cid, sender), seq: existing.seq, receivedAt: existing.receivedAt, duplicate: true };
  }

  /** Decides whether the verified sender may post this, and to which conversation. */
  private async authorise(m: RelationMessage, sender: string, body: string): Promise<NewEvent> {
    const { relations, requireName, clock } = this.deps;
    const receiver = m.receiver.toLowerCase();
    const history = this.deps.trustHistory === true;
    const proxy = this.deps.proxySender?.() ?? null;
    if (proxy !== null && sender === proxy && m.type === 'MLS' && (m.kind === Kind.GROUP || m.kind === Kind.DAO)) {
      await this.groupOf(receiver);
      return { id: m.id, face: Face.RELATION_ONE, kind: m.kind, sender, ts: m.timestamp, body, receivedAt: clock.now(), cid: receiver, counts: false, onlyFor: null, hides: null, participants: null };
    }
    if (!history && requireName && relations.available && !(await relations.hasName(sender))) {
      throw new AppError('NAME_REQUIRED');
    }
    const ev = (cid: string, onlyFor: string | null, hides: { seq: number } | null, participants: [string, string] | null): NewEvent => ({
      id: m.id, face: Face.RELATION_ONE, kind: m.kind, sender, ts: m.timestamp, body, receivedAt: clock.now(), cid, counts: hides === null,
      onlyFor, hides, participants,
    });
    if (m.kind === Kind.HIDE) {
      const target = await this.hideTarget(m, sender, receiver);
      return ev(target.cid, sender, { seq: target.seq }, null);
    }
    if (m.kind === Kind.P2P) return ev(dmCid(sender, receiver), null, null, [sender, receiver]);
    // Group, DAO and announcement messages go to a DAO contract.
    if (history) return ev(receiver, null, null, null);
    const group = await this.groupOf(receiver);
    if (m.kind === Kind.ANNOUNCEMENT) {
      if (group.owner !== sender) throw new AppError('NOT_OWNER', 'only the DAO owner may post announcements');
    } else if (group.owner !== sender && !(await relations.isMember(receiver, sender))) {
      throw new AppError('NOT_MEMBER');
    }
    return ev(receiver, null, null, null);
  }

  private async groupOf(address: string): Promise<GroupInfo> {
    if (!this.deps.relations.available) throw new AppError('GROUPS_UNAVAILABLE');
    const group = await this.deps.relations.group(address);
    if (!group) throw new AppError('NOT_A_GROUP');
    return group;
  }

  /**
   * A hide names, by its quoteId tag, a message the sender can see in the chat named by `receiver`
   * (the peer of a direct chat, or the DAO of a group the sender belongs to).
   */
  private async hideTarget(m: RelationMessage, sender: string, receiver: string): Promise<StoredEvent> {
    const quoteId = tagValue(m, 'quoteId');
    if (!quoteId) throw new AppError('INVALID_TARGET', 'a hide message needs a quoteId tag');
    const target = await this.deps.store.getEventById(quoteId.toLowerCase());
    if (!target || !target.counts || (target.onlyFor !== null && target.onlyFor !== sender)) {
      throw new AppError('INVALID_TARGET', 'quoteId names no message of this chat');
    }
    if (isDmCid(target.cid)) {
      if (target.cid !== dmCid(sender, receiver)) throw new AppError('INVALID_TARGET', 'quoteId names no message of this chat');
    } else {
      if (target.cid !== receiver) throw new AppError('INVALID_TARGET', 'quoteId names no message of this chat');
      if (this.deps.trustHistory === true) return target;
      await this.groupOf(receiver);
      if (!(await belongsTo(this.deps.relations, receiver, sender))) throw new AppError('NOT_MEMBER');
    }
    return target;
  }

  /** Who is pushed an event: the hider alone for a hide, both participants of a direct chat, every member of a group. */
  private async recipients(e: NewEvent | StoredEvent): Promise<string[]> {
    if (e.onlyFor !== null) return [e.onlyFor];
    const participants = dmParticipants(e.cid);
    if (participants) return participants[0] === participants[1] ? [participants[0]] : participants;
    return groupAudience(this.deps.relations, e.cid);
  }

  /**
   * Who the event is for, and who of them muted the chat. Read before the commit so the push after it
   * is synchronous and stays in seq order (a mute that lands in between affects the next message).
   * Who of them is online is NOT decided here but at the push: a device that connects while the event
   * is being committed has resumed from a store without it, so the push is its only way to get it.
   */
  private async audience(e: NewEvent): Promise<Audience> {
    const recipients = await this.recipients(e);
    const muted = recipients.length > 0 ? new Set(await this.deps.store.mutedUsers(e.cid)) : new Set<string>();
    return { recipients, muted };
  }

  private publish(e: StoredEvent, audience: Audience): void {
    const { muted } = audience;
    // Offline users are left out: nothing would reach them, and the bus says who is online.
    const online = audience.recipients.filter((u) => this.deps.push.isOnline(u));
    // Nobody online that this process knows of: still published, so a bus rings the other processes.
    if (online.length === 0) {
      this.deps.push.publish([], { event: e, cid: e.cid, seq: e.seq });
      return;
    }
    if (isDmCid(e.cid)) {
      // Each side of a direct chat sees the other as the chat id.
      for (const user of online) {
        this.deps.push.publish([user], { frame: messageFrame(chatIdFor(e.cid, user), e, muted.has(user)), event: e, alert: !muted.has(user), cid: e.cid, seq: e.seq });
      }
      return;
    }
    const loud = online.filter((u) => !muted.has(u));
    const quiet = online.filter((u) => muted.has(u));
    if (loud.length > 0) this.deps.push.publish(loud, { frame: messageFrame(e.cid, e, false), event: e, alert: true, cid: e.cid, seq: e.seq });
    if (quiet.length > 0) this.deps.push.publish(quiet, { frame: messageFrame(e.cid, e, true), event: e, alert: false, cid: e.cid, seq: e.seq });
  }
}
