/**
 * The storage port. The domain talks to storage only through these types: no driver type, no SQL and
 * no query builder crosses it. Every adapter (embedded SQLite, a database server later) must pass the
 * one contract suite in `test/store/contract.ts`.
 *
 * Addresses handed to and returned by the store are lowercase. Times are milliseconds since the epoch.
 */

/** Which face an event came from. */
export const Face = { RELATION_ONE: 0, IM: 1 } as const;
export type FaceId = (typeof Face)[keyof typeof Face];

export interface NewEvent {
  /** Conversation id: `dm:<lower>:<higher>` or a DAO address. */
  cid: string;
  /** Globally unique event id (the keccak id of a Relation ONE message); null when the face has none. */
  id: string | null;
  face: FaceId;
  /** Kind within its face. */
  kind: number;
  sender: string;
  /** Client-side time of the event, ms. */
  ts: number;
  receivedAt: number;
  /** The event as stored and archived (for Relation ONE: the canonical message JSON). */
  body: string;
  /** True for chat messages: they count as unread and can be a chat's preview. */
  counts: boolean;
  /** When set, only this user is served the event (a hide is the hider's own business). */
  onlyFor: string | null;
  /** When set, the event hides the event `hides.seq` of the same conversation for `onlyFor`. */
  hides: { seq: number } | null;
  /** For a direct chat: both participants, who get a chat-list entry when the conversation starts. */
  participants: readonly [string, string] | null;
  /**
   * When set, the event revokes the event `revokes.seq` of the same conversation for everyone: that row
   * stays, and is served with `revokedBy` = this event's seq from then on (MsgPack face, SPEC section 6).
   */
  revokes?: { seq: number } | null;
  /**
   * For an MLS message (docs/e2ee.md section 4): the store refuses, inside the commit's transaction, a
   * second copy of the same MLS bytes in the conversation (MLS_REPLAY), and for a handshake message an
   * epoch that is not the group's current one (MLS_STALE_EPOCH); a stored commit advances the epoch by one.
   * Application messages only take the replay check (their epoch is checked by the caller).
   */
  mls?: MlsEventInfo | null;
}

export interface MlsEventInfo {
  /** proposal / commit: checked against (and a commit advances) the group's epoch; application: not. */
  role: 'application' | 'proposal' | 'commit';
  epoch: number;
  /** Lowercase hex SHA-256 of the decoded payload bytes: unique per conversation. */
  hash: string;
}

/** What the store knows of a conversation's MLS group (docs/e2ee.md). */
export interface MlsGroupState {
  cid: string;
  /** 0 for a group without a stored commit. */
  epoch: number;
  /** The epoch at which the proxy's chain watcher proposed a removal that is not committed yet, or null. */
  pendingRemovalEpoch: number | null;
}

export type MlsRefusal = 'MLS_STALE_EPOCH' | 'MLS_REPLAY';

/** A device of the KeyPackage directory (docs/e2ee.md section 5). */
export interface MlsDevice {
  deviceId: string;
  /** Lowercase wallet address. */
  address: string;
  /** Standard base64 of the TLS-encoded MLS credential. */
  credential: string;
  createdAt: number;
  /** Single-use KeyPackages left that are usable (MlsAt). */
  available: number;
  /** Whether the device has a usable last-resort package. */
  lastResort: boolean;
}

export type MlsUploadOutcome =
  | { status: 'ok'; available: number; lastResort: boolean }
  | { status: 'refused'; code: 'MLS_TOO_MANY_DEVICES' | 'TOO_MANY_PACKAGES' };

/** A KeyPackage to store: its MLSMessage and its leaf node's lifetime end (RFC 9420 section 7.2). */
export interface MlsNewPackage {
  /** Standard base64 of the MLSMessage (wire format mls_key_package). */
  keyPackage: string;
  /** The leaf node's `lifetime.not_after`, seconds since the epoch. */
  notAfter: number;
}

/**
 * The instant the directory's lifetime rules are applied at, in seconds since the epoch: a package whose
 * `notAfter` is at or before `now` is expired (deleted when its device is claimed from or uploads); one is
 * usable (handed out by a claim, counted as available) only while `notAfter > now + minLeft`.
 */
export interface MlsAt {
  now: number;
  minLeft: number;
}

export interface MlsClaimed {
  address: string;
  deviceId: string;
  /** Standard base64 of the MLSMessage (wire format mls_key_package). */
  keyPackage: string;
  lastResort: boolean;
  /** Usable single-use packages the device has left after this claim (MlsAt). */
  available: number;
}

export interface MlsGroupRecord extends MlsGroupState {
  groupInfo: string | null;
  groupInfoEpoch: number | null;
}

/** The Delivery Service's own records (not archived: clients upload them again after a rebuild). */
export interface MlsDirectory {
  /**
   * Adds KeyPackages (and, when given, replaces the last-resort one) of one device, creating the device
   * if new: refused when that would give the wallet more than `maxDevices` devices or the device more
   * than `maxPackages` single-use packages. The device's expired packages are deleted first (they do not
   * count against `maxPackages`); `available` and `lastResort` of the answer count usable ones only. Atomic.
   */
  mlsUpload(device: { deviceId: string; address: string; credential: string; createdAt: number }, packages: readonly MlsNewPackage[], lastResort: MlsNewPackage | null,
    limits: { maxDevices: number; maxPackages: number }, at: MlsAt): Promise<MlsUploadOutcome>;
  /** The address's devices; `available` and `lastResort` count usable packages only. */
  mlsDevices(address: string, at: MlsAt): Promise<MlsDevice[]>;
  /** Drops the device (and its packages) if it is the address's; true when it was. */
  mlsDeleteDevice(address: string, deviceId: string): Promise<boolean>;
  /**
   * For every device of every address, one usable single-use package (the oldest), removed in the same
   * transaction (two claimers, in any process, never get the same one); a device with none left gives
   * its last-resort package if that is usable, which stays. Devices with neither are left out. Expired
   * packages of the devices claimed from are deleted in the same transaction; packages with too little
   * left (MlsAt.minLeft) are skipped, never handed out.
   */
  mlsClaim(addresses: readonly string[], at: MlsAt): Promise<MlsClaimed[]>;
  mlsGroupRecord(cid: string): Promise<MlsGroupRecord>;
  /** Keeps the GroupInfo only if `epoch` is the group's current one; returns the current epoch either way. */
  mlsPutGroupInfo(cid: string, epoch: number, groupInfo: string, now: number): Promise<{ stored: boolean; currentEpoch: number }>;
  /**
   * The proxy proposed removals at `epoch` (its chain watcher): until a commit moves the group past it,
   * application messages at that epoch are refused (MLS_COMMIT_REQUIRED). True when `epoch` is the
   * group's current one (only then is it marked).
   */
  mlsSetPendingRemoval(cid: string, epoch: number): Promise<boolean>;
  /** Records the first hash reported for (cid, epoch) and returns the recorded one. */
  mlsEpochAuth(cid: string, epoch: number, hash: string): Promise<string>;
  /** The value stored under `key` in the store's own metadata, first setting it to `value` if absent (one winner across processes). */
  metaGetOrSet(key: string, value: string): Promise<string>;
}

export interface StoredEvent {
  /** Global commit position (commit order across all conversations). */
  pos: number;
  cid: string;
  /** Per-conversation number: 1, 2, 3 … without gaps. */
  seq: number;
  id: string | null;
  face: FaceId;
  kind: number;
  sender: string;
  ts: number;
  receivedAt: number;
  body: string;
  counts: boolean;
  onlyFor: string | null;
  /** Seq of the event that revoked this one for everyone; absent while it is not revoked. */
  revokedBy?: number;
}

export type AppendOutcome =
  | { status: 'stored'; event: StoredEvent }
  | { status: 'duplicate'; event: StoredEvent }
  /** An MLS rule refused the event inside the transaction: nothing was written for it (docs/e2ee.md section 4). */
  | { status: 'refused'; code: MlsRefusal; currentEpoch: number; event?: undefined };

export interface ListQuery {
  cid: string;
  /** The reader: events only visible to others, and events the reader hid, are left out. */
  viewer: string;
  /** Only events with seq > afterSeq, oldest first. Without it: newest first. */
  afterSeq?: number;
  limit: number;
  offset: number;
  /** Restrict to one face. */
  face?: FaceId;
  /**
   * What one face serves: its own events plus the chat messages (`counts`) of the other face. The REST
   * face uses it so that MsgPack texts and files appear there, while control events (revokes) stay gaps.
   */
  view?: FaceId;
}

/** A Relay query: one conversation, by seq (mid) range and/or receivedAt range, all faces. */
export interface RangeQuery {
  cid: string;
  /** Visibility as in ListQuery: events only for others and events the viewer hid are left out. */
  viewer: string;
  /** Inclusive bounds on seq. */
  fromSeq?: number;
  toSeq?: number;
  /** Inclusive bounds on receivedAt, ms. */
  since?: number;
  until?: number;
  limit: number;
  /** Newest first when true; oldest first otherwise. */
  desc?: boolean;
}


export interface ChatState {
  user: string;
  cid: string;
  /** The other participant of a direct chat; null for a group. */
  peer: string | null;
  lastReadSeq: number;
  muted: boolean;
  /** When the chat was pinned, or null. */
  pinnedAt: number | null;
}

export interface ChatSummary extends ChatState {
  lastSeq: number;
  /** receivedAt of the newest chat message, or 0. */
  lastPostAt: number;
  unread: number;
  /** Newest chat message visible to the user, if any. */
  last: StoredEvent | null;
}

export interface TokenRecord {
  address: string;
  expiresAt: number;
  revoked: boolean;
}

/** One entry of the operator's ban list: the address may neither sign in nor send, on either face. */
export interface BanRecord {
  /** Lowercase address. */
  address: string;
  reason: string;
  createdAt: number;
}

export interface Store extends MlsDirectory {
  /**
   * Appends events atomically and durably, assigning each its conversation's next seq. A batch is one
   * transaction: when it resolves, every stored event survives a crash. An event whose id exists already
   * comes back as `duplicate` with the stored event, and nothing is written for it. Calls may overlap:
   * they are applied, and resolve, in the order they were made (the group committer relies on it to
   * keep pushes in seq order); an adapter that cannot promise that runs them one at a time.
   */
  appendEvents(events: readonly NewEvent[]): Promise<AppendOutcome[]>;
  getEventById(id: string): Promise<StoredEvent | null>;
  getEventBySeq(cid: string, seq: number): Promise<StoredEvent | null>;
  listEvents(q: ListQuery): Promise<StoredEvent[]>;
  /** Events of every chat the viewer has an entry for, newest commit first; `view` as in ListQuery. */
  listUserEvents(viewer: string, limit: number, offset: number, face?: FaceId, view?: FaceId): Promise<StoredEvent[]>;
  /** Events of one conversation in a seq and/or time range (the Relay's query). */
  listRange(q: RangeQuery): Promise<StoredEvent[]>;
  /** Seq of the newest event of a conversation (0 when it has none). */
  lastSeq(cid: string): Promise<number>;
  /** The conversation's MLS group state (epoch 0, nothing pending, when no commit was stored). */
  mlsGroup(cid: string): Promise<MlsGroupState>;


  getChat(user: string, cid: string): Promise<ChatState | null>;
  /** Creates the user's entry for a chat if missing (groups: on first read or send). */
  ensureChat(user: string, cid: string, peer: string | null): Promise<ChatState>;
  /** Pinned chats first (most recently pinned first), then by lastPostAt descending. */
  listChats(user: string, limit: number, offset: number): Promise<ChatSummary[]>;
  /** Raises the read marker to `seq` (never lowers it); returns the marker now in force. */
  markRead(user: string, cid: string, seq: number): Promise<number>;
  /** Unread chat messages from others after the read marker, not hidden by the user. */
  unreadCount(user: string, cid?: string): Promise<number>;
  setMuted(user: string, cid: string, muted: boolean): Promise<void>;
  /** Users who muted this chat (few, whatever the group's size: one query per fan-out). */
  mutedUsers(cid: string): Promise<string[]>;
  /** Drops the user's entry for a chat (a group the user left). Its events stay. */
  removeChat(user: string, cid: string): Promise<void>;
  /** Ids of every group conversation (not `dm:`) that holds at least one event. */
  groupConversations(): Promise<string[]>;
  /** The server's own admin records of a group (set by the group's owner). */
  setAdmin(cid: string, user: string, admin: boolean): Promise<void>;
  listAdmins(cid: string): Promise<string[]>;
  setPinned(user: string, cid: string, pinnedAt: number | null): Promise<void>;

  putToken(hash: string, record: TokenRecord): Promise<void>;
  getToken(hash: string): Promise<TokenRecord | null>;
  revokeToken(hash: string): Promise<void>;
  putNonce(nonce: string, expiresAt: number): Promise<void>;
  /** Marks the nonce used; true only the first time, and only before it expires. */
  consumeNonce(nonce: string, now: number): Promise<boolean>;

  /**
   * The store's identity: random, fixed when the store was created, the same across restarts and across
   * every process sharing it; a new store (e.g. one rebuilt from the archive, whose seqs may differ) has
   * another. Clients are told it (SPEC section 9) and resynchronise when it changes. 32 hex digits.
   * Rejects, as every call does, if the store could not be opened.
   */
  epoch(): Promise<string>;
  /** Adds a ban, or replaces the one for that address (durable when it resolves). */
  putBan(ban: BanRecord): Promise<void>;
  /** Lifts the ban; true when there was one. */
  deleteBan(address: string): Promise<boolean>;
  /** Every ban, oldest first (loaded once at start; the list stays small). */
  listBans(): Promise<BanRecord[]>;

  close(): Promise<void>;
}
