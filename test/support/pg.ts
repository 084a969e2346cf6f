import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll } from 'vitest';

/** The shared server tests use (trust auth); TEST_DATABASE_URL overrides it. */
export const PG_ADMIN_URL = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';

const made: string[] = [];

afterAll(async () => {
  const names = made.splice(0);
  if (names.length === 0) return;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    for (const n of names) await admin.query(`DROP DATABASE IF EXISTS ${n} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
});

/** A fresh, empty database with a random name on the test server, dropped when the test file is done. */
export async function freshDatabase(prefix = 'rim_test'): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  made.push(name);
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

let shared: Promise<string> | null = null;
let schemas = 0;

/**
 * A fresh, empty schema (in a database of this test file's own, dropped when the file is done), as a
 * URL whose connections see only that schema: much quicker than a database per store.
 */
export async function freshSchema(): Promise<string> {
  shared ??= freshDatabase();
  const base = await shared;
  const name = `s${++schemas}_${randomBytes(3).toString('hex')}`;
  const c = new pg.Client({ connectionString: base });
  await c.connect();
  try {
    await c.query(`CREATE SCHEMA ${name}`);
  } finally {
    await c.end();
  }
  const url = new URL(base);
  url.searchParams.set('options', `-c search_path=${name}`);
  return url.toString();
}
