/**
 * The archive's heavy work (src/archive/work.ts) on a worker thread of its own, so that cutting, hashing,
 * signing and uploading a 100 MB bundle never holds the main event loop.
 *
 * The worker opens its own connection to the store (better-sqlite3 connections belong to the thread that
 * opened them; on PostgreSQL a pool of one) and its own client of the same gateway, with the same wallet.
 * It only reads events and computes; every write of archive state stays with the archiver, on its thread,
 * under its lease: during an upload the worker posts each new uploader state and waits for the archiver
 * to record it (fenced) before it sends the next chunk, so a crash resumes where the record says.
 *
 * The worker starts with the first job and is kept, unreferenced while idle (it never keeps the process
 * alive), until `close`. One that dies fails its job (the archiver's pass fails and retries with backoff) and a
 * new one is started for the next job.
 */
import { threadId, Worker } from 'node:worker_threads';
import type { WrittenBundle } from '../bundle-file.js';
import type { Tag } from '../format.js';
import type { ArchiveReaderSpec, PendingSummary, SignedBundleTx, UplinkSpec } from '../port.js';
import type { BundlePlan, BundleRef, BundleWork, WorkStatus, WorkThreads } from '../work.js';

/** What the worker is started with. */
export interface WorkerSetup {
  store: ArchiveReaderSpec;
  uplink: UplinkSpec;
}

/** main → worker */
export type WorkRequest =
  | { id: number; op: 'pending'; afterPos: number }
  | { id: number; op: 'plan'; afterPos: number; maxBytes: number }
  | { id: number; op: 'write'; afterPos: number; lastPos: number; file: string }
  | { id: number; op: 'sign'; ref: BundleRef; tags: Tag[] }
  | { id: number; op: 'upload'; tx: SignedBundleTx; ref: BundleRef; state: string | null }
  | { id: number; op: 'saved'; ok: boolean };

type Body<T> = T extends unknown ? Omit<T, 'id'> : never;

/** worker → main */
export type WorkReply =
  | { id: number; ok: true; result: unknown; threadId: number }
  | { id: number; ok: false; error: { name: string; message: string } }
  | { id: number; save: string };

interface Job {
  /** null: not one of the counted jobs (a pending count). */
  kind: keyof WorkThreads | null;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  save?: (state: string) => Promise<void>;
  /** The error a `save` threw (a lost lease, a stop): the job fails with it, not with the worker's copy. */
  saveError?: unknown;
}

export class ThreadWork implements BundleWork {
  private worker: Worker | null = null;
  /** Jobs under way, with the worker each was posted to. */
  private readonly jobs = new Map<number, Job & { worker: Worker }>();
  private nextId = 1;
  private started = 0;
  private done = 0;
  private readonly last: WorkThreads = { plan: null, write: null, sign: null, upload: null };

  constructor(private readonly setup: WorkerSetup) {}

  private spawn(): Worker {
    const w = new Worker(new URL('./bundle-thread.js', import.meta.url), { workerData: this.setup });
    this.started += 1;
    w.on('message', (msg: WorkReply) => this.onMessage(w, msg));
    const fail = (err: Error): void => {
      if (this.worker === w) this.worker = null;
      // only this worker's jobs: a new worker may already be at work on the next one
      for (const [id, job] of this.jobs) {
        if (job.worker !== w) continue;
        this.jobs.delete(id);
        job.reject(err);
      }
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`archive worker exited with code ${code}`)));
    w.unref();
    return w;
  }

  private onMessage(w: Worker, msg: WorkReply): void {
    const job = this.jobs.get(msg.id);
    if (!job) return;
    if ('save' in msg) {
      const save = job.save;
      if (!save) return;
      save(msg.save).then(
        () => w.postMessage({ id: msg.id, op: 'saved', ok: true } satisfies WorkRequest),
        (e: unknown) => {
          job.saveError = e;
          w.postMessage({ id: msg.id, op: 'saved', ok: false } satisfies WorkRequest);
        },
      );
      return;
    }
    this.jobs.delete(msg.id);
    if (![...this.jobs.values()].some((j) => j.worker === w)) w.unref();
    if (msg.ok) {
      if (job.kind !== null) {
        this.done += 1;
        this.last[job.kind] = msg.threadId;
      }
      job.resolve(msg.result);
    } else if (job.saveError !== undefined) {
      job.reject(job.saveError instanceof Error ? job.saveError : new Error(String(job.saveError)));
    } else {
      job.reject(Object.assign(new Error(msg.error.message), { name: msg.error.name }));
    }
  }

  private call<T>(kind: keyof WorkThreads | null, req: Body<WorkRequest>, save?: (state: string) => Promise<void>): Promise<T> {
    this.worker ??= this.spawn();
    const w = this.worker;
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.jobs.set(id, { kind, worker: w, resolve: resolve as (v: unknown) => void, reject, ...(save ? { save } : {}) });
      w.ref(); // a job under way keeps the process alive, as the same work on the main thread would
      w.postMessage({ ...req, id } as WorkRequest);
    });
  }

  pendingSince(afterPos: number): Promise<PendingSummary> {
    return this.call(null, { op: 'pending', afterPos });
  }

  plan(afterPos: number, maxBytes: number): Promise<BundlePlan | null> {
    return this.call('plan', { op: 'plan', afterPos, maxBytes });
  }

  write(afterPos: number, lastPos: number, file: string): Promise<WrittenBundle> {
    return this.call('write', { op: 'write', afterPos, lastPos, file });
  }

  sign(ref: BundleRef, tags: readonly Tag[]): Promise<SignedBundleTx> {
    return this.call('sign', { op: 'sign', ref, tags: [...tags] });
  }

  async upload(tx: SignedBundleTx, ref: BundleRef, state: string | null, save: (state: string) => Promise<void>): Promise<void> {
    await this.call('upload', { op: 'upload', tx, ref, state }, save);
  }

  status(): WorkStatus {
    return { mode: 'worker', workers: this.worker ? 1 : 0, workersStarted: this.started, jobs: this.done, lastThread: { ...this.last }, archiverThreadId: threadId };
  }

  /** Ends the worker (a later job starts a new one). */
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = null;
    if (w) await w.terminate();
  }
}
