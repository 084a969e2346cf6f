import Database from 'better-sqlite3';
import path from 'node:path';
import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { keyPackageLifetime, storedNotAfter } from '../../src/store/key-package-lifetime.js';
import { MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { createPool } from '../../src/store/postgres/db.js';
import { migrate } from '../../src/store/postgres/migrate.js';
import { STORE_COMPONENT, STORE_MIGRATIONS } from '../../src/store/postgres/schema.js';
import { device, keyPackage, type CredentialParts } from '../support/mls.js';
import { freshDatabase } from '../support/pg.js';
import { tempDir } from '../support/tmp.js';

/**
 * Rows of the KeyPackage directory stored before lifetimes were kept get their not_after from their own
 * bytes when the store migrates (SQLite migration 7, PostgreSQL store migration 4).
 */
const parts = (): CredentialParts => ({ wallet: Wallet.createRandom() as unknown as Wallet, session: Wallet.createRandom() as unknown as Wallet });
const A = '0x' + 'a'.repeat(40);
const now = 2_000_000_000;
const at = { now, minLeft: 3600 };

async function packages(): Promise<{ good: string; expired: string; goodAfter: number }> {
  const d = await device(parts());
  const good = await keyPackage(d, undefined, { notBefore: now - 3600, notAfter: now + 86_400 });
  const expired = await keyPackage(d, undefined, { notBefore: now - 86_400, notAfter: now - 60 });
  return { good: good.b64, expired: expired.b64, goodAfter: now + 86_400 };
}

describe('keyPackageLifetime', () => {
  it('reads the leaf node lifetime as ts-mls wrote it, for both suites', async () => {
    for (const name of ['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_256_XWING_AES256GCM_SHA512_Ed25519'] as const) {
      const d = await device(parts(), name);
      const kp = await keyPackage(d, name, { notBefore: 1234, notAfter: 5_000_000_000 });
      expect(keyPackageLifetime(Buffer.from(kp.b64, 'base64'))).toEqual({ notBefore: 1234n, notAfter: 5_000_000_000n });
      expect(storedNotAfter(kp.b64)).toBe(5_000_000_000);
    }
  });

  it('gives 0 (expired) for bytes it cannot read', () => {
    expect(storedNotAfter('')).toBe(0);
    expect(storedNotAfter(Buffer.from('not a key package').toString('base64'))).toBe(0);
  });
});

/** After the backfill: one usable package plus the last resort, claimed in that order. */
async function expectOneUsableAndLastResort(s: SqliteStore | PostgresStore, good: string): Promise<void> {
  expect(await s.mlsDevices(A, at)).toEqual([expect.objectContaining({ deviceId: 'd1', available: 1, lastResort: true })]);
  expect((await s.mlsClaim([A], at)).map((c) => [c.keyPackage, c.lastResort])).toEqual([[good, false]]);
  expect((await s.mlsClaim([A], at)).map((c) => [c.keyPackage, c.lastResort])).toEqual([[good, true]]);
}

describe('backfill of not_after on migration', () => {
  it('SQLite: a file made before migration 7 keeps its packages, each with its own notAfter; unreadable ones are expired', async () => {
    const { good, expired } = await packages();
    const f = path.join(tempDir('rim-kp-'), 'db.sqlite');
    const old = new Database(f);
    for (const m of MIGRATIONS.slice(0, 7)) old.exec(m as string);
    old.pragma('user_version = 7');
    old.prepare("INSERT INTO mls_devices (device_id, address, credential, created_at) VALUES ('d1', ?, 'c', 1)").run(A);
    const ins = old.prepare("INSERT INTO mls_key_packages (device_id, package, last_resort) VALUES ('d1', ?, ?)");
    ins.run(expired, 0);
    ins.run('garbage', 0);
    ins.run(good, 0);
    ins.run(good, 1);
    old.close();
    const s = new SqliteStore({ file: f, synchronous: 'FULL' });
    try {
      await expectOneUsableAndLastResort(s, good);
    } finally {
      await s.close();
    }
    const check = new Database(f, { readonly: true });
    // the expired and the unreadable rows were deleted by the claims; the last resort kept its notAfter
    expect(check.prepare('SELECT package, not_after FROM mls_key_packages').all()).toEqual([{ package: good, not_after: now + 86_400 }]);
    check.close();
  });

  it('PostgreSQL: a store at migration 3 keeps its packages, each with its own notAfter; unreadable ones are expired', async () => {
    const { good, expired, goodAfter } = await packages();
    const url = await freshDatabase();
    const pool = createPool({ url, max: 2 });
    try {
      await migrate(pool, STORE_COMPONENT, STORE_MIGRATIONS.slice(0, 3));
      await pool.query("INSERT INTO mls_devices (device_id, address, credential, created_at) VALUES ('d1', $1, 'c', 1)", [A]);
      for (const [p, last] of [[expired, false], ['garbage', false], [good, false], [good, true]] as const) {
        await pool.query("INSERT INTO mls_key_packages (device_id, package, last_resort) VALUES ('d1', $1, $2)", [p, last]);
      }
    } finally {
      await pool.end();
    }
    const s = new PostgresStore({ url });
    await s.open();
    try {
      await expectOneUsableAndLastResort(s, good);
    } finally {
      await s.close();
    }
    const p2 = createPool({ url, max: 1 });
    try {
      expect((await p2.query('SELECT package, not_after::float8 AS not_after FROM mls_key_packages')).rows).toEqual([{ package: good, not_after: goodAfter }]);
      // Migration 5 dropped the column's default: an insert without a lifetime is refused, not stored expired.
      const noLifetime = await p2.query("INSERT INTO mls_key_packages (device_id, package, last_resort) VALUES ('d1', 'x', false)").catch((e: unknown) => e);
      expect(String((noLifetime as Error).message)).toMatch(/null value in column "not_after"/);
    } finally {
      await p2.end();
    }
  });
});
