import { AppError } from '../errors/app-error.js';
import type { Clock } from '../clock.js';
import type { SignatureVerifier } from '../identity/verifier.js';
import { canonicalJson, Kind, parseMessage, tagValue, type RelationMessage } from '../protocol/message.js';
import type { PushBus } from '../push/hub.js';
import type { RelationReader } from '../relations/port.js';
import { Face, type NewEvent, type Store, type StoredEvent } from '../store/port.js';
import type { GroupCommitter } from './committer.js';
import { chatIdFor, dmCid, dmParticipants } from './ids.js';
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

  constructor(private readonly deps: MessageServiceDeps) {}

  async submit(input: unknown): Promise<SubmitResult> {
    if (!this.accepting) throw new AppError('SHUTTING_DOWN');
    const m = parseMessage(input);
    const body = canonicalJson(m);
    const running = this.inflight.get(m.id);
    if (running) {
      const first = await running.catch(() => null);
      if (first) return this.sameAnswer(first, body, m.id);
      return this.submit(input); // the first try failed: this one gets its own verdict
    }
    if (this.inflight.size >= this.deps.maxPending) throw new AppError('OVERLOADED');
    const p = this.admit(m, body);
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

  private async admit(m: RelationMessage, body: string): Promise<SubmitResult> {
    const { store, verifier, clock } = this.deps;
    const sender = m.sender.toLowerCase();
    const existing = await store.getEventById(m.id);
    if (existing) return this.duplicateOf(existing, body, sender);

    const verified = await verifier.verifyMessage(m, clock.now());
    const event = await this.authorise(m, verified.sender, body);
    const muted = await this.mutedRecipients(event);
    const outcome = await this.deps.committer.append(event);
    if (outcome.status === 'duplicate') return this.duplicateOf(outcome.event, body, sender);
    this.publish(outcome.event, muted);
    return { id: m.id, chatId: chatIdFor(outcome.event.cid, sender), seq: outcome.event.seq, receivedAt: outcome.event.receivedAt, duplicate: false };
  }

  private duplicateOf(existing: StoredEvent, body: string, sender: string): SubmitResult {
    if (existing.body !== body) throw new AppError('ID_CONFLICT');
    return { id: existing.id ?? '', chatId: chatIdFor(existing.cid, sender), seq: existing.seq, receivedAt: existing.receivedAt, duplicate: true };
  }

  /** Decides whether the verified sender may post this, and to which conversation. */
  private async authorise(m: RelationMessage, sender: string, body: string): Promise<NewEvent> {
    const { relations, requireName, clock } = this.deps;
    const receiver = m.receiver.toLowerCase();
    if (m.kind === Kind.GROUP || m.kind === Kind.DAO || m.kind === Kind.ANNOUNCEMENT) {
      if (!relations.available) throw new AppError('GROUPS_UNAVAILABLE');
      throw new AppError('GROUPS_UNAVAILABLE', 'group kinds are not served by this version');
    }
    if (requireName && relations.available && !(await relations.hasName(sender))) {
      throw new AppError('NAME_REQUIRED');
    }
    const base = { id: m.id, face: Face.RELATION_ONE, kind: m.kind, sender, ts: m.timestamp, receivedAt: clock.now(), body };
    if (m.kind === Kind.HIDE) {
      const target = await this.hideTarget(m, sender, receiver);
      return { ...base, cid: target.cid, counts: false, onlyFor: sender, hides: { seq: target.seq }, participants: null };
    }
    const cid = dmCid(sender, receiver);
    return { ...base, cid, counts: true, onlyFor: null, hides: null, participants: [sender, receiver] };
  }

  /** A hide names, by its quoteId tag, a message of the chat between sender and receiver that the sender can see. */
  private async hideTarget(m: RelationMessage, sender: string, receiver: string): Promise<StoredEvent> {
    const quoteId = tagValue(m, 'quoteId');
    if (!quoteId) throw new AppError('INVALID_TARGET', 'a hide message needs a quoteId tag');
    const target = await this.deps.store.getEventById(quoteId.toLowerCase());
    const cid = dmCid(sender, receiver);
    if (!target || target.cid !== cid || (target.onlyFor !== null && target.onlyFor !== sender) || !target.counts) {
      throw new AppError('INVALID_TARGET', 'quoteId names no message of this chat');
    }
    return target;
  }

  /** Who will be pushed this event: the hider alone for a hide, else both participants. */
  private recipients(cid: string, onlyFor: string | null): string[] {
    if (onlyFor !== null) return [onlyFor];
    const participants = dmParticipants(cid);
    return participants ? [...new Set(participants)] : [];
  }

  /**
   * Mute state of the recipients that are online, read before the commit so that the push after it is
   * synchronous and stays in seq order. (A mute that lands in between affects the next message.)
   */
  private async mutedRecipients(e: NewEvent): Promise<ReadonlySet<string>> {
    const muted = new Set<string>();
    for (const user of this.recipients(e.cid, e.onlyFor)) {
      if (this.deps.push.isOnline(user) && (await this.deps.store.getChat(user, e.cid))?.muted) muted.add(user);
    }
    return muted;
  }

  private publish(e: StoredEvent, muted: ReadonlySet<string>): void {
    for (const user of this.recipients(e.cid, e.onlyFor)) {
      if (!this.deps.push.isOnline(user)) continue;
      this.deps.push.publish([user], { frame: messageFrame(chatIdFor(e.cid, user), e, muted.has(user)), event: e, alert: !muted.has(user), cid: e.cid, seq: e.seq });
    }
  }
}
