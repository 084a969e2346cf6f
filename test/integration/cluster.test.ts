import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';
import { tempDir } from '../support/tmp.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const lower = (i: Identity): string => i.address.toLowerCase();
const OPERATOR = 'operator-token-of-the-cluster-test';

/**
 * Two real apps in one test process, on one store and the shared NATS (a subject of their own): what a
 * client sees when its connection is on another process than the one that took the send. The same
 * across real processes and PostgreSQL: test/multiprocess/cluster.test.ts.
 */
describe('two processes on one bus (BUS=nats)', () => {
  let store: SqliteStore;
  let a: TestServer;
  let b: TestServer;
  let alice: Identity;
  let bob: Identity;
  const open: { close(): void }[] = [];

  beforeAll(async () => {
    store = new SqliteStore({ file: `${tempDir('rim-cluster-')}/db.sqlite`, synchronous: 'NORMAL' });
    const bus = { bus: 'nats' as const, natsUrl: NATS_URL, busPrefix: `rim-test-${randomBytes(6).toString('hex')}`, busPingMs: 100, busDownAfterMs: 1000, requireName: false, operatorToken: OPERATOR };
    a = await startServer(bus, { store });
    b = await startServer(bus, { store });
    alice = makeIdentity();
    bob = makeIdentity();
  });
  afterAll(async () => {
    for (const c of open) c.close();
    await a.close();
    await b.close();
    await store.close();
  });

  it('is ready on both, and says so on GET /ready', async () => {
    for (const s of [a, b]) {
      const r = await http(s.url, 'GET', '/ready');
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ ready: true, store: { ok: true }, bus: { ok: true, kind: 'nats', peers: 1 } });
    }
  });

  it('pushes a message sent through A to the receiver\'s /ws and /im connections on B', async () => {
    const bobToken = await login(b.url, bob);
    const ws = await WsClient.open(b.wsUrl, bobToken);
    const im = await ImClient.open(imUrl(b.wsUrl), bobToken);
    open.push(ws, im);
    const m = signedMessage(alice, { receiver: bob.address, payload: 'across' });
    expect((await http(a.url, 'POST', '/message/send', { body: m })).status).toBe(200);
    const f = await ws.next((x) => x['type'] === 'message');
    expect(f).toMatchObject({ chatId: lower(alice), alert: true, message: { id: m.id, seq: 1 } });
    const ev = await im.push((e) => e.get(1) === dmCid(lower(alice), lower(bob)));
    expect(ev.get(3)).toBe(1);
    // And an /im text through A reaches /ws on B as a chat message of the other face.
    const aliceIm = await ImClient.open(imUrl(a.wsUrl), await login(a.url, alice));
    open.push(aliceIm);
    const sent = await aliceIm.ok(3, { 1: dmCid(lower(alice), lower(bob)), 2: 1, 7: { 0: 'from im' } });
    const g = await ws.next((x) => x['type'] === 'message' && (x['message'] as { seq: number }).seq === sent.get(0));
    expect(g).toMatchObject({ chatId: lower(alice), message: { im: { k: 1, data: { 0: 'from im' } } } });
  });

  it('a ban made on A closes the address\'s connections on B at once, and B refuses it from then on', async () => {
    const mallory = makeIdentity();
    const token = await login(b.url, mallory);
    const ws = await WsClient.open(b.wsUrl, token);
    const im = await ImClient.open(imUrl(b.wsUrl), token);
    open.push(ws, im);
    const banned = await http(a.url, 'POST', `/admin/bans/${mallory.address}`, { token: OPERATOR, body: { reason: 'cluster test' } });
    expect(banned.status).toBe(200);
    expect(await ws.closed).toBe(4203);
    expect(await im.closed).toBe(4203);
    const send = await http(b.url, 'POST', '/message/send', { body: signedMessage(mallory, { receiver: bob.address, payload: 'after the ban' }) });
    expect(send.status).toBe(403);
    expect(send.json).toMatchObject({ error: { code: 'BANNED' } });
    // lifted on A: B takes the address's sends again
    expect((await http(a.url, 'DELETE', `/admin/bans/${mallory.address}`, { token: OPERATOR })).status).toBe(204);
    const deadline = Date.now() + 10_000;
    let again = await http(b.url, 'POST', '/message/send', { body: signedMessage(mallory, { receiver: bob.address, payload: 'unbanned' }) });
    while (again.status !== 200 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      again = await http(b.url, 'POST', '/message/send', { body: signedMessage(mallory, { receiver: bob.address, payload: 'unbanned' }) });
    }
    expect(again.status).toBe(200);
  });

  it('tells a watcher on A when a user comes online on B, and answers presence from B\'s connections', async () => {
    const carol = makeIdentity();
    const watcher = await ImClient.open(imUrl(a.wsUrl), await login(a.url, makeIdentity()));
    open.push(watcher);
    const r = await watcher.ok(8, { 0: [carol.address], 1: true });
    expect(r.get(0)).toEqual([[lower(carol), false]]);
    const c = await WsClient.open(b.wsUrl, await login(b.url, carol));
    await watcher.wait((f) => f.cmd === 16 && f.body.get(0) === lower(carol) && f.body.get(1) === true);
    expect((await watcher.ok(8, { 0: [carol.address] })).get(0)).toEqual([[lower(carol), true]]);
    c.close();
    await watcher.wait((f) => f.cmd === 16 && f.body.get(0) === lower(carol) && f.body.get(1) === false);
  });

  it('moves read markers to the user\'s devices on the other process, and a logout on A closes the token\'s sockets on B', async () => {
    const dave = makeIdentity();
    const token = await login(a.url, dave);
    const onB = await WsClient.open(b.wsUrl, token);
    const otherToken = await login(b.url, dave);
    const keptOnB = await WsClient.open(b.wsUrl, otherToken);
    open.push(keptOnB);
    const m = signedMessage(alice, { receiver: dave.address });
    await http(a.url, 'POST', '/message/send', { body: m });
    await onB.next((x) => x['type'] === 'message');
    const imOnA = await ImClient.open(imUrl(a.wsUrl), token);
    open.push(imOnA);
    await imOnA.ok(5, { 0: dmCid(lower(alice), lower(dave)), 1: 1 } as Record<number, unknown>);
    expect(await keptOnB.next((x) => x['type'] === 'read')).toMatchObject({ chatId: lower(alice), lastReadSeq: 1 });
    expect((await http(a.url, 'POST', '/auth/logout', { token })).status).toBeLessThan(300);
    expect(await onB.closed).toBe(4002);
    expect(keptOnB.closeCode).toBeNull();
  });

  it('drops the /im access cache on every process when a role changes (Hub.invalidate)', async () => {
    let told = 0;
    b.app.hub.onInvalidate((kind) => { if (kind === 'access') told++; });
    a.app.hub.invalidate('access', '*');
    await new Promise<void>((resolve) => {
      const t = setInterval(() => { if (told > 0) { clearInterval(t); resolve(); } }, 20);
    });
    expect(told).toBe(1);
  });
});


