import { afterEach, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createPool } from '../../src/store/postgres/db.js';
import { migrate, SchemaTooNewError, type Migration } from '../../src/store/postgres/migrate.js';
import { freshDatabase } from '../support/pg.js';

const M: Migration[] = [
  { version: 1, name: 'things', up: 'CREATE TABLE things (n integer PRIMARY KEY)' },
  { version: 2, name: 'more', up: 'ALTER TABLE things ADD COLUMN label text; INSERT INTO things (n) VALUES (1)' },
];

describe('PostgreSQL migrations', () => {
  const pools: pg.Pool[] = [];
  const pool = (url: string): pg.Pool => {
    const p = createPool({ url, max: 2 });
    pools.push(p);
    return p;
  };
  afterEach(async () => { await Promise.all(pools.splice(0).map((p) => p.end())); });

  it('applies each migration once when many processes start at the same moment', async () => {
    const url = await freshDatabase();
    const results = await Promise.all(Array.from({ length: 6 }, () => migrate(pool(url), 'widget', M)));
    expect(results.filter((r) => r.from === 0)).toHaveLength(1);
    expect(results.every((r) => r.to === 2)).toBe(true);
    const p = pool(url);
    expect((await p.query('SELECT count(*)::int AS n FROM things')).rows[0].n).toBe(1);
    expect((await p.query("SELECT version, name FROM schema_migrations WHERE component = 'widget' ORDER BY version")).rows)
      .toEqual([{ version: 1, name: 'things' }, { version: 2, name: 'more' }]);
  });

  it('keeps components apart and applies only what is missing', async () => {
    const url = await freshDatabase();
    const p = pool(url);
    expect(await migrate(p, 'widget', M.slice(0, 1))).toEqual({ component: 'widget', from: 0, to: 1 });
    expect(await migrate(p, 'widget', M)).toEqual({ component: 'widget', from: 1, to: 2 });
    expect(await migrate(p, 'other', [{ version: 1, name: 'o', up: 'CREATE TABLE other_things (n integer)' }]))
      .toEqual({ component: 'other', from: 0, to: 1 });
  });

  it('refuses a schema newer than it knows, with a clear message, and changes nothing', async () => {
    const url = await freshDatabase();
    const p = pool(url);
    await migrate(p, 'widget', M);
    const err = await migrate(p, 'widget', M.slice(0, 1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaTooNewError);
    expect(String((err as Error).message)).toMatch(/widget schema is at version 2, newer than this build knows \(1\)/);
  });

  it('rolls a failing migration back entirely', async () => {
    const url = await freshDatabase();
    const p = pool(url);
    await migrate(p, 'widget', M);
    const bad: Migration[] = [...M, { version: 3, name: 'broken', up: 'CREATE TABLE half (n integer); SELECT no_such_function()' }];
    await expect(migrate(p, 'widget', bad)).rejects.toThrow(/no_such_function/);
    expect((await p.query("SELECT to_regclass('half') AS t")).rows[0].t).toBeNull();
    expect((await p.query("SELECT max(version) AS v FROM schema_migrations WHERE component = 'widget'")).rows[0].v).toBe(2);
  });
});
