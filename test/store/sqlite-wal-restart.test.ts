import Database from 'better-sqlite3';
import { openSync, readSync, closeSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { dm } from './contract.js';
import { tempDir } from '../support/tmp.js';

/** Salt-1 of the WAL header (bytes 16-19, big-endian): SQLite adds one each time the WAL starts over. */
function walSalt1(file: string): number {
  const fd = openSync(`${file}-wal`, 'r');
  try {
    const header = Buffer.alloc(32);
    readSync(fd, header, 0, 32, 0);
    return header.readUInt32BE(16);
  } finally {
    closeSync(fd);
  }
}

/**
 * Under steady writes a PASSIVE checkpoint never finishes between two commits, so SQLite never starts the
 * WAL over by itself: the WAL grew to the writer's backstop (50,000 frames) and that checkpoint stalled a
 * commit. The checkpointer now has the writer start it over between two commits (checkpoint-worker.js).
 * Here the writer is kept busy with commits back to back, the checkpointer's cadence shortened.
 */
describe('SqliteStore WAL under steady writes', () => {
  it('starts the WAL over while commits run back to back, and keeps every acknowledged event', async () => {
    const file = path.join(tempDir('rim-wal-'), 'db.sqlite');
    const store = new SqliteStore({ file, synchronous: 'FULL', checkpoint: { intervalMs: 20, restartFrames: 64 } });
    const a = '0x' + '1'.repeat(40);
    const b = '0x' + '2'.repeat(40);
    await store.appendEvents([dm(a, b)]);
    const saltBefore = walSalt1(file);
    let maxWal = 0;
    const ids: string[] = [];
    // Eight batches in flight at all times: the writer takes whatever queued while it committed, so it
    // is never idle long enough for a checkpoint pass to catch up on its own.
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 0; i < 600; i++) {
      const batch = Array.from({ length: 10 }, () => dm(a, b));
      ids.push(...batch.map((e) => String(e.id)));
      const p = store.appendEvents(batch).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 8) await Promise.race(inFlight);
      if (i % 50 === 0) maxWal = Math.max(maxWal, statSync(`${file}-wal`).size);
    }
    await Promise.all(inFlight);
    const restarts = walSalt1(file) - saltBefore;
    maxWal = Math.max(maxWal, statSync(`${file}-wal`).size);
    await store.close();

    expect(restarts).toBeGreaterThanOrEqual(3);
    // Never restarted, the WAL of these 6,000 events grew to ~10 MiB; restarted, it is overwritten in place (~1 MiB).
    expect(maxWal).toBeLessThan(4 * 1024 * 1024);
    const reader = new Database(file, { readonly: true });
    const count = (reader.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
    const last = reader.prepare('SELECT id FROM events WHERE id = ?').get(ids[ids.length - 1]);
    reader.close();
    expect(count).toBe(ids.length + 1);
    expect(last).toBeTruthy();
  });
});
