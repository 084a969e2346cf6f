import { spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/config.js';
import { dmCid } from '../../src/roles/chat/ids.js';
import { makeIdentity, signedMessage } from '../support/messages.js';
import { freshDatabase } from '../support/pg.js';
import { http, startServer, type TestServer } from '../support/server.js';

const root = path.resolve(import.meta.dirname, '../..');
const dirs: string[] = [];
const dir = (prefix: string): string => {
  const d = mkdtempSync(path.join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

/** `npm run backup` as an operator runs it: its own process, configured by the environment. */
function backup(env: Record<string, string>, out: string): Promise<Record<string, unknown>> {
  const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  const child = spawn(process.execPath, ['--import', tsx, path.join(root, 'scripts/backup.ts'), '--out', out], {
    cwd: dir('rim-backup-cwd-'), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve, reject) => child.once('exit', (code) => {
    if (code === 0) resolve(JSON.parse(stdout.trim()) as Record<string, unknown>);
    else reject(new Error(`backup exited ${code}: ${stderr}`));
  }));
}

/**
 * A backup taken while sends stream in, restored into a fresh server: every message acknowledged before
 * the backup began is there, seqs have no gap, and the epoch is the store's own (a restore is the same
 * store, so clients resume instead of starting over).
 */
describe.each([
  ['sqlite', async (): Promise<{ cfg: Partial<Config>; env: (srv: TestServer) => Record<string, string>; restore(file: string): Promise<Partial<Config>> }> => ({
    cfg: {},
    env: (srv) => ({ STORE: 'sqlite', DATA_DIR: srv.dataDir }),
    async restore(file) {
      // The operator's restore: the file in place of relation-im.sqlite in a DATA_DIR (no -wal/-shm beside it).
      const dataDir = dir('rim-restored-');
      copyFileSync(file, path.join(dataDir, 'relation-im.sqlite'));
      return { dataDir };
    },
  })],
  ['postgres', async () => {
    const databaseUrl = await freshDatabase('rim_backup');
    return {
      cfg: { store: 'postgres' as const, databaseUrl },
      env: () => ({ STORE: 'postgres', DATABASE_URL: databaseUrl }),
      async restore(file: string) {
        const target = await freshDatabase('rim_restored');
        await new Promise<void>((resolve, reject) => {
          const p = spawn('pg_restore', ['--no-owner', '--exit-on-error', '--dbname', target, file], { stdio: ['ignore', 'ignore', 'pipe'] });
          let err = '';
          p.stderr.on('data', (d: Buffer) => { err += d.toString(); });
          p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_restore exited ${code}: ${err}`))));
        });
        return { store: 'postgres' as const, databaseUrl: target };
      },
    };
  }],
])('backup and restore (%s)', (name, setup) => {
  it('restores every message acknowledged before the backup began, gap-free, with the epoch kept', async () => {
    const s = await setup();
    const srv = await startServer({ requireName: false, ...s.cfg });
    const alice = makeIdentity();
    const bob = makeIdentity();
    const acked: string[] = [];
    let stop = false;
    const sender = async (): Promise<void> => {
      while (!stop) {
        const m = signedMessage(alice, { receiver: bob.address });
        const r = await http(srv.url, 'POST', '/message/send', { body: m });
        if (r.status !== 200) throw new Error(`send: ${r.status} ${r.text}`);
        acked.push(m.id);
      }
    };
    const senders = Array.from({ length: 4 }, () => sender());
    let restored: TestServer | undefined;
    try {
      while (acked.length < 60) await new Promise((r) => setTimeout(r, 20));
      const before = [...acked];
      const file = path.join(dir('rim-backups-'), `store.${name === 'sqlite' ? 'sqlite' : 'pgdump'}`);
      const info = await backup(s.env(srv), file);
      const during = acked.length - before.length;
      stop = true;
      await Promise.all(senders);
      expect(during).toBeGreaterThan(0); // the backup ran while sends were being committed
      const epoch = await srv.app.store.epoch();
      expect(info['epoch']).toBe(epoch);
      await srv.close();

      restored = await startServer({ requireName: false, ...(await s.restore(file)) });
      expect(await restored.app.store.epoch()).toBe(epoch);
      for (const id of before) expect(await restored.app.store.getEventById(id)).not.toBeNull();
      const cid = dmCid(alice.address, bob.address);
      const events = await restored.app.store.listEvents({ cid, viewer: alice.address.toLowerCase(), afterSeq: 0, limit: 100_000, offset: 0 });
      expect(events.map((e) => e.seq)).toEqual(Array.from({ length: events.length }, (_, i) => i + 1));
      expect(events.length).toBeGreaterThanOrEqual(before.length);
      if (typeof info['events'] === 'number') expect(events.length).toBe(info['events']);
      // The restored store takes sends at the next seq.
      const next = await http(restored.url, 'POST', '/message/send', { body: signedMessage(alice, { receiver: bob.address }) });
      expect(next.status).toBe(200);
      expect((next.json as { seq: number }).seq).toBe(events.length + 1);
    } finally {
      stop = true;
      await Promise.allSettled(senders);
      await restored?.close();
      await srv.close().catch(() => {});
    }
  }, 120_000);
});
