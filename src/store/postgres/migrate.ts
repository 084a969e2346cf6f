import type pg from 'pg';
import { inTransaction } from './db.js';

/**
 * Versioned schema migrations for any component that keeps tables in PostgreSQL. Each component has
 * its own name and its own ordered list; `schema_migrations` records, per component, every version
 * applied. Append new migrations, never edit an applied one.
 *
 * Many processes may start at once against one database: the whole check-and-apply runs in one
 * transaction under a transaction-scoped advisory lock, so exactly one of them
 * applies the missing migrations and the others then find them applied. A database whose schema is
 * newer than this build knows is refused (SchemaTooNewError): an older build must not write to tables
 * it does not understand.
 */
export interface Migration {
  /** 1, 2, 3 … in order, without gaps. */
  version: number;
  /** Short description, recorded beside the version. */
  name: string;
  /** SQL run in the migration's transaction (several statements allowed), or a function given the connection. */
  up: string | ((c: pg.PoolClient) => Promise<void>);
}

export class SchemaTooNewError extends Error {
  constructor(readonly component: string, readonly found: number, readonly known: number) {
    super(`the database's ${component} schema is at version ${found}, newer than this build knows (${known}): `
      + 'it was migrated by a newer release; run that release (or newer), or point DATABASE_URL at another database');
    this.name = 'SchemaTooNewError';
  }
}

/** Keys of the migrations' advisory lock ("RIMm", 0). */
const LOCK_CLASS = 0x52494d6d;

export interface MigrateResult { component: string; from: number; to: number }

export async function migrate(pool: pg.Pool, component: string, migrations: readonly Migration[]): Promise<MigrateResult> {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) throw new Error(`${component} migration #${i} has version ${m.version}, expected ${i + 1}`);
  });
  return inTransaction(pool, async (c) => {
    // One lock for every component: they share schema_migrations, which the first start creates, and
    // migrations are rare enough that serialising them costs nothing.
    await c.query('SELECT pg_advisory_xact_lock($1, 0)', [LOCK_CLASS]);
    await c.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      component  text        NOT NULL,
      version    integer     NOT NULL,
      name       text        NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (component, version))`);
    const row = (await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations WHERE component = $1', [component])).rows[0];
    const from = row?.v ?? 0;
    if (from > migrations.length) throw new SchemaTooNewError(component, from, migrations.length);
    for (const m of migrations.slice(from)) {
      if (typeof m.up === 'string') await c.query(m.up);
      else await m.up(c);
      await c.query('INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)', [component, m.version, m.name]);
    }
    return { component, from, to: migrations.length };
  });
}
