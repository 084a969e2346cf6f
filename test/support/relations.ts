import type { GroupInfo, Profile, RelationReader } from '../../src/roles/relations/port.js';

/**
 * A relation reader with fixed groups and follows, standing in for the chain (which the tests cannot
 * reach): the code under test runs unchanged, only the chain's answers are given.
 */
export class StaticRelations implements RelationReader {
  readonly available = true;
  constructor(private readonly groupsByAddress: Map<string, { info: GroupInfo; members: Set<string> }>, private readonly follows: Map<string, string[]> = new Map()) {}
  async hasName(): Promise<boolean> { return true; }
  async profile(): Promise<Profile> { return { name: '', avatar: '' }; }
  async group(address: string): Promise<GroupInfo | null> { return this.groupsByAddress.get(address)?.info ?? null; }
  async isMember(group: string, address: string): Promise<boolean> { return this.groupsByAddress.get(group)?.members.has(address) ?? false; }
  async members(group: string): Promise<string[]> { return [...(this.groupsByAddress.get(group)?.members ?? [])]; }
  async friends(address: string): Promise<string[]> { return this.follows.get(address) ?? []; }
  async following(address: string): Promise<string[]> { return this.follows.get(address) ?? []; }
  async followers(address: string): Promise<string[]> { return this.follows.get(address) ?? []; }
  async close(): Promise<void> {}
  /** Removes a member (as a burn on chain would). */
  remove(group: string, address: string): void { this.groupsByAddress.get(group)?.members.delete(address); }
}
