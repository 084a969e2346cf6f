import { closeSync, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import { createWriter, type Writer, type WriteOp } from './writer-core.js';

type Args<K extends WriteOp> = Parameters<Writer[K]>;
type Result<K extends WriteOp> = ReturnType<Writer[K]>;

/** How the store reaches its writer: on this thread, or on the writer thread. */
export interface WriterClient {
  call<K extends WriteOp>(op: K, ...args: Args<K>): Promise<Result<K>>;
  close(): Promise<void>;
  /** Called once every connection to the file in this process has closed. */
  release?(): void;
}

/** Writes on the calling thread (in-memory databases, where a second connection would see another database). */
export class InlineWriter implements WriterClient {
  private readonly writer: Writer;
  constructor(db: Database.Database) {
    this.writer = createWriter(db);
  }
  async call<K extends WriteOp>(op: K, ...args: Args<K>): Promise<Result<K>> {
    return (this.writer[op] as unknown as (...a: Args<K>) => Result<K>)(...args);
  }
  async close(): Promise<void> {}
}

/** How often the checkpointer runs, and past how many WAL frames it has the writer start the WAL over. */
export interface CheckpointOptions {
  intervalMs?: number;
  restartFrames?: number;
}

interface Reply { id: number; ok: boolean; value?: unknown; error?: string; name?: string }

/**
 * Writes on a dedicated thread, in the order they were called. If the thread dies, the calls under way
 * fail (their requests are answered with an error, nothing is acknowledged) and the next call starts a
 * new thread: SQLite's journal guarantees a half-done transaction is rolled back.
 */
export class ThreadWriter implements WriterClient {
  private worker: Worker | null = null;
  private checkpointer: Worker | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private closing = false;
  /** Set by the checkpointer when the WAL should start over, taken by the writer (checkpoint-worker.js). */
  private readonly walSignal = new SharedArrayBuffer(4);
  /**
   * A read-only descriptor of the database file for the checkpointer's fdatasync. Closed only by
   * release(), after every SQLite connection to the file has closed: closing any descriptor of a file
   * drops the process's POSIX locks on it, SQLite's included.
   */
  private syncFd: number | undefined;

  constructor(
    private readonly file: string,
    private readonly synchronous: 'FULL' | 'NORMAL',
    private readonly checkpoint: CheckpointOptions = {},
  ) {}

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./writer-worker.js', import.meta.url), { workerData: { file: this.file, synchronous: this.synchronous, walSignal: this.walSignal } });
    // The thread answers everything it took in one go as one array, in call order.
    w.on('message', (replies: Reply[] | { ready: true }) => {
      if (!Array.isArray(replies)) return;
      for (const m of replies) {
        const p = this.pending.get(m.id);
        if (!p) continue;
        this.pending.delete(m.id);
        if (m.ok) p.resolve(m.value);
        // A named error (the archive's FencedError, ChainConflictError) keeps its name and message.
        else p.reject(m.name !== undefined ? Object.assign(new Error(m.error), { name: m.name }) : new Error(`store write failed: ${m.error}`));
      }
    });
    const fail = (err: Error): void => {
      if (this.worker === w) this.worker = null;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`store writer exited with code ${code}`)));
    this.worker = w;
    if (!this.checkpointer) {
      this.syncFd ??= openSync(this.file, 'r');
      const c = new Worker(new URL('./checkpoint-worker.js', import.meta.url), {
        workerData: {
          file: this.file,
          intervalMs: this.checkpoint.intervalMs ?? 1000,
          restartFrames: this.checkpoint.restartFrames ?? 24_576,
          walSignal: this.walSignal,
          syncFd: this.syncFd,
        },
      });
      c.on('error', () => { this.checkpointer = null; }); // the writer's backstop checkpoint takes over
      c.unref();
      this.checkpointer = c;
    }
    return w;
  }

  call<K extends WriteOp>(op: K, ...args: Args<K>): Promise<Result<K>> {
    if (this.closing) return Promise.reject(new Error('store closed'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.ensure().postMessage({ id, op, args });
    });
  }

  release(): void {
    if (this.syncFd === undefined) return;
    closeSync(this.syncFd);
    this.syncFd = undefined;
  }

  async close(): Promise<void> {
    this.closing = true;
    const c = this.checkpointer;
    if (c) {
      this.checkpointer = null;
      await new Promise<void>((resolve) => {
        c.once('exit', () => resolve());
        c.postMessage('close');
      });
    }
    const w = this.worker;
    if (!w) return;
    // Writes already posted run before the close message: the queue is drained, then the thread ends.
    await new Promise<void>((resolve) => {
      w.once('exit', () => resolve());
      w.postMessage({ close: true });
    });
  }
}
