// @ts-check
/**
 * The embedded store's checkpointer thread: copies the WAL into the database file in the background
 * (PRAGMA wal_checkpoint(PASSIVE), which waits for no reader or writer), so the writer thread never stalls
 * a commit behind a checkpoint. The writer keeps a far-off automatic checkpoint as a safety net.
 */
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

if (!parentPort) throw new Error('checkpoint-worker must run as a worker thread');
const port = parentPort;
const { file, intervalMs } = /** @type {{ file: string, intervalMs: number }} */ (workerData);
const db = new Database(file);
db.pragma('busy_timeout = 5000');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // busy or closing: the next round tries again; the writer's own autocheckpoint is the backstop
  }
}, intervalMs);
port.on('message', () => {
  clearInterval(timer);
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } finally {
    db.close();
    port.close();
  }
});
