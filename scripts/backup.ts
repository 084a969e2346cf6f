/**
 * A backup of the store an operator can restore (docs/operations.md, "Backups"), taken while the server
 * runs and writes.
 *
 *   npm run backup                     into DATA_DIR/backups/relation-im-<time>.sqlite (or .pgdump)
 *   npm run backup -- --out FILE
 *
 * STORE=sqlite: SQLite's online backup API (better-sqlite3's db.backup) from a connection of its own,
 * every page copied in one step, so the copy is one read transaction: consistent at the moment it began
 * (WAL: the server's writes go on meanwhile, and what they commit after that moment is not in the copy).
 * The copy is written beside FILE and renamed into place once complete and checked (integrity_check).
 * STORE=postgres: pg_dump --format=custom of DATABASE_URL (one snapshot, also consistent while writing;
 * PG_DUMP names the binary, default pg_dump, whose major version must be at least the server's).
 * Either keeps the store's epoch: a restore is the same store, clients resume as usual.
 * Prints one JSON line: {store, file, bytes, epoch, events, lastPos, seconds}. Exit 0 on success, 1 on failure.
 * Configuration (STORE, DATA_DIR, DATABASE_URL) from the environment or .env, as the server reads it.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { loadConfig, readEnv } from '../src/config/config.js';

const argv = process.argv.slice(2);
let out: string | undefined;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--out') out = argv[++i];
  else {
    process.stderr.write(`unknown argument ${argv[i]}\nusage: npm run backup -- [--out FILE]\n`);
    process.exit(2);
  }
}
const config = loadConfig(readEnv());
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const started = Date.now();

async function sqliteBackup(file: string): Promise<Record<string, unknown>> {
  const src = path.join(config.dataDir, 'relation-im.sqlite');
  const db = new Database(src, { fileMustExist: true });
  db.pragma('busy_timeout = 5000');
  const part = `${file}.part`;
  rmSync(part, { force: true });
  try {
    // The first step opens the backup; returning the most pages then copies the rest in one step.
    await db.backup(part, { progress: () => 0x7fffffff });
  } finally {
    db.close();
  }
  const copy = new Database(part, { fileMustExist: true });
  try {
    const check = copy.pragma('integrity_check', { simple: true });
    if (check !== 'ok') throw new Error(`the copy failed its integrity check: ${String(check)}`);
    const epoch = (copy.prepare("SELECT value FROM store_meta WHERE key = 'epoch'").get() as { value: string } | undefined)?.value;
    const { n, last } = copy.prepare('SELECT count(*) AS n, coalesce(max(pos), 0) AS last FROM events').get() as { n: number; last: number };
    copy.close();
    renameSync(part, file);
    return { store: 'sqlite', epoch, events: n, lastPos: last };
  } catch (err) {
    copy.close();
    rmSync(part, { force: true });
    throw err;
  }
}

async function postgresBackup(file: string): Promise<Record<string, unknown>> {
  const part = `${file}.part`;
  const r = spawnSync(process.env['PG_DUMP'] ?? 'pg_dump', ['--format=custom', '--no-owner', '--file', part, '--dbname', config.databaseUrl], { stdio: ['ignore', 'inherit', 'pipe'] });
  if (r.error || r.status !== 0) {
    rmSync(part, { force: true });
    throw new Error(`pg_dump failed (${r.error?.message ?? `exit ${r.status}`}): ${r.stderr?.toString().trim() ?? ''}`);
  }
  renameSync(part, file);
  // What the dump holds, as far as a second look can tell (the dump's snapshot is a moment earlier).
  const c = new pg.Client({ connectionString: config.databaseUrl });
  await c.connect();
  try {
    const epoch = (await c.query<{ value: string }>("SELECT value FROM store_meta WHERE key = 'epoch'")).rows[0]?.value;
    return { store: 'postgres', epoch };
  } finally {
    await c.end();
  }
}

try {
  const file = path.resolve(out ?? path.join(config.dataDir, 'backups', `relation-im-${stamp}.${config.store === 'postgres' ? 'pgdump' : 'sqlite'}`));
  mkdirSync(path.dirname(file), { recursive: true });
  const info = config.store === 'postgres' ? await postgresBackup(file) : await sqliteBackup(file);
  process.stdout.write(`${JSON.stringify({ ...info, file, bytes: statSync(file).size, seconds: (Date.now() - started) / 1000 })}\n`);
} catch (err) {
  process.stderr.write(`backup failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
