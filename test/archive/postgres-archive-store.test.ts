import { PostgresArchiveStore } from '../../src/archive/postgres/archive-store.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { freshSchema } from '../support/pg.js';
import { archiveStoreContract } from './archive-store-contract.js';

// Each rig: a schema of its own on the shared PostgreSQL 15, in a database dropped when the file is done.
archiveStoreContract('PostgreSQL (beside the PostgreSQL store, own pool)', async () => {
  const url = await freshSchema();
  const store = new PostgresStore({ url });
  await store.open();
  const archive = await PostgresArchiveStore.open({ url });
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
    },
  };
});
