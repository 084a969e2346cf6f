import { Worker } from 'node:worker_threads';
import { availableParallelism } from 'node:os';
import { verifyJob, type VerifyJob, type VerifyResult } from './recover-core.js';

interface Pending {
  resolve: (r: VerifyResult) => void;
  reject: (e: Error) => void;
}

interface Lane {
  worker: Worker;
  inFlight: Map<number, Pending[]>;
  jobsInFlight: number;
}

/** Verification that runs somewhere: inline on the main thread, or spread over worker threads. */
export interface JobRunner {
  run(job: VerifyJob): Promise<VerifyResult>;
  readonly threads: number;
  close(): Promise<void>;
}

/** Runs jobs synchronously on the calling thread (VERIFY_WORKERS=0). */
export class InlineRunner implements JobRunner {
  readonly threads = 0;
  run(job: VerifyJob): Promise<VerifyResult> {
    return Promise.resolve(verifyJob(job));
  }
  async close(): Promise<void> {}
}

export interface WorkerPoolOptions {
  /** Jobs per postMessage at most. */
  maxBatch?: number;
  /**
   * A turn's only job, while every worker is idle, runs on the calling thread (default true). At a
   * modest load each message arrives alone, and sending it to a sleeping worker costs more than the
   * recovery itself: the worker's wake-up and the caller's for the answer (~40 us of CPU on this
   * machine, `bench-wake`), plus the hop's latency. Under load, jobs queue up or workers are busy, and
   * they go to the workers as before.
   */
  inlineWhenIdle?: boolean;
}

/**
 * A pool of recovery workers. Jobs that arrive in the same event-loop turn are sent as one batch per
 * worker (one postMessage, not one per job), to the lane with the fewest jobs in flight, so both cores
 * recover while the main thread parses, stores and pushes. A worker that dies fails its in-flight jobs
 * (the caller answers INTERNAL, nothing is stored) and is replaced.
 */
export class WorkerPool implements JobRunner {
  readonly threads: number;
  /** Where jobs ran: on the calling thread (idle pool, one job in the turn) or sent to a worker. */
  readonly ran = { inline: 0, workers: 0 };
  private readonly lanes: Lane[] = [];
  private queue: { job: VerifyJob; pending: Pending }[] = [];
  private scheduled = false;
  private nextBatch = 1;
  private closed = false;
  private readonly maxBatch: number;
  private readonly inlineWhenIdle: boolean;

  constructor(threads: number, opts: WorkerPoolOptions = {}) {
    this.maxBatch = opts.maxBatch ?? 256;
    this.inlineWhenIdle = opts.inlineWhenIdle ?? true;
    this.threads = threads < 0 ? availableParallelism() : threads;
    for (let i = 0; i < this.threads; i++) this.lanes.push(this.spawn());
  }

  private spawn(): Lane {
    const worker = new Worker(new URL('./recover-worker.js', import.meta.url));
    const lane: Lane = { worker, inFlight: new Map(), jobsInFlight: 0 };
    worker.on('message', (msg: { batch: number; results: VerifyResult[] }) => {
      const pendings = lane.inFlight.get(msg.batch);
      if (!pendings) return;
      lane.inFlight.delete(msg.batch);
      lane.jobsInFlight -= pendings.length;
      if (lane.jobsInFlight === 0) worker.unref();
      for (let i = 0; i < pendings.length; i++) {
        const result = msg.results[i];
        if (result) pendings[i]?.resolve(result);
        else pendings[i]?.reject(new Error('worker returned too few results'));
      }
    });
    const fail = (err: Error): void => {
      for (const pendings of lane.inFlight.values()) for (const p of pendings) p.reject(err);
      lane.inFlight.clear();
      lane.jobsInFlight = 0;
      if (this.closed) return;
      const idx = this.lanes.indexOf(lane);
      if (idx >= 0) this.lanes[idx] = this.spawn();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`verify worker exited with code ${code}`));
    });
    worker.unref();
    return lane;
  }

  run(job: VerifyJob): Promise<VerifyResult> {
    if (this.closed) return Promise.reject(new Error('worker pool closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ job, pending: { resolve, reject } });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.dispatch());
      }
    });
  }

  private dispatch(): void {
    this.scheduled = false;
    const queue = this.queue;
    this.queue = [];
    const only = queue.length === 1 ? queue[0] : undefined;
    if (only && this.inlineWhenIdle && this.lanes.every((l) => l.jobsInFlight === 0)) {
      this.ran.inline++;
      try {
        only.pending.resolve(verifyJob(only.job));
      } catch (err) {
        only.pending.reject(err instanceof Error ? err : new Error(String(err)));
      }
      return;
    }
    this.ran.workers += queue.length;
    let i = 0;
    while (i < queue.length) {
      // Least-loaded lane takes the next slice; slices are sized so that all lanes share a burst.
      const lane = this.lanes.reduce((a, b) => (b.jobsInFlight < a.jobsInFlight ? b : a));
      const size = Math.min(this.maxBatch, Math.max(1, Math.ceil((queue.length - i) / this.lanes.length)));
      const slice = queue.slice(i, i + size);
      i += size;
      const batch = this.nextBatch++;
      lane.inFlight.set(batch, slice.map((s) => s.pending));
      lane.jobsInFlight += slice.length;
      // An idle pool must not keep the process alive, a busy one must (its callers are waiting).
      lane.worker.ref();
      lane.worker.postMessage({ batch, jobs: slice.map((s) => s.job) });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const err = new Error('worker pool closed');
    for (const { pending } of this.queue) pending.reject(err);
    this.queue = [];
    await Promise.all(this.lanes.map(async (lane) => {
      for (const pendings of lane.inFlight.values()) for (const p of pendings) p.reject(err);
      await lane.worker.terminate();
    }));
  }
}

export function createJobRunner(threads: number): JobRunner {
  return threads === 0 ? new InlineRunner() : new WorkerPool(threads);
}
