import type { Access, SeaKing } from '../seaking/seaking.js';

/**
 * The gateway's short-TTL cache of SeaKing's access decisions (seed section 8: local caches, no durable
 * state). Only grants are cached, for `ttlMs`; a refusal is asked again next time. Bounded in size.
 */
export class AccessCache {
  /** user -> cid -> decision: two lookups of strings the caller already holds, no key built per call. */
  private readonly entries = new Map<string, Map<string, { at: number; value: Access }>>();
  private size = 0;

  constructor(private readonly seaking: SeaKing, private readonly ttlMs: number, private readonly maxEntries = 100_000) {}

  async get(user: string, cid: string): Promise<Access> {
    const hit = this.entries.get(user)?.get(cid);
    const now = Date.now();
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const value = await this.seaking.access(user, cid);
    if (this.ttlMs > 0) {
      if (this.size >= this.maxEntries) this.clear();
      let byCid = this.entries.get(user);
      if (!byCid) this.entries.set(user, (byCid = new Map()));
      if (!byCid.has(cid)) this.size++;
      byCid.set(cid, { at: now, value });
    }
    return value;
  }

  /** Drops every cached decision (after a role change). */
  clear(): void {
    this.entries.clear();
    this.size = 0;
  }
}
