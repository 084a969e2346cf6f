/**
 * The relation lookup port: names, avatars, groups and membership, as read from the Relation Protocol
 * contracts (SPEC section 7). The domain never talks to a chain directly.
 */
export interface Profile {
  name: string;
  avatar: string;
}

export interface GroupInfo {
  /** Lowercase DAO contract address (the group's chat id). */
  address: string;
  name: string;
  avatar: string;
  /** Lowercase address returned by `ownerOfDao()`. */
  owner: string;
  freeJoin: boolean;
}

export interface RelationReader {
  /**
   * False when no chain is configured: then names cannot be checked and groups cannot exist, and the
   * domain refuses group kinds with GROUPS_UNAVAILABLE rather than accept and lose them.
   */
  readonly available: boolean;
  /** Whether the address holds a Relation Name Service name. */
  hasName(address: string): Promise<boolean>;
  /** Name and avatar (empty strings when unknown). */
  profile(address: string): Promise<Profile>;
  /** The DAO at this address, or null when it is not a DAO. */
  group(address: string): Promise<GroupInfo | null>;
  isMember(group: string, address: string): Promise<boolean>;
  close(): Promise<void>;
}
