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
 * this thread catches up (below) and raises the shared flag; the writer, between two commits, copies the
 * few frames written since (its own PASSIVE checkpoint, 1-2 ms at 1,000 messages/s), so its next commit
 * finds every frame copied and SQLite restarts the WAL there. The WAL stays under journal_size_limit (64 MiB at 1,000 messages/s, so it is
 * overwritten in place, never truncated) instead of growing to ~100 MiB. Measured (docs/benchmarks.md,
 * fourth pass): 8,192 frames restarted every second and put the writer's step (then ~10 ms) into the
 * p99; at 24,576 it comes every ~3 s.
 */
const restartWanted = walSignal ? new Int32Array(walSignal) : null;

/** @typedef {{ busy: number, log: number, checkpointed: number }} Pass */

/** One PASSIVE pass, then the database file made durable up to it. */
function pass() {
  const r = /** @type {Pass[]} */ (db.pragma('wal_checkpoint(PASSIVE)'))[0];
  if (!r) return null;
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
  return r;
}

/**
 * Frames the writer may be left to copy when it is asked to restart the WAL, and how many catch-up passes
 * this thread runs back to back to get there: each copies (and syncs) what was written during the one
 * before, so the writer's own step copies a few commits' worth instead of everything written during a
 * long pass and its sync. Measured with the store alone at 1,000 events/s (docs/benchmarks.md, fifth
 * pass): the step 4.6-7.2 -> 1.2-2.1 ms, commit p99 11.5-13.0 -> 10.9-11.4 ms, bytes the same. At
 * 10,000 events/s it does not help: the commits wait for the disk while this thread's sync runs, so
 * little is written during a pass, and the step is still 40-75 ms.
 */
const LEFT_FOR_WRITER = 256;
const CATCH_UP_PASSES = 6;

/** A pass; past `restartFrames`, catch-up passes, then the writer is asked to start the WAL over. */
function round() {
  let r = pass();
  if (!r || !restartWanted || r.log < restartFrames) return;
  for (let i = 0; i < CATCH_UP_PASSES; i++) {
    const before = r.log;
    r = pass();
    // busy (-1) or the WAL already started over (log fell): nothing to ask for this round
    if (!r || r.busy !== 0 || r.log < before) return;
    if (r.log - before <= LEFT_FOR_WRITER) break;
  }
  Atomics.store(restartWanted, 0, 1);
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
