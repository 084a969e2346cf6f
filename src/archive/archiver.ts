import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { unlink } from 'node:fs/promises';
import { schedule, type ScheduledTask } from 'node-cron';
import type { Clock } from '../clock.js';
import type { Logger } from '../log/logger.js';
import { bundleBytes, bundleTags } from './format.js';
import { PendingCounter } from './pending.js';
import { FencedError, type ArchiveStore, type ArchiveUplink, type BundleRecord } from './port.js';
import { InlineWork, type BundleRef, type BundleWork, type WorkStatus } from './work.js';
import { ThreadWork } from './worker/thread-work.js';

export interface ArchiverOptions {
  /** Bundle files live under `${dataDir}/archive/`. */
  dataDir: string;
  /** node-cron expression of the ticks. */
  cron: string;
  /** Pending bytes that cut a bundle at once; also the largest bundle. */
  sizeTriggerBytes: number;
  pollMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  leaseMs: number;
  /** Confirmations at which a bundle is permanent (the head moves, the next bundle may be cut); at least 1. */
  confirmations?: number;
  /**
   * A signed transaction not yet seen by the gateway whose anchor is older than this many blocks is
   * re-signed with a fresh anchor before it is posted (the network refuses anchors older than 50 blocks).
   */
  anchorMaxAgeBlocks?: number;
  /** Lease holder name; unique per archiver instance by default. */
  holder?: string;
  /** Jitter source (tests fix it). */
  random?: () => number;
  /**
   * Where planning, writing, signing and uploading bundles run: `worker` (the default) on a worker thread
   * of their own, when the store and the uplink can be opened there (`readerSpec`, `workerSpec`);
   * `main` on the archiver's thread; or a `BundleWork` given here.
   */
  work?: 'worker' | 'main' | BundleWork;
}

/** The work where the options say, falling back to the archiver's thread when it cannot run elsewhere. */
function workFor(store: ArchiveStore, uplink: ArchiveUplink, choice: ArchiverOptions['work']): BundleWork {
  if (typeof choice === 'object') return choice;
  if (choice !== 'main' && store.readerSpec && uplink.workerSpec) return new ThreadWork({ store: store.readerSpec(), uplink: uplink.workerSpec() });
  return new InlineWork(store, uplink, 'main');
}

/** Points of the bundle's life where tests inject crashes. A hook that throws stops the run there. */
export type ArchiverStep =
  | { step: 'cut'; bundle: BundleRecord }
  | { step: 'signed'; bundle: BundleRecord }
  | { step: 'upload-progress'; bundle: BundleRecord; state: string }
  | { step: 'uploaded'; bundle: BundleRecord }
  | { step: 'pending'; bundle: BundleRecord }
  | { step: 'resigning'; bundle: BundleRecord; txid: string }
  | { step: 'resigned'; bundle: BundleRecord }
  | { step: 'confirmed'; bundle: BundleRecord };
export type ArchiverHook = (s: ArchiverStep) => void | Promise<void>;

export interface RunResult {
  /** Bundles confirmed (to the configured depth) during this run, by seq. */
  confirmed: number[];
  /** Why nothing (more) was done, when that is the case. */
  skipped?: 'backoff' | 'lease' | 'stopped';
  error?: string;
}

/** One bundle as `/archive/status` shows it. */
export interface BundleView {
  seq: number; status: BundleRecord['status']; txid: string | null; prevTx: string | null; messages: number; bytes: number;
  firstTimestamp: number; lastTimestamp: number; cutAt: number; acceptedAt: number | null;
  confirmations: number; confirmedAt: number | null; reposts: number; replacedTxids: string[];
}

export interface ArchiveStatus {
  owner: string | null;
  /** The newest confirmed bundle. */
  head: { seq: number; txid: string; acceptedAt: number | null; confirmedAt: number | null; confirmations: number } | null;
  /** Messages not yet in any bundle. */
  pending: { messages: number; bytes: number };
  /**
   * Messages not yet permanent (after the head: in an unconfirmed bundle or in none): how many, the size
   * of a bundle of them, and the timestamp and age of the oldest.
   */
  unarchived: { messages: number; bytes: number; oldestTimestamp: number | null; oldestAgeMs: number | null };
  /** Confirmation depth at which a bundle becomes the head. */
  confirmationsRequired: number;
  lastBundle: BundleView | null;
  /** The newest bundles (up to 10), newest first. */
  bundles: BundleView[];
  /** Next scheduled tick (ms since the epoch), when the schedule runs in this process. */
  nextTick: number | null;
  sizeTriggerBytes: number;
  cron: string;
  lastError: { message: string; at: number; failures: number } | null;
  nextRetryAt: number | null;
  lease: { holder: string; expiresAt: number; ours: boolean } | null;
  /** Where the heavy work of a bundle runs (a worker thread, normally), and which thread did each last. */
  work: WorkStatus;
}

class Stopping extends Error {}
class LeaseLost extends Error {}

const view = (b: BundleRecord): BundleView => ({
  seq: b.seq, status: b.status, txid: b.txid, prevTx: b.prevTx, messages: b.count, bytes: b.bytes,
  firstTimestamp: b.firstTs, lastTimestamp: b.lastTs, cutAt: b.cutAt, acceptedAt: b.acceptedAt,
  confirmations: b.confirmations, confirmedAt: b.confirmedAt, reposts: b.reposts, replacedTxids: b.replacedTxids,
});

/** Whether the chunked uploader's recorded state says the header went up (null: nothing posted yet). */
const headerPosted = (state: string | null): boolean => state !== null && (JSON.parse(state) as { txPosted?: boolean }).txPosted === true;

/**
 * Moves committed Relation ONE messages into the chain of Arweave bundles (SPEC section 8).
 *
 * One bundle at a time, each through cut → signed → uploading → pending → confirmed, every step recorded
 * before the next begins: the bundle's content is fixed in a file and the store before signing, the signed
 * transaction before uploading, the uploader's state after every chunk; the head moves, and the next
 * bundle is cut, only once the transaction has the configured number of confirmations. A transaction
 * the gateway dropped is posted again (same id); one whose anchor went stale before any gateway saw it
 * is re-signed. Every write carries the lease's fencing token, so a holder that lost the lease writes nothing. A run that stops anywhere resumes the same bundle and transaction.
 * Bundles are cut on the cron tick (everything pending, nothing if nothing is) and as soon as the
 * pending data reaches the size trigger. Only the holder of the store's lease works.
 */
export class Archiver {
  private readonly holder: string;
  private readonly random: () => number;
  private readonly pending = new PendingCounter();
  private tickDue = false;
  private failures = 0;
  private retryAt = 0;
  private lastError: ArchiveStatus['lastError'] = null;
  private running: Promise<RunResult> | null = null;
  private task: ScheduledTask | null = null;
  private poller: NodeJS.Timeout | null = null;
  private stopping = false;
  private leaseRenewedAt = 0;
  /** Fencing token of the lease this pass holds; every write of archive state carries it. */
  private token = 0;
  private readonly depth: number;
  private readonly anchorMaxAge: number;
  private ownerAddress: string | null = null;
  private readonly work: BundleWork;

  constructor(
    private readonly store: ArchiveStore,
    private readonly uplink: ArchiveUplink,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly opts: ArchiverOptions,
    private readonly hook: ArchiverHook = () => {},
  ) {
    this.holder = opts.holder ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.random = opts.random ?? Math.random;
    this.depth = Math.max(1, opts.confirmations ?? 1);
    this.anchorMaxAge = opts.anchorMaxAgeBlocks ?? 40;
    this.work = workFor(store, uplink, opts.work);
  }

  /** Starts the cron schedule and the size/retry poll. */
  start(): void {
    if (this.task) return;
    this.stopping = false;
    this.task = schedule(this.opts.cron, () => this.runInBackground('tick'), { name: 'archive-tick', noOverlap: false });
    this.poller = setInterval(() => this.runInBackground('poll'), this.opts.pollMs);
    this.poller.unref();
    this.runInBackground('poll');
  }

  /** A run started by a timer: whatever escapes it is logged, never left to end the process. */
  private runInBackground(reason: 'tick' | 'poll'): void {
    this.runOnce(this.clock.now(), reason).catch((err: unknown) => this.log.error({ err }, 'archive run failed outside its own error handling'));
  }

  /** Stops scheduling, ends a running upload at its next chunk (its state is saved) and gives up the lease. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.task) await this.task.destroy();
    this.task = null;
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
    await this.running?.catch(() => undefined);
    await this.work.close();
    await this.store.releaseLease(this.holder);
  }

  /**
   * One pass at time `now`: resume an unfinished bundle, then cut and upload while bundles are due.
   * `tick` makes everything pending due (the cron tick); `poll` only what the size trigger makes due.
   * Concurrent calls join the pass under way (a tick arriving meanwhile is taken into it).
   */
  runOnce(now: number, reason: 'tick' | 'poll' = 'poll'): Promise<RunResult> {
    if (reason === 'tick') this.tickDue = true;
    if (this.running) return this.running;
    this.running = this.pass(now).finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(now: number): Promise<RunResult> {
    const confirmed: number[] = [];
    if (this.stopping) return { confirmed, skipped: 'stopped' };
    if (now < this.retryAt) return { confirmed, skipped: 'backoff' };
    try {
      // Inside the try: a store that fails here (SQLITE_BUSY, a lost database) makes a failed run with
      // backoff and lastError, like any other step, never a rejection out of the poll timer.
      const token = await this.store.acquireLease(this.holder, now, this.opts.leaseMs);
      if (token === null) return { confirmed, skipped: 'lease' };
      this.token = token;
      this.leaseRenewedAt = now;
      for (;;) {
        let bundle = await this.store.latestBundle();
        if (!bundle || bundle.status === 'confirmed') {
          const afterPos = bundle?.lastPos ?? 0;
          const pending = await this.pending.refresh(this.work, afterPos);
          if (pending.count === 0) {
            this.tickDue = false;
            break;
          }
          if (!this.tickDue && bundleBytes(pending.count, pending.bodyBytes) < this.opts.sizeTriggerBytes) break;
          bundle = await this.cut(bundle, afterPos, now);
        }
        // Not confirmed yet: the next bundle waits (its Prev-Tx must name a transaction that stays).
        if (!(await this.advance(bundle, now))) break;
        confirmed.push(bundle.seq);
        if (this.stopping) break;
      }
      this.failures = 0;
      this.retryAt = 0;
      this.lastError = null;
      return { confirmed };
    } catch (e) {
      if (e instanceof Stopping) return { confirmed, skipped: 'stopped' };
      this.failures += 1;
      const delay = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(this.failures - 1, 30));
      this.retryAt = now + Math.round(delay * (0.5 + 0.5 * this.random()));
      const message = e instanceof Error ? e.message : String(e);
      this.lastError = { message, at: now, failures: this.failures };
      this.log.warn({ err: e, failures: this.failures, retryAt: this.retryAt }, 'archive run failed; will retry');
      if (e instanceof LeaseLost || e instanceof FencedError) this.retryAt = now;
      return { confirmed, error: message };
    }
  }

  /** Fixes the next bundle: its content in a file, then its record (seq, link, boundaries, hash). */
  private async cut(prev: BundleRecord | null, afterPos: number, now: number): Promise<BundleRecord> {
    const plan = await this.work.plan(afterPos, this.opts.sizeTriggerBytes);
    if (!plan) throw new Error('nothing to cut');
    const seq = (prev?.seq ?? 0) + 1;
    const file = path.join('archive', `bundle-${String(seq).padStart(8, '0')}.json`);
    const written = await this.work.write(afterPos, plan.lastPos, path.join(this.opts.dataDir, file));
    if (written.count !== plan.count) throw new Error(`bundle ${seq}: planned ${plan.count} messages, wrote ${written.count}`);
    const bundle = await this.store.insertBundle({
      seq, prevTx: prev?.txid ?? null, firstPos: plan.firstPos, lastPos: plan.lastPos, count: plan.count,
      firstTs: plan.firstTs, lastTs: plan.lastTs, bytes: written.bytes, sha256: written.sha256, file, cutAt: now,
    }, this.token);
    this.log.info({ seq, messages: bundle.count, bytes: bundle.bytes }, 'archive bundle cut');
    await this.hook({ step: 'cut', bundle });
    return bundle;
  }

  /**
   * Takes a bundle as far as it goes now: signs a cut one, posts a signed one (re-signing it first when its
   * anchor went stale and no gateway knows it), re-posts a dropped one, and counts the confirmations of a
   * pending one. True once it is confirmed to the configured depth.
   */
  private async advance(start: BundleRecord, now: number): Promise<boolean> {
    let bundle = start;
    const tagsOf = (b: BundleRecord) => bundleTags({ seq: b.seq, prevTx: b.prevTx, count: b.count, firstTs: b.firstTs, lastTs: b.lastTs, sha256: b.sha256 });
    if (bundle.status === 'confirmed') return true;
    if (bundle.status === 'cut') {
      const signed = await this.work.sign(this.ref(bundle), tagsOf(bundle));
      await this.store.markSigned(bundle.seq, signed.id, signed.json, this.token);
      bundle = await this.reload(bundle.seq);
      this.log.info({ seq: bundle.seq, txid: bundle.txid }, 'archive bundle signed');
      await this.hook({ step: 'signed', bundle });
    }
    if (bundle.status === 'pending') {
      const state = await this.uplink.txState(bundle.txid as string);
      if (state.state === 'unknown') {
        // The gateway held it and lost it (a low reward, a fork, a restart): post the very same transaction again.
        await this.store.markDropped(bundle.seq, this.token);
        bundle = await this.reload(bundle.seq);
        this.log.warn({ seq: bundle.seq, txid: bundle.txid, reposts: bundle.reposts }, 'archive bundle dropped by the gateway; posting it again');
      } else {
        const n = state.state === 'mined' ? state.confirmations : 0;
        if (n >= this.depth) {
          await this.store.markConfirmed(bundle.seq, n, now, this.token);
          bundle = await this.reload(bundle.seq);
          this.log.info({ seq: bundle.seq, txid: bundle.txid, confirmations: n }, 'archive bundle confirmed; head moved');
          await this.hook({ step: 'confirmed', bundle });
          await unlink(path.join(this.opts.dataDir, bundle.file)).catch(() => undefined);
          return true;
        }
        if (n !== bundle.confirmations) await this.store.saveConfirmations(bundle.seq, n, this.token);
        return false;
      }
    }
    if (bundle.status === 'signed' || bundle.status === 'uploading' || bundle.status === 'dropped') {
      if (!headerPosted(bundle.uploadState) && (await this.uplink.txState(bundle.txid as string)).state === 'unknown') {
        const age = await this.uplink.anchorAge(bundle.txJson as string);
        if (age !== null && age > this.anchorMaxAge) bundle = await this.resign(bundle, tagsOf(bundle), age);
      }
      const txid = bundle.txid as string;
      const current = bundle;
      // The chunks go up from the work's thread; each new uploader state is recorded here, under the lease,
      // before the next chunk is sent.
      await this.work.upload({ id: txid, json: bundle.txJson as string }, this.ref(bundle), bundle.uploadState, async (state) => {
        await this.hook({ step: 'upload-progress', bundle: current, state });
        await this.store.saveUploadState(current.seq, state, this.token);
        await this.keepLease();
      });
      if ((await this.uplink.txState(txid)).state === 'unknown') throw new Error(`gateway does not know transaction ${txid} after its upload`);
      bundle = await this.reload(bundle.seq);
      await this.hook({ step: 'uploaded', bundle });
      await this.store.markPending(bundle.seq, now, this.token);
      bundle = await this.reload(bundle.seq);
      this.log.info({ seq: bundle.seq, txid }, 'archive bundle held by the gateway; waiting for confirmations');
      await this.hook({ step: 'pending', bundle });
      await this.uplink.afterAccepted();
      // Count at once (the embedded gateway has just mined), without posting again in this pass.
      const state = await this.uplink.txState(txid);
      const n = state.state === 'mined' ? state.confirmations : 0;
      if (n >= this.depth) return this.advance(bundle, now);
      if (n > 0) await this.store.saveConfirmations(bundle.seq, n, this.token);
    }
    return false;
  }

  /**
   * Signs the bundle again with a fresh anchor. Safe only because no gateway knows the old id (checked
   * just before) and its anchor is too old for the network ever to take it: the old transaction can never
   * appear. The new one is recorded before it is posted anywhere, so a crash leaves one id to go on with.
   */
  private async resign(bundle: BundleRecord, tags: ReturnType<typeof bundleTags>, age: number): Promise<BundleRecord> {
    const old = bundle.txid as string;
    const signed = await this.work.sign(this.ref(bundle), tags);
    if ((await this.uplink.txState(old)).state !== 'unknown') return bundle; // seen meanwhile: keep it
    await this.hook({ step: 'resigning', bundle, txid: signed.id });
    await this.store.resign(bundle.seq, old, signed.id, signed.json, this.token);
    const b = await this.reload(bundle.seq);
    this.log.warn({ seq: b.seq, old, txid: b.txid, anchorAgeBlocks: age }, 'archive bundle re-signed: its anchor went stale before any gateway saw it');
    await this.hook({ step: 'resigned', bundle: b });
    return b;
  }

  /**
   * The bundle's content as the work reads it: its file, checked against the recorded hash, and the events
   * it is written again from when the file is missing or damaged (fixed by its positions: the same bytes).
   */
  private ref(b: BundleRecord): BundleRef {
    return { file: path.join(this.opts.dataDir, b.file), sha256: b.sha256, afterPos: b.firstPos - 1, lastPos: b.lastPos };
  }

  private async reload(seq: number): Promise<BundleRecord> {
    const b = await this.store.getBundle(seq);
    if (!b) throw new Error(`bundle ${seq} vanished`);
    return b;
  }

  /** Renews the lease during long uploads; a stop request ends the upload here with its state saved. */
  private async keepLease(): Promise<void> {
    if (this.stopping) throw new Stopping('archiver stopping');
    const now = this.clock.now();
    if (now - this.leaseRenewedAt < this.opts.leaseMs / 3) return;
    const token = await this.store.acquireLease(this.holder, now, this.opts.leaseMs);
    if (token !== this.token) throw new LeaseLost('archive lease lost to another process');
    this.leaseRenewedAt = now;
  }

  async status(): Promise<ArchiveStatus> {
    const [head, last, lease] = await Promise.all([this.store.head(), this.store.latestBundle(), this.store.lease()]);
    // Both sums read every row they count: on the work's thread, not here.
    const pending = await this.pending.refresh(this.work, last?.lastPos ?? 0);
    const unarchived = await this.work.pendingSince(head?.lastPos ?? 0);
    const oldest = unarchived.count > 0 ? (await this.store.eventsBetween(head?.lastPos ?? 0, unarchived.lastPos, 1))[0] : undefined;
    const bundles: BundleView[] = [];
    for (let seq = last?.seq ?? 0; seq > 0 && bundles.length < 10; seq--) {
      const b = seq === last?.seq ? last : await this.store.getBundle(seq);
      if (b) bundles.push(view(b));
    }
    this.ownerAddress ??= await this.uplink.owner().catch(() => null);
    const now = this.clock.now();
    return {
      owner: this.ownerAddress,
      head: head ? { seq: head.seq, txid: head.txid as string, acceptedAt: head.acceptedAt, confirmedAt: head.confirmedAt, confirmations: head.confirmations } : null,
      pending: { messages: pending.count, bytes: pending.count === 0 ? 0 : bundleBytes(pending.count, pending.bodyBytes) },
      unarchived: {
        messages: unarchived.count,
        bytes: unarchived.count === 0 ? 0 : bundleBytes(unarchived.count, unarchived.bodyBytes),
        oldestTimestamp: oldest?.ts ?? null,
        oldestAgeMs: oldest ? Math.max(0, now - oldest.ts) : null,
      },
      confirmationsRequired: this.depth,
      lastBundle: last ? view(last) : null,
      bundles,
      nextTick: this.task?.getNextRun()?.getTime() ?? null,
      sizeTriggerBytes: this.opts.sizeTriggerBytes,
      cron: this.opts.cron,
      lastError: this.lastError,
      nextRetryAt: this.retryAt > 0 ? this.retryAt : null,
      lease: lease ? { ...lease, ours: lease.holder === this.holder } : null,
      work: this.work.status(),
    };
  }
}
