import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import type { Config } from '../../src/config/config.js';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, type Identity } from '../support/messages.js';
import { freshDatabase } from '../support/pg.js';
import { login, startServer, type TestServer } from '../support/server.js';

/**
 * SEND with a client message id (body key 9): a resend after a lost answer returns the first mid and
 * stores nothing twice, on one process and on two processes sharing one PostgreSQL.
 */
describe.each([
  ['sqlite', async (): Promise<Partial<Config>[]> => [{}]],
  ['postgres, two processes', async (): Promise<Partial<Config>[]> => {
    const databaseUrl = await freshDatabase('rim_resend');
    return [{ store: 'postgres', databaseUrl }, { store: 'postgres', databaseUrl }];
  }],
])('/im idempotent resend (%s)', (_name, configs) => {
  const servers: TestServer[] = [];
  let alice: Identity;
  let bob: Identity;
  let a1: ImClient;
  let a2: ImClient;
  let b: ImClient;
  let cid: string;
  beforeAll(async () => {
    const cs = await configs();
    servers.push(await startServer({ requireName: false, ...cs[0] }));
    if (cs[1]) servers.push(await startServer({ requireName: false, ...cs[1] })); // finds the schema migrated
    const [s1, s2 = s1] = servers as [TestServer, TestServer?];
    [alice, bob] = [makeIdentity(), makeIdentity()];
    const aToken = await login(s1.url, alice);
    a1 = await ImClient.open(imUrl(s1.wsUrl), aToken);
    a2 = await ImClient.open(imUrl((s2 as TestServer).wsUrl), aToken); // alice's second device, on the other process
    b = await ImClient.open(imUrl(s1.wsUrl), await login(s1.url, bob));
    cid = dmCid(alice.address, bob.address);
  }, 60_000);
  afterAll(async () => {
    for (const c of [a1, a2, b]) c?.close();
    for (const s of servers) await s.close();
  });
  const send = (c: ImClient, cmid: string | undefined, text: string, extra: Record<number, unknown> = {}): Promise<M> =>
    c.ok(3, { 1: cid, 2: 1, 7: { 0: text }, ...(cmid !== undefined ? { 9: cmid } : {}), ...extra });
  const stored = (): Promise<number> => (servers[0] as TestServer).app.store.lastSeq(cid);

  it('returns the first mid for a resend with the same id, and stores it once', async () => {
    const before = await stored();
    const first = await send(a1, 'c-1', 'hello');
    expect(first.get(3)).toBeUndefined();
    const again = await send(a1, 'c-1', 'hello');
    expect(again.get(0)).toBe(first.get(0));
    expect(again.get(1)).toBe(first.get(1));
    expect(again.get(3)).toBe(true);
    // From alice's other device (another process with postgres): still the same message.
    const elsewhere = await send(a2, 'c-1', 'hello');
    expect(elsewhere.get(0)).toBe(first.get(0));
    expect(await stored()).toBe(before + 1);
    // Bob was pushed it once.
    await b.push((e) => e.get(3) === first.get(0));
    await send(a1, undefined, 'marker');
    const mid = first.get(0);
    await b.push((e) => e.get(7) instanceof Map && (e.get(7) as M).get(0) === 'marker');
    expect(b.pushes.filter((e) => e.get(1) === cid && e.get(3) === mid)).toHaveLength(1);
  });

  it('stores resends sent at once on two connections once', async () => {
    const before = await stored();
    const answers = await Promise.all([send(a1, 'c-race', 'race'), send(a2, 'c-race', 'race'), send(a1, 'c-race', 'race'), send(a2, 'c-race', 'race')]);
    expect(new Set(answers.map((r) => r.get(0))).size).toBe(1);
    expect(answers.filter((r) => r.get(3) !== true)).toHaveLength(1);
    expect(await stored()).toBe(before + 1);
  });

  it('keeps sends with other ids, without an id, or of another sender apart', async () => {
    const before = await stored();
    const x = await send(a1, 'c-x', 'same text');
    const y = await send(a1, 'c-y', 'same text');
    const n1 = await send(a1, undefined, 'same text');
    const n2 = await send(a1, undefined, 'same text');
    const fromBob = await b.ok(3, { 1: cid, 2: 1, 7: { 0: 'same text' }, 9: 'c-x' });
    expect(new Set([x, y, n1, n2, fromBob].map((r) => r.get(0))).size).toBe(5);
    expect(fromBob.get(3)).toBeUndefined();
    expect(await stored()).toBe(before + 5);
  });

  it('answers a resent revoke with the first revoke, though its target is revoked by now', async () => {
    const target = (await send(a1, 'c-t', 'to revoke')).get(0) as number;
    const revoke = { 1: cid, 2: 5, 6: [[6, target]], 7: { 0: 1 }, 9: 'c-rv' };
    const first = await a1.ok(3, revoke);
    const again = await a2.ok(3, revoke);
    expect(again.get(0)).toBe(first.get(0));
    expect(again.get(3)).toBe(true);
    // Without the id the same request is a second revoke, refused.
    expect(await a1.err(3, { ...revoke, 9: undefined })).toBe('INVALID_TARGET');
  });

  it('refuses a malformed id with INVALID_FIELD and stores nothing', async () => {
    const before = await stored();
    for (const bad of ['', 'x'.repeat(65), 'has space', 42, 'ünïcode']) {
      expect(await a1.err(3, { 1: cid, 2: 1, 7: { 0: 'bad id' }, 9: bad })).toBe('INVALID_FIELD');
    }
    expect(await stored()).toBe(before);
  });
});
