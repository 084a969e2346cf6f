import type { Access, SeaKing } from '../seaking/seaking.js';

/**
 * The gateway's short-TTL cache of SeaKing's access decisions (seed section 8: local caches, no durable
 * state). Only grants are cached, for `ttlMs`; a refusal is asked again next time. Bounded in size.
 */
export class AccessCache {
  private readonly entries = new Map<string, { at: number; value: Access }>();

  constructor(private readonly seaking: SeaKing, private readonly ttlMs: number, private readonly maxEntries = 100_000) {}

  async get(user: string, cid: string): Promise<Access> {
    const key = `${user}|${cid}`;
    const hit = this.entries.get(key);
    const now = Date.now();
    if (hit && now - hit.at < this.ttlMs) return hit.value;
    const value = await this.seaking.access(user, cid);
    if (this.ttlMs > 0) {
      if (this.entries.size >= this.maxEntries) this.entries.clear();
      this.entries.set(key, { at: now, value });
    }
    return value;
  }

  /** Drops every cached decision (after a role change). */
  clear(): void {
    this.entries.clear();
  }
}
