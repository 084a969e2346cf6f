import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import path from 'node:path';
import { unlink } from 'node:fs/promises';
import { schedule, type ScheduledTask } from 'node-cron';
import type { Clock } from '../clock.js';
import type { Logger } from '../log/logger.js';
import { readBundleFile, writeBundleFile } from './bundle-file.js';
import { bundleBytes, bundleTags } from './format.js';
import { PendingCounter } from './pending.js';
import type { ArchiveStore, ArchiveUplink, BundleRecord } from './port.js';

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
  /** Lease holder name; unique per archiver instance by default. */
  holder?: string;
  /** Jitter source (tests fix it). */
  random?: () => number;
}

/** Points of the bundle's life where tests inject crashes. A hook that throws stops the run there. */
export type ArchiverStep =
  | { step: 'cut'; bundle: BundleRecord }
  | { step: 'signed'; bundle: BundleRecord }
  | { step: 'upload-progress'; bundle: BundleRecord; state: string }
  | { step: 'uploaded'; bundle: BundleRecord };
export type ArchiverHook = (s: ArchiverStep) => void | Promise<void>;

export interface RunResult {
  /** Bundles accepted during this run, by seq. */
  accepted: number[];
  /** Why nothing (more) was done, when that is the case. */
  skipped?: 'backoff' | 'lease' | 'stopped';
  error?: string;
}

export interface ArchiveStatus {
  owner: string | null;
  head: { seq: number; txid: string; acceptedAt: number | null } | null;
  /** Messages not yet in any bundle. */
  pending: { messages: number; bytes: number };
  lastBundle: {
    seq: number; status: BundleRecord['status']; txid: string | null; messages: number; bytes: number;
    firstTimestamp: number; lastTimestamp: number; cutAt: number; acceptedAt: number | null;
  } | null;
  /** Next scheduled tick (ms since the epoch), when the schedule runs in this process. */
  nextTick: number | null;
  sizeTriggerBytes: number;
  cron: string;
  lastError: { message: string; at: number; failures: number } | null;
  nextRetryAt: number | null;
  lease: { holder: string; expiresAt: number; ours: boolean } | null;
}

class Stopping extends Error {}
class LeaseLost extends Error {}

/**
 * Moves committed Relation ONE messages into the chain of Arweave bundles (SPEC section 8).
 *
 * One bundle at a time, each through cut → signed → uploading → accepted, every step recorded before the
 * next begins: the bundle's content is fixed in a file and the store before signing, the signed
 * transaction before uploading, the uploader's state after every chunk, and the head moves only once the
 * gateway holds the whole transaction. A run that stops anywhere resumes the same bundle and transaction.
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
  private ownerAddress: string | null = null;

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
  }

  /** Starts the cron schedule and the size/retry poll. */
  start(): void {
    if (this.task) return;
    this.stopping = false;
    this.task = schedule(this.opts.cron, () => {
      void this.runOnce(this.clock.now(), 'tick');
    }, { name: 'archive-tick', noOverlap: false });
    this.poller = setInterval(() => void this.runOnce(this.clock.now(), 'poll'), this.opts.pollMs);
    this.poller.unref();
    void this.runOnce(this.clock.now(), 'poll');
  }

  /** Stops scheduling, ends a running upload at its next chunk (its state is saved) and gives up the lease. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.task) await this.task.destroy();
    this.task = null;
    if (this.poller) clearInterval(this.poller);
    this.poller = null;
    await this.running?.catch(() => undefined);
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
    const accepted: number[] = [];
    if (this.stopping) return { accepted, skipped: 'stopped' };
    if (now < this.retryAt) return { accepted, skipped: 'backoff' };
    if (!(await this.store.acquireLease(this.holder, now, this.opts.leaseMs))) return { accepted, skipped: 'lease' };
    this.leaseRenewedAt = now;
    try {
      for (;;) {
        let bundle = await this.store.latestBundle();
        if (!bundle || bundle.status === 'accepted') {
          const afterPos = bundle?.lastPos ?? 0;
          const pending = await this.pending.refresh(this.store, afterPos);
          if (pending.count === 0) {
            this.tickDue = false;
            break;
          }
          if (!this.tickDue && bundleBytes(pending.count, pending.bodyBytes) < this.opts.sizeTriggerBytes) break;
          bundle = await this.cut(bundle, afterPos, now);
        }
        await this.finish(bundle, now);
        accepted.push(bundle.seq);
        if (this.stopping) break;
      }
      this.failures = 0;
      this.retryAt = 0;
      this.lastError = null;
      return { accepted };
    } catch (e) {
      if (e instanceof Stopping) return { accepted, skipped: 'stopped' };
      this.failures += 1;
      const delay = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** Math.min(this.failures - 1, 30));
      this.retryAt = now + Math.round(delay * (0.5 + 0.5 * this.random()));
      const message = e instanceof Error ? e.message : String(e);
      this.lastError = { message, at: now, failures: this.failures };
      this.log.warn({ err: e, failures: this.failures, retryAt: this.retryAt }, 'archive run failed; will retry');
      if (e instanceof LeaseLost) this.retryAt = now;
      return { accepted, error: message };
    }
  }

  /** Fixes the next bundle: its content in a file, then its record (seq, link, boundaries, hash). */
  private async cut(prev: BundleRecord | null, afterPos: number, now: number): Promise<BundleRecord> {
    const plan = await this.store.planBundle(afterPos, this.opts.sizeTriggerBytes);
    if (!plan) throw new Error('nothing to cut');
    const seq = (prev?.seq ?? 0) + 1;
    const file = path.join('archive', `bundle-${String(seq).padStart(8, '0')}.json`);
    const written = await writeBundleFile(this.store, afterPos, plan.lastPos, path.join(this.opts.dataDir, file));
    if (written.count !== plan.count) throw new Error(`bundle ${seq}: planned ${plan.count} messages, wrote ${written.count}`);
    const bundle = await this.store.insertBundle({
      seq, prevTx: prev?.txid ?? null, firstPos: plan.firstPos, lastPos: plan.lastPos, count: plan.count,
      firstTs: plan.firstTs, lastTs: plan.lastTs, bytes: written.bytes, sha256: written.sha256, file, cutAt: now,
    });
    this.log.info({ seq, messages: bundle.count, bytes: bundle.bytes }, 'archive bundle cut');
    await this.hook({ step: 'cut', bundle });
    return bundle;
  }

  /** Takes a cut bundle through signing and upload to accepted. */
  private async finish(cut: BundleRecord, now: number): Promise<void> {
    let bundle = cut;
    let data: Buffer | null = await this.bundleData(bundle);
    if (bundle.status === 'cut') {
      const signed = await this.uplink.sign(data, bundleTags({
        seq: bundle.seq, prevTx: bundle.prevTx, count: bundle.count, firstTs: bundle.firstTs, lastTs: bundle.lastTs, sha256: bundle.sha256,
      }));
      await this.store.markSigned(bundle.seq, signed.id, signed.json);
      bundle = await this.reload(bundle.seq);
      this.log.info({ seq: bundle.seq, txid: bundle.txid }, 'archive bundle signed');
      await this.hook({ step: 'signed', bundle });
    }
    if (bundle.status === 'signed' || bundle.status === 'uploading') {
      const txid = bundle.txid as string;
      const current = bundle;
      await this.uplink.upload({ id: txid, json: bundle.txJson as string }, data, bundle.uploadState, async (state) => {
        await this.hook({ step: 'upload-progress', bundle: current, state });
        await this.store.saveUploadState(current.seq, state);
        await this.keepLease();
      });
      data = null;
      if ((await this.uplink.txState(txid)) === 'unknown') throw new Error(`gateway does not know transaction ${txid} after its upload`);
      bundle = await this.reload(bundle.seq);
      await this.hook({ step: 'uploaded', bundle });
      await this.store.markAccepted(bundle.seq, now);
      this.log.info({ seq: bundle.seq, txid }, 'archive bundle accepted; head moved');
      await unlink(path.join(this.opts.dataDir, bundle.file)).catch(() => undefined);
      await this.uplink.afterAccepted();
    }
  }

  /**
   * The bundle's bytes. A missing or damaged file is written again from the store: the bundle's events
   * are fixed by its positions, so the same bytes (checked against the recorded hash) come back.
   */
  private async bundleData(b: BundleRecord): Promise<Buffer> {
    const file = path.join(this.opts.dataDir, b.file);
    try {
      return await readBundleFile(file, b.sha256);
    } catch {
      const written = await writeBundleFile(this.store, b.firstPos - 1, b.lastPos, file);
      if (written.sha256 !== b.sha256) throw new Error(`bundle ${b.seq} cannot be rebuilt: its events changed (sha256 ${written.sha256})`);
      return readBundleFile(file, b.sha256);
    }
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
    if (!(await this.store.acquireLease(this.holder, now, this.opts.leaseMs))) throw new LeaseLost('archive lease lost to another process');
    this.leaseRenewedAt = now;
  }

  async status(): Promise<ArchiveStatus> {
    const [head, last, lease] = await Promise.all([this.store.head(), this.store.latestBundle(), this.store.lease()]);
    const pending = await this.pending.refresh(this.store, last?.lastPos ?? 0);
    this.ownerAddress ??= await this.uplink.owner().catch(() => null);
    return {
      owner: this.ownerAddress,
      head: head ? { seq: head.seq, txid: head.txid as string, acceptedAt: head.acceptedAt } : null,
      pending: { messages: pending.count, bytes: pending.count === 0 ? 0 : bundleBytes(pending.count, pending.bodyBytes) },
      lastBundle: last ? {
        seq: last.seq, status: last.status, txid: last.txid, messages: last.count, bytes: last.bytes,
        firstTimestamp: last.firstTs, lastTimestamp: last.lastTs, cutAt: last.cutAt, acceptedAt: last.acceptedAt,
      } : null,
      nextTick: this.task?.getNextRun()?.getTime() ?? null,
      sizeTriggerBytes: this.opts.sizeTriggerBytes,
      cron: this.opts.cron,
      lastError: this.lastError,
      nextRetryAt: this.retryAt > 0 ? this.retryAt : null,
      lease: lease ? { ...lease, ours: lease.holder === this.holder } : null,
    };
  }
}
