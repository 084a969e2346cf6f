/**
 * Ports of the archive. The archiver talks to its state and to the permanent store only through these;
 * no SQL, database driver or Arweave client type crosses them. Every `ArchiveStore` adapter must pass
 * the contract suite in `test/archive/archive-store-contract.ts`.
 */
import type { Tag } from './format.js';

/** Where a bundle is in its life. Only ever moves forward: cut → signed → uploading → accepted. */
export type BundleStatus = 'cut' | 'signed' | 'uploading' | 'accepted';

/** A face-0 event that is, or will be, archived: its commit position, timestamp and exact body. */
export interface ArchivableEvent {
  pos: number;
  ts: number;
  body: string;
}

/** Face-0 events not yet in any bundle, after a given position. */
export interface PendingSummary {
  count: number;
  /** Sum of the UTF-8 sizes of their bodies. */
  bodyBytes: number;
  /** Position of the newest one; `afterPos` when there is none. */
  lastPos: number;
}

/** What a cut fixes about a bundle: its place in the chain and its exact content. */
export interface NewBundle {
  seq: number;
  /** Transaction id of bundle seq − 1 (already accepted), null for seq 1. */
  prevTx: string | null;
  firstPos: number;
  lastPos: number;
  count: number;
  firstTs: number;
  lastTs: number;
  bytes: number;
  /** Lowercase hex sha256 of the bundle file. */
  sha256: string;
  /** Bundle file, relative to DATA_DIR. */
  file: string;
  cutAt: number;
}

export interface BundleRecord extends NewBundle {
  status: BundleStatus;
  /** Set from `signed` on; never changes afterwards. */
  txid: string | null;
  /** The signed transaction as JSON, without its data (so a restart posts the very same transaction). */
  txJson: string | null;
  /** The chunked uploader's resumable state, JSON; null before the upload starts. */
  uploadState: string | null;
  acceptedAt: number | null;
}

export interface Lease {
  holder: string;
  expiresAt: number;
}

/** Raised by `insertBundle` when the chain has moved (another archiver cut first); nothing was written. */
export class ChainConflictError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ChainConflictError';
  }
}

export interface ArchiveStore {
  /** Face-0 events with pos > afterPos: how many, how many body bytes, and the newest position. */
  pendingSince(afterPos: number): Promise<PendingSummary>;
  /** Up to `limit` face-0 events with pos > afterPos and pos <= uptoPos, in pos order. */
  eventsBetween(afterPos: number, uptoPos: number, limit: number): Promise<ArchivableEvent[]>;
  /**
   * Face-0 events with pos > afterPos, in pos order, taken while the bundle stays within `maxBytes`
   * (always at least one): the boundaries of the next bundle, without the bodies.
   */
  planBundle(afterPos: number, maxBytes: number): Promise<{ count: number; bodyBytes: number; firstPos: number; lastPos: number; firstTs: number; lastTs: number } | null>;

  /** The newest bundle of any status, or null. */
  latestBundle(): Promise<BundleRecord | null>;
  getBundle(seq: number): Promise<BundleRecord | null>;
  /** The newest accepted bundle: the chain head. */
  head(): Promise<BundleRecord | null>;
  /**
   * Records a cut bundle atomically. Fails with ChainConflictError unless `seq` is one more than the
   * newest bundle, that bundle is accepted, its txid is `prevTx` and `firstPos` follows its `lastPos`
   * (so no gap, no overlap, no fork can be recorded).
   */
  insertBundle(b: NewBundle): Promise<BundleRecord>;
  /**
   * Records a bundle that is already on the chain (an import from Arweave) as accepted, under the same
   * rules as `insertBundle`; a bundle recorded with this txid already is left as it is.
   */
  adoptBundle(b: NewBundle, txid: string, at: number): Promise<BundleRecord>;
  /** cut → signed, fixing the transaction. Only from `cut`; a second call with another txid fails. */
  markSigned(seq: number, txid: string, txJson: string): Promise<void>;
  /** signed/uploading → uploading with the uploader's state. */
  saveUploadState(seq: number, state: string): Promise<void>;
  /** → accepted: the head moves to this bundle. */
  markAccepted(seq: number, at: number): Promise<void>;

  /** Takes or renews the archive lease for `holder`; false while another holder's lease runs. */
  acquireLease(holder: string, now: number, ttlMs: number): Promise<boolean>;
  releaseLease(holder: string): Promise<void>;
  lease(): Promise<Lease | null>;

  close(): Promise<void>;
}

/** A signed transaction ready to upload. */
export interface SignedBundleTx {
  id: string;
  /** The transaction as JSON without data, as recorded before upload. */
  json: string;
}

/** Whether a gateway knows a transaction. */
export type TxState = 'unknown' | 'pending' | 'confirmed';

/**
 * The permanent store, as the archiver needs it. The data is handed over as one buffer, read from the
 * bundle file when needed and dropped after: the archiver never keeps a bundle in memory between steps.
 */
export interface ArchiveUplink {
  /** Address of the wallet that signs (the owner readers search by). */
  owner(): Promise<string>;
  sign(data: Buffer, tags: readonly Tag[]): Promise<SignedBundleTx>;
  /**
   * Uploads the transaction and its data in chunks, starting from `state` (null: from the start), calling
   * `save` with the new state after each step so that a restart resumes there. Resolves when every chunk
   * has been accepted by the gateway.
   */
  upload(tx: SignedBundleTx, data: Buffer, state: string | null, save: (state: string) => Promise<void>): Promise<void>;
  txState(id: string): Promise<TxState>;
  /** Called after a bundle has been accepted (the embedded gateway mines a block). */
  afterAccepted(): Promise<void>;
  close(): Promise<void>;
}
