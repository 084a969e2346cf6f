import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { migrate, SchemaTooNewError } from '../../src/store/postgres/migrate.js';
import { STORE_COMPONENT, STORE_MIGRATIONS } from '../../src/store/postgres/schema.js';
import { dm, storeContract } from './contract.js';
import { freshSchema } from '../support/pg.js';

// Every store of this file gets a schema of its own, in a database dropped when the file is done.
const urls = new WeakMap<object, string>();
async function make(): Promise<PostgresStore> {
  const url = await freshSchema();
  const s = new PostgresStore({ url });
  await s.open();
  urls.set(s, url);
  return s;
}

storeContract('postgresql', make, async (first) => {
  const s = new PostgresStore({ url: urls.get(first) as string });
  await s.open();
  return s;
});

const A = '0x' + 'a'.repeat(40);
const B = '0x' + 'b'.repeat(40);

describe('PostgresStore', () => {
  it('keeps everything, the epoch too, across a reopen', async () => {
    const url = await freshSchema();
    const s1 = new PostgresStore({ url });
    await s1.appendEvents([dm(A, B), dm(B, A)]);
    const epoch = await s1.epoch();
    await s1.close();
    const s2 = new PostgresStore({ url });
    const [next] = await s2.appendEvents([dm(A, B)]);
    expect(next?.event!.seq).toBe(3);
    expect(next?.event!.pos).toBe(3);
    expect(await s2.epoch()).toBe(epoch);
    await s2.close();
  });

  it('refuses to open a database migrated by a newer release', async () => {
    const url = await freshSchema();
    const s1 = new PostgresStore({ url });
    await s1.open();
    await s1.pool.query('INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)', [STORE_COMPONENT, STORE_MIGRATIONS.length + 1, 'from the future']);
    await s1.close();
    const s2 = new PostgresStore({ url });
    await expect(s2.open()).rejects.toBeInstanceOf(SchemaTooNewError);
    await expect(s2.appendEvents([dm(A, B)])).rejects.toThrow(/newer than this build knows/);
    await s2.close();
  });

  it('never lets a reader by pos skip an event: committed positions are always 1..n', async () => {
    const url = await freshSchema();
    const stores = [new PostgresStore({ url }), new PostgresStore({ url }), new PostgresStore({ url })];
    await Promise.all(stores.map((s) => s.open()));
    const reader = new pg.Client({ connectionString: url });
    await reader.connect();
    let writing = true;
    const writers = stores.map(async (s, k) => {
      for (let i = 0; i < 40; i++) {
        await s.appendEvents(Array.from({ length: 1 + ((i + k) % 7) }, (_, j) => (j % 3 === k ? dm(A, B) : dm(B, '0x' + String(k).repeat(40)))));
      }
    });
    const done = Promise.all(writers).finally(() => { writing = false; });
    // An archiver-style reader: whatever it sees, it sees every position up to the highest one.
    let checks = 0;
    while (writing) {
      const r = await reader.query<{ n: string; max: string | null }>('SELECT count(*) AS n, max(pos) AS max FROM events');
      expect(Number(r.rows[0]?.max ?? 0)).toBe(Number(r.rows[0]?.n));
      checks++;
    }
    await done;
    expect(checks).toBeGreaterThan(0);
    await reader.end();
    await Promise.all(stores.map((s) => s.close()));
  });

  it('applies its migrations once when several processes start on an empty database at once', async () => {
    const url = await freshSchema();
    const stores = Array.from({ length: 4 }, () => new PostgresStore({ url }));
    const epochs = await Promise.all(stores.map((s) => s.epoch()));
    expect(new Set(epochs).size).toBe(1);
    const pool = new pg.Pool({ connectionString: url });
    expect(await migrate(pool, STORE_COMPONENT, STORE_MIGRATIONS)).toMatchObject({ from: STORE_MIGRATIONS.length });
    await pool.end();
    await Promise.all(stores.map((s) => s.close()));
  });
});
