import { rmSync } from 'node:fs';
import path from 'node:path';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/archive.js';
import { archiveStoreContract } from './archive-store-contract.js';

archiveStoreContract('SQLite (same file as the store, own connection)', async () => {
  const dir = tempDir('archive-contract-');
  const file = path.join(dir, 'relation-im.sqlite');
  const store = new SqliteStore({ file, synchronous: 'NORMAL' });
  const archive = new SqliteArchiveStore(file);
  let n = 0;
  return {
    archive,
    async commit(events) {
      const out = await store.appendEvents(events.map((e) => ({
        cid: 'dm:0x01:0x02', id: `0x${(++n).toString(16).padStart(64, '0')}`, face: e.face, kind: 0, sender: '0x01', ts: e.ts, receivedAt: e.ts,
        body: e.body, counts: true, onlyFor: null, hides: null, participants: null,
      })));
      return out.map((o) => o.event.pos);
    },
    async close() {
      await archive.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
