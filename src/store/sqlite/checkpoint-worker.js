// @ts-check
/**
 * The embedded store's checkpointer thread: copies the WAL into the database file in the background
 * (PRAGMA wal_checkpoint(PASSIVE), which waits for no reader or writer), so the writer thread never stalls
 * a commit behind a checkpoint, and has the writer start the WAL over once it has grown (below). The
 * writer keeps a far-off automatic checkpoint as a safety net.
 */
import Database from 'better-sqlite3';
import { fdatasyncSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

if (!parentPort) throw new Error('checkpoint-worker must run as a worker thread');
const port = parentPort;
const { file, intervalMs, restartFrames, walSignal, syncFd } = /** @type {{ file: string, intervalMs: number, restartFrames: number, walSignal?: SharedArrayBuffer, syncFd?: number }} */ (workerData);
const db = new Database(file);
db.pragma('busy_timeout = 5000');

/**
 * Starting the WAL over. A PASSIVE checkpoint alone never lets the WAL start over under steady writes:
 * SQLite restarts it at the start of a commit only if every frame has been copied by then, and with a
 * commit every millisecond a pass that takes tens of them never finishes between two. The WAL then grew
 * to the writer's backstop (wal_autocheckpoint, 50,000 frames), and that checkpoint ran inside a commit:
 * copying what was left, fsyncing the database file and truncating the WAL held that commit 50-160 ms
 * every ~5 s at 1,000 messages/s (perf: walCheckpoint, wbt_wait and ext4_setattr on the writer thread).
 * RESTART from this thread was tried: it holds the write lock while it copies and syncs, and commits
 * waited 19-35 ms behind it every round.
 *
 * Instead, once a pass finds more than `restartFrames` frames (24,576 by default: 48 MiB of 2 KiB pages),
 * this thread raises the shared flag; the writer, between two commits, copies the frames written during
 * the pass (its own PASSIVE checkpoint, ~10 ms), so its next commit finds every frame copied and SQLite
 * restarts the WAL there. The WAL stays under journal_size_limit (64 MiB at 1,000 messages/s, so it is
 * overwritten in place, never truncated) instead of growing to ~100 MiB. Measured (docs/benchmarks.md,
 * fourth pass): 8,192 frames restarted every second and put the writer's ~10 ms step into the p99; at
 * 24,576 it comes every ~3 s.
 */
const restartWanted = walSignal ? new Int32Array(walSignal) : null;

/** One PASSIVE pass, the database file made durable up to it, and the writer asked to restart a long WAL. */
function round() {
  const r = /** @type {{ busy: number, log: number, checkpointed: number }[]} */ (db.pragma('wal_checkpoint(PASSIVE)'))[0];
  if (!r) return;
  // SQLite fsyncs the database file only after a checkpoint that copied every frame, which under steady
  // writes is the writer's (above): it then flushed every page copied here since the last one, 20-40 ms
  // for a second of them inside a commit (perf: ext4_do_writepages, wbt_wait on the writer thread). They
  // are flushed here instead, off the send path, so that checkpoint syncs only its own few frames.
  if (syncFd !== undefined && r.checkpointed > 0) {
    try {
      fdatasyncSync(syncFd);
    } catch {
      // a platform that refuses it on a read-only descriptor: the complete checkpoint's own fsync covers it
    }
  }
  if (restartWanted && r.log >= restartFrames) Atomics.store(restartWanted, 0, 1);
}

const timer = setInterval(() => {
  try {
    round();
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
