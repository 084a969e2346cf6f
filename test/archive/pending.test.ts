import { rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { PendingCounter } from '../../src/archive/pending.js';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { tempDir } from '../support/archive.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanup.splice(0)) await c();
});

it('counts each pending event once even when refreshes overlap (a status request during a run)', async () => {
  const dir = tempDir('pending-');
  const file = path.join(dir, 'relation-im.sqlite');
  const store = new SqliteStore({ file, synchronous: 'NORMAL' });
  const archive = new SqliteArchiveStore(file);
  cleanup.push(async () => {
    await archive.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const ev = (n: number) => ({
    cid: 'dm:0x01:0x02', id: `0x${n.toString(16).padStart(64, '0')}`, face: 0 as const, kind: 0, sender: '0x01', ts: n, receivedAt: n,
    body: 'abcd', counts: true, onlyFor: null, hides: null, participants: null,
  });
  await store.appendEvents([ev(1), ev(2)]);
  const counter = new PendingCounter();
  const [a, b] = await Promise.all([counter.refresh(archive, 0), counter.refresh(archive, 0)]);
  expect(a).toEqual({ count: 2, bodyBytes: 8, lastPos: 2 });
  expect(b).toEqual({ count: 2, bodyBytes: 8, lastPos: 2 });
  await store.appendEvents([ev(3)]);
  expect(await counter.refresh(archive, 0)).toEqual({ count: 3, bodyBytes: 12, lastPos: 3 });
  // a new bundle boundary starts the count again
  expect(await counter.refresh(archive, 2)).toEqual({ count: 1, bodyBytes: 4, lastPos: 3 });
});
