/**
 * Ports of the archive. The archiver talks to its state and to the permanent store only through these;
 * no SQL, database driver or Arweave client type crosses them. Every `ArchiveStore` adapter must pass
 * the contract suite in `test/archive/archive-store-contract.ts`.
 */
import type { Tag } from './format.js';

/**
 * Where a bundle is in its life (docs/archive.md, "States"):
 * cut → signed → uploading → pending → confirmed, with two ways back that keep the chain whole:
 * pending → dropped → uploading (the same signed transaction posted again, same id), and
 * signed/uploading/dropped → signed with a new transaction (re-signed with a fresh anchor, only while no
 * gateway knows the old id). `confirmed` (at the configured depth) is final; only then may the next
 * bundle be cut, so a `Prev-Tx` never names a transaction that can still change.
 */
export type BundleStatus = 'cut' | 'signed' | 'uploading' | 'pending' | 'dropped' | 'confirmed';

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
  /** Transaction id of bundle seq − 1 (already confirmed), null for seq 1. */
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
  /** Set from `signed` on; changes only by `resign` (the old id was never seen by a gateway). */
  txid: string | null;
  /** The signed transaction as JSON, without its data (so a restart posts the very same transaction). */
  txJson: string | null;
  /** The chunked uploader's resumable state, JSON; null before the upload starts (and after a drop or re-sign). */
  uploadState: string | null;
  /** When the gateway first held the whole transaction (pending), null before. */
  acceptedAt: number | null;
  /** Confirmations last seen (blocks from the one holding it to the tip, that block counted); 0 while unmined. */
  confirmations: number;
  /** When the bundle reached the confirmation depth (status confirmed). */
  confirmedAt: number | null;
  /** Times the transaction was found dropped and posted again (same id). */
  reposts: number;
  /** Earlier transaction ids of this bundle, replaced by a re-sign (never seen by a gateway), oldest first. */
  replacedTxids: string[];
}

export interface Lease {
  holder: string;
  expiresAt: number;
  /** Fencing token: grows by one on every acquisition by a holder other than the previous one, never reused. */
  token: number;
}

/**
 * Raised by every write of archive state made with a fencing token that is not the lease's current one:
 * the writer lost the lease (paused or partitioned past it) and another holder may have moved on.
 * Nothing was written.
 */
export class FencedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FencedError';
  }
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
  /** The newest confirmed bundle: the chain head. */
  head(): Promise<BundleRecord | null>;

  // Every write below takes the writer's fencing token (from `acquireLease`) and fails with FencedError,
  // writing nothing, unless it is the lease's current token.

  /**
   * Records a cut bundle atomically. Fails with ChainConflictError unless `seq` is one more than the
   * newest bundle, that bundle is confirmed, its txid is `prevTx` and `firstPos` follows its `lastPos`
   * (so no gap, no overlap, no fork can be recorded).
   */
  insertBundle(b: NewBundle, token: number): Promise<BundleRecord>;
  /**
   * Records a bundle that is already on the chain (an import from Arweave) as confirmed, under the same
   * rules as `insertBundle`; a bundle recorded with this txid already is left as it is.
   */
  adoptBundle(b: NewBundle, txid: string, at: number, token: number): Promise<BundleRecord>;
  /** cut → signed, fixing the transaction. Only from `cut`; a second call with another txid fails. */
  markSigned(seq: number, txid: string, txJson: string, token: number): Promise<void>;
  /**
   * signed/uploading/dropped → signed with a new transaction `txid` replacing `oldTxid` (which joins
   * `replacedTxids`), upload state cleared. Refused unless the bundle's txid is still `oldTxid`; recorded
   * before the new transaction is posted anywhere, so a crash leaves exactly one id to go on with.
   */
  resign(seq: number, oldTxid: string, txid: string, txJson: string, token: number): Promise<void>;
  /** signed/uploading/dropped → uploading with the uploader's state. */
  saveUploadState(seq: number, state: string, token: number): Promise<void>;
  /** uploading/signed → pending: the gateway holds the whole transaction. Repeating it is harmless. */
  markPending(seq: number, at: number, token: number): Promise<void>;
  /** Records the confirmations seen for a pending bundle (stays pending). */
  saveConfirmations(seq: number, confirmations: number, token: number): Promise<void>;
  /** pending → dropped: the gateway no longer knows the transaction; `reposts` grows by one, upload state cleared. */
  markDropped(seq: number, token: number): Promise<void>;
  /** pending → confirmed at `confirmations` ≥ the depth: the head moves to this bundle. Repeating it is harmless. */
  markConfirmed(seq: number, confirmations: number, at: number, token: number): Promise<void>;

  /**
   * Takes or renews the archive lease for `holder`: its fencing token, or null while another holder's
   * lease runs. A renewal by the same holder keeps the token; any other acquisition (another holder, or
   * after a release) gets the next one.
   */
  acquireLease(holder: string, now: number, ttlMs: number): Promise<number | null>;
  /** Ends `holder`'s lease at once (its token stays spent). */
  releaseLease(holder: string): Promise<void>;
  /** The lease, or null when none is held (never taken, or released). */
  lease(): Promise<Lease | null>;

  close(): Promise<void>;

  /**
   * How another thread opens its own connection to the same store (better-sqlite3 connections belong to
   * the thread that opened them): the archive's worker reads the events of a bundle through it. Absent on
   * a store that cannot be opened twice; the archiver then does that work on its own thread.
   */
  readerSpec?(): ArchiveReaderSpec;
}

/** Where a second connection to an archive store is opened (plain data: it is posted to a worker). */
export type ArchiveReaderSpec = { kind: 'sqlite'; file: string } | { kind: 'postgres'; url: string };

/** A signed transaction ready to upload. */
export interface SignedBundleTx {
  id: string;
  /** The transaction as JSON without data, as recorded before upload. */
  json: string;
}

/** What a gateway says of a transaction: unknown to it, held unmined, or mined with this many confirmations (≥ 1). */
export type TxState = { state: 'unknown' } | { state: 'pending' } | { state: 'mined'; confirmations: number };

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
  /**
   * How many blocks old the signed transaction's anchor is (the network refuses one older than 50 blocks),
   * or null when the gateway cannot say (the anchor is not a block it knows).
   */
  anchorAge(txJson: string): Promise<number | null>;
  /** Called after a bundle's transaction was posted completely (the embedded gateway mines a block). */
  afterAccepted(): Promise<void>;
  close(): Promise<void>;
  /**
   * The gateway and wallet, for a worker thread that signs and uploads with its own client of the same
   * gateway. Absent on an uplink that cannot be rebuilt elsewhere; the archiver then signs on its thread.
   */
  workerSpec?(): UplinkSpec;
}

/** What a worker needs to sign and upload as this uplink does (the wallet stays inside the process). */
export interface UplinkSpec {
  gatewayUrl: string;
  /** The archive wallet's JWK (posted to the worker thread only, never logged). */
  jwk: Record<string, unknown>;
}
