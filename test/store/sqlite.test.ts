import Database from 'better-sqlite3';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { dmCid } from '../../src/roles/chat/ids.js';
import { dm, storeContract } from './contract.js';
import { tempDir } from '../support/tmp.js';

const file = (): string => path.join(tempDir('rim-store-'), 'db.sqlite');

const files = new WeakMap<object, string>();
storeContract('sqlite file (writer thread)', async () => {
  const f = file();
  const s = new SqliteStore({ file: f, synchronous: 'FULL' });
  files.set(s, f);
  return s;
}, async (first) => new SqliteStore({ file: files.get(first) as string, synchronous: 'FULL' }));
storeContract('sqlite in memory (inline writer)', async () => new SqliteStore({ file: ':memory:', synchronous: 'FULL' }));

describe('SqliteStore', () => {
  it('keeps everything across a reopen of the same file', async () => {
    const f = file();
    const a = '0x' + '1'.repeat(40);
    const b = '0x' + '2'.repeat(40);
    const s1 = new SqliteStore({ file: f, synchronous: 'FULL' });
    await s1.appendEvents([dm(a, b), dm(b, a)]);
    await s1.close();
    const s2 = new SqliteStore({ file: f, synchronous: 'FULL' });
    const [next] = await s2.appendEvents([dm(a, b)]);
    expect(next?.event!.seq).toBe(3);
    expect((await s2.listEvents({ cid: dmCid(a, b), viewer: a, limit: 10, offset: 0 })).length).toBe(3);
    await s2.close();
  });

  it('gives a file made before the epoch existed an epoch at its first open, kept from then on', async () => {
    const f = file();
    const old = new Database(f);
    old.pragma('journal_mode = WAL');
    for (const m of MIGRATIONS.slice(0, 4)) old.exec(m as string);
    old.pragma('user_version = 4');
    old.close();
    const s1 = new SqliteStore({ file: f, synchronous: 'FULL' });
    const epoch = await s1.epoch();
    expect(epoch).toMatch(/^[0-9a-f]{32}$/);
    await s1.close();
    const s2 = new SqliteStore({ file: f, synchronous: 'FULL' });
    expect(await s2.epoch()).toBe(epoch);
    await s2.close();
  });
});
