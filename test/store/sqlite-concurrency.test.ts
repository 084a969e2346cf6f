import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { dm } from './contract.js';
import { tempDir } from '../support/tmp.js';

/**
 * Other connections write to the same file (the archiver's state lives there). A writer transaction that
 * read first and wrote second would hit a stale snapshot (SQLITE_BUSY, no retry possible) whenever one of
 * them committed in between, failing a whole batch of acknowledged-to-be sends.
 */
describe('SqliteStore beside another writing connection', () => {
  it('commits every batch while another connection keeps writing to the same file', async () => {
    const file = path.join(tempDir('rim-conc-'), 'db.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL' });
    const other = new Database(file);
    other.pragma('busy_timeout = 5000');
    other.exec('CREATE TABLE IF NOT EXISTS side (n INTEGER)');
    const a = '0x' + '1'.repeat(40);
    const b = '0x' + '2'.repeat(40);
    const batches = Array.from({ length: 300 }, () => store.appendEvents(Array.from({ length: 20 }, () => dm(a, b))));
    const settled = Promise.allSettled(batches);
    let done = false;
    void settled.then(() => { done = true; });
    // Keep committing small writes from this thread until every batch has settled.
    const insert = other.prepare('INSERT INTO side (n) VALUES (?)');
    while (!done) {
      for (let i = 0; i < 200; i++) insert.run(i);
      await new Promise((r) => setImmediate(r));
    }
    const results = await settled;
    const failed = results.filter((r) => r.status === 'rejected');
    expect(failed.map((f) => String((f as PromiseRejectedResult).reason)).slice(0, 3)).toEqual([]);
    other.close();
    await store.close();
  });
});
