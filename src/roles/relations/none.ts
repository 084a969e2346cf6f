import type { GroupInfo, Profile, RelationReader } from './port.js';

/**
 * The reader used when no chain is configured: nobody has a known name, nothing is a group.
 * Direct messages work; name admission cannot be enforced (the server logs so at start) and group
 * kinds are refused with GROUPS_UNAVAILABLE.
 */
export class NoRelations implements RelationReader {
  readonly available = false;
  async hasName(): Promise<boolean> {
    return false;
  }
  async profile(): Promise<Profile> {
    return { name: '', avatar: '' };
  }
  async group(): Promise<GroupInfo | null> {
    return null;
  }
  async isMember(): Promise<boolean> {
    return false;
  }
  async members(): Promise<string[]> {
    return [];
  }
  async following(): Promise<string[]> {
    return [];
  }
  async followers(): Promise<string[]> {
    return [];
  }
  async friends(): Promise<string[]> {
    return [];
  }
  async close(): Promise<void> {}
}
