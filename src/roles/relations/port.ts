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
  /**
   * Whether `address` holds a token of the DAO at `group` (false when `group` is not a DAO).
   *
   * Readers that talk to a chain throw `AppError('RELATIONS_UNAVAILABLE')` from every method when the chain
   * cannot be read in time and no fresh-enough cached view exists; they never hang (bounded by their RPC timeout).
   */
  isMember(group: string, address: string): Promise<boolean>;
  /**
   * Lowercase addresses of every member (token holder) of the DAO at `group`, in no particular order;
   * empty when it is not a DAO. Served from the cached member set (one RPC-free call per fan-out); a
   * membership change is reflected within the reader's documented refresh bound.
   */
  members(group: string): Promise<string[]>;
  /** Lowercase addresses that `address` follows (A follows B: B's Follow contract `isFollowing(A)`). */
  following(address: string): Promise<string[]>;
  /** Lowercase addresses that follow `address` (holders of its Follow contract); empty without one. */
  followers(address: string): Promise<string[]>;
  /** Mutual follows of `address`: both `following` and `followers`. */
  friends(address: string): Promise<string[]>;
  /**
   * Optional: tells `listener` whenever this reader sees a membership change (a member token minted, burnt or
   * moved; `user` undefined: anything in `group` may have changed, e.g. after a chain reorganisation). The app
   * routes it to AccessEvents so every face's cached decisions follow the chain at once. Returns the unsubscribe.
   */
  watchMembership?(listener: (group: string, user: string | undefined) => void): () => void;
  close(): Promise<void>;
}
