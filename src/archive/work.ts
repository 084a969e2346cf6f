/**
 * The archive's heavy work, behind one interface so that it can run on a worker thread: planning a bundle
 * (reading every pending row's size), writing its file (reading every body, hashing, fsync), signing its
 * transaction (reading the file, chunking it, the merkle data root, the RSA-PSS signature) and uploading
 * its chunks (base64 and JSON of every 256 KiB chunk). At 10,000 messages/s a 100 MB bundle is due every
 * ~10 s and this work held the main thread ~1.3 s each time (docs/benchmarks.md, issue 18).
 *
 * The archiver keeps every decision and every write of archive state on its own thread (the lease, the
 * fencing token, the bundle's record, the upload state after each chunk): the work only computes and
 * talks to the gateway, and hands each upload state back to the archiver to be recorded before the next
 * chunk goes up. So the crash-safety rules of docs/archive.md hold wherever the work runs.
 */
import { threadId } from 'node:worker_threads';
import { readBundleFile, writeBundleFile, type WrittenBundle } from './bundle-file.js';
import type { Tag } from './format.js';
import type { ArchiveStore, ArchiveUplink, PendingSummary, SignedBundleTx } from './port.js';

/** The boundaries of the next bundle, as `ArchiveStore.planBundle` gives them. */
export interface BundlePlan {
  count: number;
  bodyBytes: number;
  firstPos: number;
  lastPos: number;
  firstTs: number;
  lastTs: number;
}

/**
 * A bundle's content, as the archiver recorded it: the file (absolute path), its sha256, and the events
 * it holds (after `afterPos`, up to `lastPos`), from which a missing or damaged file is written again.
 */
export interface BundleRef {
  file: string;
  sha256: string;
  afterPos: number;
  lastPos: number;
}

/** Which thread did the last job of each kind (`threadId` of node:worker_threads; 0 is the main thread). */
export interface WorkThreads {
  plan: number | null;
  write: number | null;
  sign: number | null;
  upload: number | null;
}

/** Where the archive's heavy work runs, as `/archive/status` shows it. */
export interface WorkStatus {
  /** `worker`: a worker thread of its own; `main`: the archiver's thread (a store or uplink that cannot be opened twice). */
  mode: 'worker' | 'main';
  /** Worker threads running now (0 or 1). */
  workers: number;
  /** Worker threads started so far (a new one after one ended or failed). */
  workersStarted: number;
  /** Jobs done so far. */
  jobs: number;
  /** The thread that did the last job of each kind; the archiver's own thread is `archiverThreadId`. */
  lastThread: WorkThreads;
  archiverThreadId: number;
}

export interface BundleWork {
  /**
   * `ArchiveStore.pendingSince` on the work's connection: the size trigger and the status add up every
   * pending row's size, ~100,000 rows after 10 s at 10,000 messages/s (not counted in `jobs`).
   */
  pendingSince(afterPos: number): Promise<PendingSummary>;
  plan(afterPos: number, maxBytes: number): Promise<BundlePlan | null>;
  /** Writes the bundle file of the events after `afterPos` up to `lastPos` (temporary name, fsync, rename). */
  write(afterPos: number, lastPos: number, file: string): Promise<WrittenBundle>;
  /** Signs the bundle's transaction (its file read and checked against the recorded hash, rebuilt if need be). */
  sign(ref: BundleRef, tags: readonly Tag[]): Promise<SignedBundleTx>;
  /** Uploads the transaction's data from `state` on, handing each new state to `save` before the next chunk. */
  upload(tx: SignedBundleTx, ref: BundleRef, state: string | null, save: (state: string) => Promise<void>): Promise<void>;
  status(): WorkStatus;
  close(): Promise<void>;
}

/**
 * The bundle's bytes. A missing or damaged file is written again from the store: the bundle's events are
 * fixed by its positions, so the same bytes (checked against the recorded hash) come back.
 */
export async function bundleData(store: Pick<ArchiveStore, 'eventsBetween'>, ref: BundleRef): Promise<Buffer> {
  try {
    return await readBundleFile(ref.file, ref.sha256);
  } catch {
    const written = await writeBundleFile(store, ref.afterPos, ref.lastPos, ref.file);
    if (written.sha256 !== ref.sha256) throw new Error(`bundle file ${ref.file} cannot be rebuilt: its events changed (sha256 ${written.sha256})`);
    return readBundleFile(ref.file, ref.sha256);
  }
}

/** The work done on the calling thread, with the given store connection and uplink. */
export class InlineWork implements BundleWork {
  private jobs = 0;
  private readonly last: WorkThreads = { plan: null, write: null, sign: null, upload: null };

  constructor(private readonly store: ArchiveStore, private readonly uplink: ArchiveUplink, private readonly mode: 'worker' | 'main' = 'main') {}

  private done(kind: keyof WorkThreads): void {
    this.jobs += 1;
    this.last[kind] = threadId;
  }

  pendingSince(afterPos: number): Promise<PendingSummary> {
    return this.store.pendingSince(afterPos);
  }

  async plan(afterPos: number, maxBytes: number): Promise<BundlePlan | null> {
    const plan = await this.store.planBundle(afterPos, maxBytes);
    this.done('plan');
    return plan;
  }

  async write(afterPos: number, lastPos: number, file: string): Promise<WrittenBundle> {
    const written = await writeBundleFile(this.store, afterPos, lastPos, file);
    this.done('write');
    return written;
  }

  async sign(ref: BundleRef, tags: readonly Tag[]): Promise<SignedBundleTx> {
    const signed = await this.uplink.sign(await bundleData(this.store, ref), tags);
    this.done('sign');
    return signed;
  }

  async upload(tx: SignedBundleTx, ref: BundleRef, state: string | null, save: (state: string) => Promise<void>): Promise<void> {
    await this.uplink.upload(tx, await bundleData(this.store, ref), state, save);
    this.done('upload');
  }

  status(): WorkStatus {
    return { mode: this.mode, workers: 0, workersStarted: 0, jobs: this.jobs, lastThread: { ...this.last }, archiverThreadId: threadId };
  }

  async close(): Promise<void> {}
}
