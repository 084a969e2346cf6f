import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { dmCid } from '../../src/chat/ids.js';
import { dm, storeContract } from './contract.js';
import { tempDir } from '../support/tmp.js';

const file = (): string => path.join(tempDir('rim-store-'), 'db.sqlite');

storeContract('sqlite file (writer thread)', async () => new SqliteStore({ file: file(), synchronous: 'FULL' }));
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
    expect(next?.event.seq).toBe(3);
    expect((await s2.listEvents({ cid: dmCid(a, b), viewer: a, limit: 10, offset: 0 })).length).toBe(3);
    await s2.close();
  });
});
