import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, type TestServer } from '../support/server.js';

/** A clock the test can move forward (revoke windows), otherwise the real time. */
const clock = { offset: 0, now(): number { return Date.now() + this.offset; } };

describe('/im direct chats', () => {
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let carol: Identity;
  let a: ImClient;
  let b: ImClient;
  let c: ImClient;
  let aToken: string;
  let bToken: string;
  let cid: string;
  let url: string;
  beforeAll(async () => {
    srv = await startServer({ requireName: false }, { clock });
    url = imUrl(srv.wsUrl);
    [alice, bob, carol] = [makeIdentity(), makeIdentity(), makeIdentity()];
    aToken = await login(srv.url, alice);
    bToken = await login(srv.url, bob);
    a = await ImClient.open(url, aToken);
    b = await ImClient.open(url, bToken);
    c = await ImClient.open(url, await login(srv.url, carol));
    cid = dmCid(alice.address, bob.address);
  });
  afterAll(async () => {
    for (const x of [a, b, c]) x.close();
    await srv.close();
  });
  const text = (cl: ImClient, t: string, tags?: unknown[]): Promise<M> => cl.ok(3, { 1: cid, 2: 1, 6: tags, 7: { 0: t } });

  it('answers auth with the address and ping with the server time, each with the request seq', async () => {
    const fresh = await ImClient.open(url);
    const r = await fresh.request(1, { 0: aToken });
    expect(r).toMatchObject({ cmd: 1, seq: 1 });
    expect(r.body.get(0)).toBe(alice.address.toLowerCase());
    const p = await fresh.request(2);
    expect(p.seq).toBe(2);
    expect(typeof p.body.get(0)).toBe('number');
    fresh.close();
  });

  it('assigns mid and t to a text, and the other participant receives it pushed', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await text(a, 'hello bob');
    const mid = r.get(0) as number;
    expect(mid).toBeGreaterThanOrEqual(1);
    expect(r.get(1)).toBeGreaterThanOrEqual(before);
    expect(r.get(2)).toBe(cid);
    const ev = await b.push((e) => e.get(3) === mid && e.get(1) === cid);
    expect(ev.get(2)).toBe(1);
    expect((ev.get(7) as M).get(0)).toBe('hello bob');
    expect((ev.get(15) as M).get(0)).toBe(alice.address.toLowerCase());
    await a.push((e) => e.get(3) === mid);
  });

  it('keeps mid gap-free and increasing per conversation', async () => {
    const mids: number[] = [];
    for (let i = 0; i < 5; i++) mids.push((await text(b, `n${i}`)).get(0) as number);
    expect(mids.slice(1).map((x, i) => x - (mids[i] as number))).toEqual([1, 1, 1, 1]);
  });

  it('accepts a reply to a message of the same conversation and refuses one to a missing mid', async () => {
    const target = (await text(a, 'question')).get(0) as number;
    const reply = await text(b, 'answer', [[1, target]]);
    const ev = await a.push((e) => e.get(3) === reply.get(0));
    expect(ev.get(6)).toEqual([[1, target]]);
    expect(await a.err(3, { 1: cid, 2: 1, 6: [[1, 999_999]], 7: { 0: 'x' } })).toBe('INVALID_TARGET');
  });

  it('refuses a conversation the user is not part of', async () => {
    expect(await c.err(3, { 1: cid, 2: 1, 7: { 0: 'intruder' } })).toBe('FORBIDDEN');
    expect(await c.err(7, { 0: cid })).toBe('FORBIDDEN');
  });

  it('queries by mid range (both orders) and by time range', async () => {
    const last = await srv.app.store.lastSeq(cid);
    const asc = await a.ok(7, { 0: cid, 1: 2, 2: 4 });
    expect((asc.get(0) as M[]).map((e) => e.get(3))).toEqual([2, 3, 4]);
    const desc = await a.ok(7, { 0: cid, 5: 2, 6: true });
    expect((desc.get(0) as M[]).map((e) => e.get(3))).toEqual([last, last - 1]);
    expect(desc.get(1)).toBe(true);
    const now = Math.floor(Date.now() / 1000);
    const byTime = await a.ok(7, { 0: cid, 3: now - 60, 4: now + 60, 5: 200 });
    expect((byTime.get(0) as M[]).length).toBe(last);
    const none = await a.ok(7, { 0: cid, 3: now + 3600 });
    expect(none.get(0)).toEqual([]);
  });

  it('acks a mid (read marker) and resumes after a mid without missing or repeating', async () => {
    const last = await srv.app.store.lastSeq(cid);
    expect((await b.ok(5, { 0: cid, 1: 2 })).get(1)).toBe(2);
    expect((await b.ok(5, { 0: cid, 1: 1 })).get(1)).toBe(2);
    const late = await ImClient.open(url, bToken);
    const r = await late.ok(6, { 0: [[cid, 2]] });
    expect(r.get(0)).toEqual([[cid, last, false]]);
    expect(late.pushes.map((e) => e.get(3))).toEqual(Array.from({ length: last - 2 }, (_, i) => i + 3));
    late.close();
  });

  it('reports presence of a set of users', async () => {
    const r = await a.ok(8, { 0: [bob.address, carol.address, '0x' + '9'.repeat(40)] });
    expect(r.get(0)).toEqual([[bob.address.toLowerCase(), true], [carol.address.toLowerCase(), true], ['0x' + '9'.repeat(40), false]]);
  });

  it('revokes one\'s own message for everyone: the row stays, readers are served it revoked', async () => {
    const mid = (await text(a, 'oops')).get(0) as number;
    const rev = await a.ok(3, { 1: cid, 2: 5, 6: [[6, mid]], 7: { 0: 1, 1: 'typo' } });
    const pushed = await b.push((e) => e.get(3) === rev.get(0));
    expect(pushed.get(2)).toBe(5);
    const [served] = (await b.ok(7, { 0: cid, 1: mid, 2: mid })).get(0) as M[];
    expect(served?.get(5)).toBe(1);
    expect((served?.get(7) as M).size).toBe(0);
    expect((served?.get(15) as M).get(1)).toBe(rev.get(0));
    expect((await srv.app.store.getEventBySeq(cid, mid))?.body).toContain('oops');
    expect(await a.err(3, { 1: cid, 2: 5, 6: [[6, mid]], 7: { 0: 1 } })).toBe('INVALID_TARGET');
  });

  it('refuses to revoke someone else\'s message in a direct chat, or a message of another conversation', async () => {
    const mid = (await text(b, 'mine')).get(0) as number;
    expect(await a.err(3, { 1: cid, 2: 5, 6: [[6, mid]], 7: { 0: 1 } })).toBe('FORBIDDEN');
    const other = dmCid(alice.address, carol.address);
    await a.ok(3, { 1: other, 2: 1, 7: { 0: 'to carol' } });
    const lastBob = await srv.app.store.lastSeq(cid);
    expect(await a.err(3, { 1: other, 2: 5, 6: [[6, mid + 50]], 7: { 0: 1 } })).toBe('INVALID_TARGET');
    expect(await srv.app.store.lastSeq(cid)).toBe(lastBob);
  });

  it('refuses a revoke past the window, but scope 2 hides for the revoker alone with no window', async () => {
    const mid = (await text(a, 'old news')).get(0) as number;
    clock.offset = 121_000;
    try {
      expect(await a.err(3, { 1: cid, 2: 5, 6: [[6, mid]], 7: { 0: 1 } })).toBe('REVOKE_WINDOW_PASSED');
      const hide = await a.ok(3, { 1: cid, 2: 5, 6: [[6, mid]], 7: { 0: 2 } });
      const forA = (await a.ok(7, { 0: cid, 1: mid })).get(0) as M[];
      expect(forA.map((e) => e.get(3))).not.toContain(mid);
      expect(forA.find((e) => e.get(3) === hide.get(0))?.get(5)).toBe(2);
      const forB = (await b.ok(7, { 0: cid, 1: mid })).get(0) as M[];
      expect(forB.map((e) => e.get(3))).toContain(mid);
      expect(forB.map((e) => e.get(3))).not.toContain(hide.get(0));
    } finally {
      clock.offset = 0;
    }
  });

  it('shows a Relation ONE message to /im clients as kind 64, and /im texts on the REST face', async () => {
    const msg = signedMessage(alice, { receiver: bob.address });
    const res = await http(srv.url, 'POST', '/message/send', { body: msg });
    expect(res.status).toBe(200);
    const seq = (res.json as { seq: number }).seq;
    const ev = await b.push((e) => e.get(3) === seq);
    expect(ev.get(2)).toBe(64);
    const json = JSON.parse((ev.get(7) as M).get(0) as string) as { id: string; sig: string; seq: number };
    expect(json).toMatchObject({ id: msg.id, sig: msg.sig, seq });

    const mid = (await text(b, 'from the msgpack face')).get(0) as number;
    const list = await http(srv.url, 'GET', `/message/list?chatId=${bob.address}&afterSeq=${seq - 1}`, { token: aToken });
    if (!Array.isArray(list.json)) throw new Error(list.text);
    const items = list.json as { id?: string; seq: number; im?: { k: number; data: Record<string, string> } }[];
    expect(items.map((i) => i.seq)).toEqual([seq, mid]);
    expect(items[1]?.im).toMatchObject({ k: 1, data: { 0: 'from the msgpack face' } });
  });
});
