import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { ImClient, imUrl, type Frame } from '../support/im-client.js';
import { makeIdentity, type Identity } from '../support/messages.js';
import { login, startServer, WsClient, type TestServer } from '../support/server.js';

const PRESENCE_PUSH = 16;
const lower = (i: Identity): string => i.address.toLowerCase();
/** Presence pushes a client got about one user, in arrival order. */
const about = (c: ImClient, user: string): boolean[] =>
  c.answers.filter((f) => f.cmd === PRESENCE_PUSH && f.body.get(0) === user).map((f) => f.body.get(1) as boolean);
const change = (user: string, online: boolean) => (f: Frame): boolean =>
  f.cmd === PRESENCE_PUSH && f.body.get(0) === user && f.body.get(1) === online;
const countOf = (c: ImClient, user: string, online: boolean): number => about(c, user).filter((x) => x === online).length;
/** Waits until the client got this change `n` times. */
const nth = (c: ImClient, user: string, online: boolean, n: number): Promise<Frame> =>
  c.wait((f) => change(user, online)(f) && countOf(c, user, online) >= n);

/** Presence pushes (PRESENCE with watch) between real clients of both faces. */
describe('/im presence pushes', () => {
  let srv: TestServer;
  let url: string;
  let watcher: Identity;
  let carol: Identity;
  let dave: Identity;
  let w: ImClient;
  let w2: ImClient;
  const tokens = new Map<Identity, string>();
  const token = async (i: Identity): Promise<string> => {
    const t = tokens.get(i) ?? (await login(srv.url, i));
    tokens.set(i, t);
    return t;
  };
  beforeAll(async () => {
    srv = await startServer({ requireName: false });
    url = imUrl(srv.wsUrl);
    [watcher, carol, dave] = [makeIdentity(), makeIdentity(), makeIdentity()];
    w = await ImClient.open(url, await token(watcher));
    w2 = await ImClient.open(url, await token(watcher));
  });
  afterAll(async () => {
    w.close();
    w2.close();
    await srv.close();
  });

  it('answers a watch with the current state, then pushes the first connection (any face) and the last close', async () => {
    const r = await w.ok(8, { 0: [carol.address, dave.address], 1: true });
    expect(r.get(0)).toEqual([[lower(carol), false], [lower(dave), false]]);

    const cIm = await ImClient.open(url, await token(carol));
    await w.wait(change(lower(carol), true));
    const push = w.answers.find(change(lower(carol), true));
    expect(push?.seq).toBeUndefined();
    expect(typeof push?.body.get(2)).toBe('number');
    // A second connection of the same user is no change; closing one of two is none either.
    const cWs = await WsClient.open(srv.wsUrl, await token(carol));
    cIm.close();
    await cIm.closed;
    cWs.close();
    await w.wait(change(lower(carol), false));
    expect(about(w, lower(carol))).toEqual([true, false]);

    // /ws alone counts as online too.
    const dWs = await WsClient.open(srv.wsUrl, await token(dave));
    await w.wait(change(lower(dave), true));
    dWs.close();
    await w.wait(change(lower(dave), false));
    // The other connection of the watcher asked for nothing and got nothing.
    await w2.ok(2);
    expect(w2.answers.filter((f) => f.cmd === PRESENCE_PUSH)).toEqual([]);
  });

  it('stops pushing about users unwatched, and keeps pushing to other watchers of them', async () => {
    await w2.ok(8, { 0: [dave.address], 1: true });
    const r = await w.ok(8, { 0: [dave.address], 1: false });
    expect(r.get(0)).toEqual([[lower(dave), false]]);
    const d = await ImClient.open(url, await token(dave));
    await w2.wait(change(lower(dave), true));
    d.close();
    await nth(w2, lower(dave), false, 1);
    // w2 was told of dave's close, so it was processed; carol's connection opens after it.
    const c = await ImClient.open(url, await token(carol));
    await nth(w, lower(carol), true, 2);
    expect(about(w, lower(dave))).toEqual([true, false]);
    c.close();
    await nth(w, lower(carol), false, 2);
  });

  it('ends a connection\'s watches when it closes', async () => {
    const eve = makeIdentity();
    const e1 = await ImClient.open(url, await token(eve));
    await e1.ok(8, { 0: [carol.address], 1: true });
    await w.ok(8, { 0: [lower(eve)], 1: true });
    e1.close();
    await w.wait(change(lower(eve), false));
    // e1's watch went with it (the registry itself: test/unit/push/presence-watch.test.ts); carol coming
    // online still reaches w, and telling no one about the closed connection breaks nothing.
    const c = await ImClient.open(url, await token(carol));
    await nth(w, lower(carol), true, 3);
    c.close();
    await nth(w, lower(carol), false, 3);
  });

  it('bounds the users one connection watches; a query alone is not bounded by it', async () => {
    const c = await ImClient.open(url, await token(makeIdentity()));
    const addresses = (n: number): string[] => Array.from({ length: n }, () => `0x${randomBytes(20).toString('hex')}`);
    await c.ok(8, { 0: addresses(600), 1: true });
    expect(await c.err(8, { 0: addresses(600), 1: true })).toBe('INVALID_FIELD');
    expect((await c.ok(8, { 0: addresses(600) })).get(0)).toHaveLength(600);
    expect(await c.err(8, { 0: [carol.address], 1: 'yes' })).toBe('INVALID_FIELD');
    c.close();
  });
});
