// @ts-check
/** The embedded store's writer thread: owns the one write connection and runs write ops in order. */
import Database from 'better-sqlite3';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { prepareConnection } from './schema.js';
import { createWriter } from './writer-core.js';

if (!parentPort) throw new Error('writer-worker must run as a worker thread');
const port = parentPort;
const { file, synchronous, walSignal } = /** @type {{ file: string, synchronous: 'FULL' | 'NORMAL', walSignal?: SharedArrayBuffer }} */ (workerData);
const db = new Database(file);
prepareConnection(db, synchronous);
// Checkpoints run on the checkpointer thread (checkpoint-worker.js), never inside a commit here: a
// checkpoint copies pages to the database file and fsyncs it, which stalled commits (and every send
// waiting on them) for tens of milliseconds. Pages dirtied again and again (index interior pages,
// conversation rows) also reach the file once per checkpoint rather than per commit (writer alone:
// 12k -> 18k events/s against SQLite's default of checkpointing in the commit every ~4 MB). The
// automatic checkpoint stays as a backstop at ~200 MB of WAL; journal_size_limit truncates the file after.
db.pragma('wal_autocheckpoint = 50000');
db.pragma('journal_size_limit = 67108864');
const writer = createWriter(db);
const restartWanted = walSignal ? new Int32Array(walSignal) : null;
const ops = /** @type {Record<string, (...args: unknown[]) => unknown>} */ (/** @type {unknown} */ (writer));

/** @typedef {{ id: number, op: string, args: unknown[] }} Call */
/** @typedef {{ id: number, ok: boolean, value?: unknown, error?: string, name?: string }} Reply */

const message = (/** @type {unknown} */ e) => (e instanceof Error ? e.message : String(e));
/** The error's class name where it is one a caller tells apart (the archive's FencedError, ChainConflictError). */
const nameOf = (/** @type {unknown} */ e) => (e instanceof Error && e.name !== 'Error' && e.name !== 'SqliteError' ? { name: e.name } : {});

/**
 * Runs the calls in order. Consecutive appendEvents calls become one transaction, so one fsync makes
 * all of them durable: the main thread posts a batch per event-loop turn without waiting for the one
 * before, and whatever queued here while a commit was under way is committed next, together (group
 * commit sized by the disk's own latency). If the merged transaction fails, each batch is retried alone.
 * @param {Call[]} calls
 * @returns {Reply[]}
 */
function run(calls) {
  /** @type {Reply[]} */
  const replies = [];
  for (let i = 0; i < calls.length;) {
    const c = /** @type {Call} */ (calls[i]);
    if (c.op === 'appendEvents') {
      let j = i;
      while (j < calls.length && calls[j]?.op === 'appendEvents') j++;
      const group = calls.slice(i, j);
      const batches = group.map((g) => /** @type {import('../port.js').NewEvent[]} */ (g.args[0]));
      try {
        const results = writer.appendBatches(batches);
        group.forEach((g, k) => replies.push({ id: g.id, ok: true, value: results[k] }));
      } catch (e) {
        // The merged transaction rolled back; each batch is tried alone, so one that the database
        // refuses fails by itself, as it would have unmerged.
        if (group.length === 1) replies.push({ id: c.id, ok: false, error: message(e) });
        else group.forEach((g, k) => {
          try {
            replies.push({ id: g.id, ok: true, value: writer.appendEvents(/** @type {import('../port.js').NewEvent[]} */ (batches[k])) });
          } catch (e2) {
            replies.push({ id: g.id, ok: false, error: message(e2) });
          }
        });
      }
      i = j;
      continue;
    }
    try {
      const fn = ops[c.op];
      if (!fn) throw new Error(`unknown write op ${c.op}`);
      replies.push({ id: c.id, ok: true, value: fn(...c.args) });
    } catch (e) {
      replies.push({ id: c.id, ok: false, error: message(e), ...nameOf(e) });
    }
    i++;
  }
  return replies;
}

port.on('message', (/** @type {Call | { close: true }} */ first) => {
  // Everything already queued behind this message is taken now, in order, up to a close.
  /** @type {Call[]} */
  const calls = [];
  let close = false;
  for (let msg = first; ;) {
    if ('close' in msg) {
      close = true;
      break;
    }
    calls.push(msg);
    const next = receiveMessageOnPort(port);
    if (!next) break;
    msg = next.message;
  }
  if (calls.length > 0) port.postMessage(run(calls));
  // The checkpointer has just copied a long WAL: copy the frames written meanwhile (1-2 ms at 1,000
  // messages/s, after the replies went out), so the next commit starts the WAL over (checkpoint-worker.js).
  if (restartWanted && Atomics.exchange(restartWanted, 0, 0) === 1) {
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } catch {
      // busy: the checkpointer asks again after its next pass
    }
  }
  if (close) {
    db.close();
    port.close();
  }
});
port.postMessage({ ready: true });
