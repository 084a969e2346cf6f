import { spawn } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { freePort, privatePostgres, type PrivatePostgres } from '../support/pg-private.js';
import { http, login, startServer, type TestServer } from '../support/server.js';
import { tempDir } from '../support/tmp.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Runs `src/main.ts` as its own process with `env` until it exits; resolves with its code and stderr. */
function runServer(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  const dataDir = tempDir('rim-pgstart-');
  const child = spawn(process.execPath, ['--import', tsx, path.join(root, 'src/main.ts')], {
    cwd: dataDir,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', VERIFY_WORKERS: '1', CHAIN: 'none', ARCHIVE_ENABLED: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  child.stdout.on('data', (d: Buffer) => {
    // A server that listened despite everything: stop it, the test then fails on the exit code.
    if (/"port":\d+/.test(d.toString())) child.kill('SIGTERM');
  });
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe('STORE=postgres when the database is not there', () => {
  it('a server process pointed at a closed port says what and exits non-zero', async () => {
    const port = await freePort();
    const r = await runServer({ STORE: 'postgres', DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/relation` });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`fatal: PostgreSQL at 127.0.0.1:${port}/relation cannot be reached (ECONNREFUSED`);
    expect(r.stderr).toContain('check DATABASE_URL');
  });

  it('a server process without DATABASE_URL is a configuration error', async () => {
    const r = await runServer({ STORE: 'postgres', DATABASE_URL: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('DATABASE_URL must be a postgres:// URL when STORE=postgres');
  });
});

describe('STORE=postgres through a database outage', () => {
  let pgp: PrivatePostgres;
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let token: string;
  beforeAll(async () => {
    pgp = await privatePostgres();
    srv = await startServer({ store: 'postgres', databaseUrl: pgp.url, requireName: false });
    alice = makeIdentity();
    bob = makeIdentity();
    token = await login(srv.url, alice);
  }, 120_000);
  afterAll(async () => {
    await srv?.close();
    pgp?.destroy();
  });
  const send = (m: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body: m });
  const stored = async (ids: Iterable<string>): Promise<string[]> => {
    const missing: string[] = [];
    for (const id of ids) if (!(await srv.app.store.getEventById(id))) missing.push(id);
    return missing;
  };

  it('answers 503 STORE_UNAVAILABLE on both faces while it is down, and recovers by itself', async () => {
    const before = Array.from({ length: 10 }, () => signedMessage(alice, { receiver: bob.address }));
    for (const m of before) expect((await send(m)).status).toBe(200);
    const im = await ImClient.open(imUrl(srv.wsUrl), token);

    pgp.stop('fast');
    const during = Array.from({ length: 3 }, () => signedMessage(alice, { receiver: bob.address }));
    for (const m of during) {
      const r = await send(m);
      expect(r.status).toBe(503);
      expect(r.json).toMatchObject({ error: { code: 'STORE_UNAVAILABLE' } });
    }
    const imErr = await im.request(3, { 1: dmCid(alice.address, bob.address), 2: 1, 7: { 0: 'while down' } });
    expect(imErr.cmd).toBe(0);
    expect(imErr.body.get(1)).toBe('STORE_UNAVAILABLE');
    expect(imErr.body.get(3)).toBe(true);
    expect((await http(srv.url, 'GET', '/message/list', { token })).status).toBe(503);

    pgp.start();
    // The pool opens new connections by itself: the client's retries succeed once the server is back.
    const deadline = Date.now() + 60_000;
    let first = await send(during[0]);
    while (first.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      first = await send(during[0]);
    }
    expect(first.status).toBe(200);
    for (const m of during.slice(1)) expect((await send(m)).status).toBe(200);
    expect(await im.ok(3, { 1: dmCid(alice.address, bob.address), 2: 1, 7: { 0: 'back' } })).toBeInstanceOf(Map);
    im.close();
    expect(await stored([...before, ...during].map((m) => m.id))).toEqual([]);
    const listed = await srv.app.store.listEvents({ cid: dmCid(alice.address, bob.address), viewer: alice.address.toLowerCase(), afterSeq: 0, limit: 100, offset: 0 });
    expect(listed.map((e) => e.seq)).toEqual(Array.from({ length: 14 }, (_, i) => i + 1));
  });

  it('loses no acknowledged message when the database crashes under a stream of sends', async () => {
    const acked = new Set<string>();
    const refused: string[] = [];
    let stop = false;
    const sender = async (): Promise<void> => {
      while (!stop) {
        const m = signedMessage(alice, { receiver: bob.address });
        const r = await send(m).catch(() => null);
        if (r?.status === 200) acked.add(m.id);
        else if (r?.status === 503) refused.push(m.id);
        else throw new Error(`unexpected answer ${r?.status} ${r?.text}`);
      }
    };
    const senders = Array.from({ length: 6 }, () => sender());
    const until = async (cond: () => boolean): Promise<void> => {
      const deadline = Date.now() + 60_000;
      while (!cond() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(cond()).toBe(true);
    };
    await until(() => acked.size >= 100);
    pgp.stop('immediate'); // a crash: in-flight transactions die with their connections
    const ackedAtCrash = acked.size;
    await until(() => refused.length >= 5);
    pgp.start();
    await until(() => acked.size >= ackedAtCrash + 100);
    stop = true;
    await Promise.all(senders);
    expect(await stored(acked)).toEqual([]);
    const cid = dmCid(alice.address, bob.address);
    const listed = await srv.app.store.listEvents({ cid, viewer: alice.address.toLowerCase(), afterSeq: 0, limit: 100_000, offset: 0 });
    expect(listed.map((e) => e.seq)).toEqual(Array.from({ length: listed.length }, (_, i) => i + 1));
  });
});
