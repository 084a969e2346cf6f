import type { AccessEvents } from '../../roles/access/events.js';
import type { Access, SeaKing } from '../../roles/seaking/seaking.js';

/**
 * The gateway's short-TTL cache of SeaKing's access decisions (seed section 8: local caches, no durable
 * state). Only grants are cached, for `ttlMs`; a refusal is asked again next time. Bounded in size.
 *
 * Every role or membership change announced on `events` (by any face, or by the relation reader when the
 * chain moves) drops the decisions it touches at once, so the TTL bounds only a change nobody announced.
 * A decision read while a change was announced is not cached (it may predate the change).
 */
export class AccessCache {
  /** user -> cid -> decision: two lookups of strings the caller already holds, no key built per call. */
  private readonly entries = new Map<string, Map<string, { at: number; value: Access }>>();
  private size = 0;
  /** Bumped by every change: a lookup that started before one does not store its answer. */
  private epoch = 0;

  constructor(private readonly seaking: SeaKing, private readonly ttlMs: number, events?: AccessEvents, private readonly maxEntries = 100_000) {
    events?.subscribe((cid, user) => this.forget(cid, user));
  }

  async get(user: string, cid: string): Promise<Access> {
    const hit = this.entries.get(user)?.get(cid);
    const now = Date.now();
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const epoch = this.epoch;
    const value = await this.seaking.access(user, cid);
    if (this.ttlMs > 0 && epoch === this.epoch) {
      if (this.size >= this.maxEntries) this.clear();
      let byCid = this.entries.get(user);
      if (!byCid) this.entries.set(user, (byCid = new Map()));
      if (!byCid.has(cid)) this.size++;
      byCid.set(cid, { at: now, value });
    }
    return value;
  }

  /** Drops the decisions about `user` in `cid`, or about everyone in `cid` when `user` is undefined. */
  forget(cid: string, user?: string): void {
    if (cid === '*') return this.clear(); // everything may have changed (a process back from a bus loss)
    this.epoch++;
    if (user !== undefined) {
      const byCid = this.entries.get(user);
      if (byCid?.delete(cid)) this.size--;
      return;
    }
    for (const byCid of this.entries.values()) if (byCid.delete(cid)) this.size--;
  }

  /** Drops every cached decision. */
  clear(): void {
    this.epoch++;
    this.entries.clear();
    this.size = 0;
  }
}
