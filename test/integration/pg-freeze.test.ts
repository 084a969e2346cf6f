import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { privatePostgres, type PrivatePostgres } from '../support/pg-private.js';
import { http, login, startServer, type TestServer } from '../support/server.js';

/**
 * A database that hangs instead of refusing: its postmaster and backends stopped with SIGSTOP (the
 * kernel still accepts connections; nothing answers). Without a statement and acquire timeout every
 * request waits forever and the process ends up OVERLOADED; with them, each is answered
 * STORE_UNAVAILABLE, /ready goes red, and all comes back by itself after SIGCONT.
 */
describe('STORE=postgres when the database hangs', () => {
  let pgp: PrivatePostgres;
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let token: string;
  let frozen = false;
  beforeAll(async () => {
    pgp = await privatePostgres();
    srv = await startServer({ store: 'postgres', databaseUrl: pgp.url, requireName: false, pgStatementTimeoutMs: 1000, pgAcquireTimeoutMs: 1000 });
    alice = makeIdentity();
    bob = makeIdentity();
    token = await login(srv.url, alice);
  }, 120_000);
  afterAll(async () => {
    if (frozen) pgp.signal('SIGCONT');
    await srv?.close();
    pgp?.destroy();
  });
  const send = (m: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body: m });

  it('answers STORE_UNAVAILABLE on both faces while it is frozen, turns /ready red, loses nothing acknowledged, and recovers by itself', async () => {
    const cid = dmCid(alice.address, bob.address);
    const im = await ImClient.open(imUrl(srv.wsUrl), token);
    const acked = new Set<string>();
    const ackedMids = new Set<number>();
    for (let i = 0; i < 5; i++) {
      const m = signedMessage(alice, { receiver: bob.address });
      expect((await send(m)).status).toBe(200);
      acked.add(m.id);
      ackedMids.add((await im.ok(3, { 1: cid, 2: 1, 7: { 0: `before ${i}` } })).get(0) as number);
    }

    pgp.signal('SIGSTOP');
    frozen = true;
    // Several at once: more than the pool holds, so some wait for a connection and some for an answer.
    const during = Array.from({ length: 12 }, () => signedMessage(alice, { receiver: bob.address }));
    const rest = await Promise.all(during.map((m) => send(m)));
    for (const r of rest) {
      expect(r.status).toBe(503);
      expect(r.json).toMatchObject({ error: { code: 'STORE_UNAVAILABLE' } });
    }
    const imErr = await im.request(3, { 1: cid, 2: 1, 7: { 0: 'while frozen' } }, );
    expect(imErr.cmd).toBe(0);
    expect(imErr.body.get(1)).toBe('STORE_UNAVAILABLE');
    const ready = await http(srv.url, 'GET', '/ready');
    expect(ready.status).toBe(503);
    expect(ready.json).toMatchObject({ store: { ok: false } });

    pgp.signal('SIGCONT');
    frozen = false;
    // Nothing is restarted: the pool drops the connections it gave up on and opens new ones.
    const deadline = Date.now() + 60_000;
    while ((await http(srv.url, 'GET', '/ready')).status !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect((await http(srv.url, 'GET', '/ready')).status).toBe(200);
    for (const m of during) {
      const r = await send(m); // the client's retry: stored once, whether or not the frozen try had committed
      expect(r.status).toBe(200);
      acked.add(m.id);
    }
    ackedMids.add((await im.ok(3, { 1: cid, 2: 1, 7: { 0: 'after' } })).get(0) as number);
    im.close();
    for (const id of acked) expect(await srv.app.store.getEventById(id)).not.toBeNull();
    const listed = await srv.app.store.listEvents({ cid, viewer: alice.address.toLowerCase(), afterSeq: 0, limit: 1000, offset: 0 });
    const seqs = listed.map((e) => e.seq);
    expect(seqs).toEqual(Array.from({ length: listed.length }, (_, i) => i + 1));
    for (const mid of ackedMids) expect(seqs).toContain(mid);
    // Every Relation ONE message once, though some were tried twice.
    const ids = listed.flatMap((e) => (e.id ? [e.id] : []));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(acked.size);
  }, 120_000);
});
