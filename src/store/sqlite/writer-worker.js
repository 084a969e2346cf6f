// @ts-check
/** The embedded store's writer thread: owns the one write connection and runs write ops in order. */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';
import { prepareConnection } from './schema.js';
import { createWriter } from './writer-core.js';

if (!parentPort) throw new Error('writer-worker must run as a worker thread');
const port = parentPort;
const { file, synchronous } = /** @type {{ file: string, synchronous: 'FULL' | 'NORMAL' }} */ (workerData);
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
const writer = /** @type {Record<string, (...args: unknown[]) => unknown>} */ (/** @type {unknown} */ (createWriter(db)));

port.on('message', (/** @type {{ id: number, op: string, args: unknown[] } | { close: true }} */ msg) => {
  if ('close' in msg) {
    db.close();
    port.close();
    return;
  }
  try {
    const fn = writer[msg.op];
    if (!fn) throw new Error(`unknown write op ${msg.op}`);
    port.postMessage({ id: msg.id, ok: true, value: fn(...msg.args) });
  } catch (e) {
    port.postMessage({ id: msg.id, ok: false, error: e instanceof Error ? e.message : String(e) });
  }
});
port.postMessage({ ready: true });
