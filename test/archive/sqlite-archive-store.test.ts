import { rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ARCHIVE_MIGRATIONS } from '../../src/archive/sqlite/schema.js';
import path from 'node:path';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/archive.js';
import { archiveStoreContract } from './archive-store-contract.js';

for (const through of ['own connection', 'the store\'s writer thread'] as const) archiveStoreContract(`SQLite (same file as the store, ${through})`, async () => {
  const dir = tempDir('archive-contract-');
  const file = path.join(dir, 'relation-im.sqlite');
  const store = new SqliteStore({ file, synchronous: 'NORMAL' });
  const archive = new SqliteArchiveStore(file, through === 'own connection' ? {} : { writer: store.writerClient() });
  let n = 0;
  return {
    archive,
    async commit(events) {
      const out = await store.appendEvents(events.map((e) => ({
        cid: 'dm:0x01:0x02', id: `0x${(++n).toString(16).padStart(64, '0')}`, face: e.face, kind: 0, sender: '0x01', ts: e.ts, receivedAt: e.ts,
        body: e.body, counts: true, onlyFor: null, hides: null, participants: null,
      })));
      return out.map((o) => o.event!.pos);
    },
    async close() {
      await archive.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite archive schema v1 -> v2', () => {
  it('keeps a v1 chain: accepted bundles become confirmed, the lease gets a token', async () => {
    const dir = tempDir('archive-migrate-');
    const file = path.join(dir, 'relation-im.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL' });
    const db = new Database(file);
    db.exec('CREATE TABLE archive_schema (version INTEGER NOT NULL)');
    db.exec(ARCHIVE_MIGRATIONS[0] as string);
    db.exec('INSERT INTO archive_schema (version) VALUES (1)');
    db.exec(`INSERT INTO archive_bundles (seq, status, prev_tx, first_pos, last_pos, count, first_ts, last_ts, bytes, sha256, file, cut_at, txid, tx_json, upload_state, accepted_at)
      VALUES (1, 'accepted', NULL, 1, 2, 2, 10, 20, 100, '${'a'.repeat(64)}', 'f', 5, '${'T'.repeat(43)}', '{}', '{}', 77),
             (2, 'uploading', '${'T'.repeat(43)}', 3, 3, 1, 30, 30, 50, '${'b'.repeat(64)}', 'g', 6, '${'U'.repeat(43)}', '{}', '{"chunkIndex":1}', NULL)`);
    db.exec(`INSERT INTO archive_lease (name, holder, expires_at) VALUES ('archiver', 'old', 1000)`);
    db.close();
    const archive = new SqliteArchiveStore(file);
    try {
      expect(await archive.head()).toMatchObject({ seq: 1, status: 'confirmed', txid: 'T'.repeat(43), acceptedAt: 77, confirmedAt: 77, reposts: 0, replacedTxids: [] });
      expect(await archive.getBundle(2)).toMatchObject({ status: 'uploading', uploadState: '{"chunkIndex":1}', confirmations: 0 });
      expect(await archive.lease()).toEqual({ holder: 'old', expiresAt: 1000, token: 1 });
      expect(await archive.acquireLease('new', 2000, 100)).toBe(2);
    } finally {
      await archive.close();
      await store.close();
    }
  });
});
