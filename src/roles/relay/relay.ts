import type { GroupCommitter } from '../chat/committer.js';
import type { AppendOutcome, NewEvent, RangeQuery, Store, StoredEvent } from '../../store/port.js';

/**
 * The Relay role (seed section 10): writes events and answers queries by conversation, mid (seq) and
 * time. It knows nothing of users, relations or permissions: callers decide who may write or read, and
 * pass the reader only as a visibility key. Writes share the Relation ONE face's group commit, so both
 * faces draw `seq`/`mid` from the one per-conversation counter and are durable before they are answered.
 */
export class Relay {
  constructor(private readonly store: Store, private readonly committer: GroupCommitter) {}

  /** Appends durably; resolves with the stored event (its `seq` is the event's `mid`). */
  async append(event: NewEvent): Promise<StoredEvent> {
    const outcome = await this.committer.append(event);
    // The /im face carries no MLS events, so the store has no MLS rule to refuse one with.
    if (outcome.status === 'refused') throw new Error(`the store refused an /im event: ${outcome.code}`);
    return outcome.event;
  }

  /** Appends durably; says whether the event was stored now or its id was stored before (`duplicate`: the first one). */
  appendOutcome(event: NewEvent): Promise<AppendOutcome> {
    return this.committer.append(event);
  }

  get(cid: string, mid: number): Promise<StoredEvent | null> {
    return this.store.getEventBySeq(cid, mid);
  }

  range(q: RangeQuery): Promise<StoredEvent[]> {
    return this.store.listRange(q);
  }

  lastMid(cid: string): Promise<number> {
    return this.store.lastSeq(cid);
  }
}
