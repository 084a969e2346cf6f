/**
 * The archive's worker thread (see thread-work.ts): its own store connection and gateway client, and the
 * same work the archiver would otherwise do inline (work.ts), one job at a time in arrival order.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { arweaveFor, type Jwk } from '../arweave/client.js';
import { ArweaveUplink } from '../arweave/uplink.js';
import type { ArchiveStore } from '../port.js';
import { PostgresArchiveStore } from '../postgres/archive-store.js';
import { SqliteArchiveStore } from '../sqlite/archive-store.js';
import { InlineWork } from '../work.js';
import type { WorkerSetup, WorkReply, WorkRequest } from './thread-work.js';

if (!parentPort) throw new Error('bundle-worker must run as a worker thread');
const port = parentPort;
const setup = workerData as WorkerSetup;

/**
 * The archive is background work: on two cores its hashing and streaming competed with the main thread,
 * whose young-generation collections then took 30-100 ms of wall time instead of a few (the event loop's
 * max delay during a 100 MB cut, docs/benchmarks.md). Linux gives each thread its own nice value, so this
 * thread alone steps back and the send path's threads keep theirs. Where that is not possible (another
 * OS), the worker runs at the process's priority.
 */
const ARCHIVE_WORKER_NICE = 10;
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isInteger(tid) && tid > 0) setPriority(tid, ARCHIVE_WORKER_NICE);
} catch {
  // not Linux, or /proc not mounted
}

const store: ArchiveStore = setup.store.kind === 'sqlite'
  ? new SqliteArchiveStore(setup.store.file, { reader: true })
  : await PostgresArchiveStore.open({ url: setup.store.url, poolMax: 1 });
const uplink = new ArweaveUplink(arweaveFor(setup.uplink.gatewayUrl), setup.uplink.jwk as unknown as Jwk);
const work = new InlineWork(store, uplink, 'worker');

/** Replies to the archiver's "saved" answers, by job id. */
const saved = new Map<number, (ok: boolean) => void>();
const reply = (r: WorkReply): void => port.postMessage(r);

async function run(req: Exclude<WorkRequest, { op: 'saved' }>): Promise<unknown> {
  switch (req.op) {
    case 'pending':
      return work.pendingSince(req.afterPos);
    case 'plan':
      return work.plan(req.afterPos, req.maxBytes);
    case 'write':
      return work.write(req.afterPos, req.lastPos, req.file);
    case 'sign':
      return work.sign(req.ref, req.tags);
    case 'upload':
      // Each new state goes to the archiver, which records it under its lease; the next chunk waits for that.
      return work.upload(req.tx, req.ref, req.state, (state) => new Promise<void>((resolve, reject) => {
        saved.set(req.id, (ok) => (ok ? resolve() : reject(new Error('the archiver did not record the upload state'))));
        reply({ id: req.id, save: state });
      }));
  }
}

const answer = (req: Exclude<WorkRequest, { op: 'saved' }>): Promise<void> => run(req).then(
  (result) => reply({ id: req.id, ok: true, result: result ?? null, threadId }),
  (e: unknown) => reply({ id: req.id, ok: false, error: { name: e instanceof Error ? e.name : 'Error', message: e instanceof Error ? e.message : String(e) } }),
);

let queue: Promise<unknown> = Promise.resolve();
port.on('message', (req: WorkRequest) => {
  if (req.op === 'saved') {
    const done = saved.get(req.id);
    saved.delete(req.id);
    done?.(req.ok);
    return;
  }
  // The backlog's sum is one read and does not wait behind the bundle's steps: queued behind an upload
  // it waited for the whole upload (minutes against a slow gateway), and with it /archive/status, every
  // /metrics scrape (its rim_archive_* gauges) and the size trigger. A read between two awaits of a step
  // is safe: SQLite reads here are synchronous, and PostgreSQL's pool queues them.
  if (req.op === 'pending') {
    void answer(req);
    return;
  }
  queue = queue.then(() => answer(req));
});
