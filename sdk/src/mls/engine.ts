/**
 * The SDK's MLS port: everything the rest of the SDK asks of an MLS (RFC 9420) implementation, in bytes
 * and plain values, so that another engine (OpenMLS compiled to WASM) can replace the ts-mls adapter
 * without touching the encryptor. Every operation is pure: it takes a group state and returns a new one
 * (the caller persists it), never mutating the argument.
 */

/** A device's MLS signature key pair and its credential identity (docs/e2ee.md section 2). */
export interface MlsDevice {
  signaturePublicKey: Uint8Array;
  signaturePrivateKey: Uint8Array;
  /** The `identity` of the device's basic credential. */
  identity: Uint8Array;
}

/** A KeyPackage this device generated: the public `MLSMessage` (uploaded) and its private keys (kept). */
export interface KeyPackagePair {
  /** TLS-encoded `MLSMessage` of wire format mls_key_package. */
  publicMessage: Uint8Array;
  /** Engine-specific encoding of the private keys. */
  privateKeys: Uint8Array;
}

/** An external sender entry of a group (the proxy, for Remove proposals). */
export interface ExternalSenderEntry {
  signatureKey: Uint8Array;
  /** TLS-encoded `Credential`. */
  credential: Uint8Array;
}

/** Opaque group state; only the engine that made it reads it. */
export interface MlsGroup {
  readonly groupId: string;
  readonly epoch: bigint;
}

export interface MlsMember {
  leafIndex: number;
  signaturePublicKey: Uint8Array;
  identity: Uint8Array;
}

export type ProcessResult =
  | { kind: 'application'; group: MlsGroup; plaintext: Uint8Array; senderLeaf: number | null }
  | { kind: 'commit'; group: MlsGroup; removedSelf: boolean }
  | { kind: 'proposal'; group: MlsGroup; external: boolean };

/** What RFC 9420 puts in the clear of a framed message. */
export interface MlsHeader {
  wireformat: 'public' | 'private' | 'welcome' | 'group_info' | 'key_package';
  groupId: string | null;
  epoch: bigint | null;
  contentType: 'application' | 'proposal' | 'commit' | null;
}

export interface MlsEngine {
  readonly suite: string;
  generateSignatureKey(): Promise<{ publicKey: Uint8Array; privateKey: Uint8Array }>;
  generateKeyPackage(device: MlsDevice): Promise<KeyPackagePair>;
  /** A new group at epoch 0 with only this device. */
  createGroup(groupId: string, device: MlsDevice, kp: KeyPackagePair, opts?: { externalSenders?: ExternalSenderEntry[] }): Promise<MlsGroup>;
  /**
   * Commits adds (KeyPackage MLSMessages), removes (leaf indexes), a replacement of the group's external
   * senders (a GroupContextExtensions proposal) and every pending proposal. Returns the
   * group as it will be once the commit is accepted, the commit and (when it adds) the Welcome.
   * `identity`: this device's leaf takes a new credential identity (same signature key) in the commit's
   * UpdatePath; such a commit adds nothing and always carries a path (a renewed delegation, docs/e2ee.md section 2).
   */
  commit(group: MlsGroup, opts?: { add?: Uint8Array[]; remove?: number[]; externalSenders?: ExternalSenderEntry[]; identity?: Uint8Array }): Promise<{ group: MlsGroup; commit: Uint8Array; welcome: Uint8Array | null }>;
  /** The signature keys of the group's external senders. */
  externalSenders(group: MlsGroup): Uint8Array[];
  /** Joins from a Welcome with one of this device's KeyPackages; null when none of them is addressed. */
  joinWelcome(welcome: Uint8Array, candidates: KeyPackagePair[]): Promise<{ group: MlsGroup; used: KeyPackagePair } | null>;
  /** Joins by external commit from a GroupInfo (with the ratchet tree); resync removes this device's old leaf. */
  joinExternal(groupInfo: Uint8Array, device: MlsDevice, kp: KeyPackagePair, resync: boolean): Promise<{ group: MlsGroup; commit: Uint8Array }>;
  encrypt(group: MlsGroup, plaintext: Uint8Array): Promise<{ group: MlsGroup; message: Uint8Array }>;
  /** Processes one framed message (application, proposal or commit) of the group. Throws when it cannot. */
  process(group: MlsGroup, message: Uint8Array): Promise<ProcessResult>;
  /** GroupInfo with the ratchet tree and external public key, for external joins. */
  groupInfo(group: MlsGroup): Promise<Uint8Array>;
  epochAuthenticator(group: MlsGroup): Uint8Array;
  members(group: MlsGroup): MlsMember[];
  ownLeaf(group: MlsGroup): number;
  /** Proposals received and not yet committed. */
  pendingProposals(group: MlsGroup): number;
  serialize(group: MlsGroup): Uint8Array;
  deserialize(bytes: Uint8Array): MlsGroup;
  /** Reads the clear header of an MLSMessage and where it ends (a payload may hold a commit and a Welcome). */
  header(bytes: Uint8Array): { header: MlsHeader; length: number } | null;
}
