import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

/** The whole user journey of the extension against the real server: login, send, push, list, read, chats. */
describe('Relation ONE flow', () => {
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let aliceToken: string;
  let bobToken: string;
  const clients: WsClient[] = [];

  beforeAll(async () => {
    srv = await startServer();
    alice = makeIdentity();
    bob = makeIdentity();
    aliceToken = await login(srv.url, alice);
    bobToken = await login(srv.url, bob);
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await srv.close();
  });
  const open = async (token: string): Promise<WsClient> => {
    const c = await WsClient.open(srv.wsUrl, token);
    clients.push(c);
    return c;
  };
  const send = (m: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body: m });

  it('pushes a sent message to every device of the receiver and of the sender', async () => {
    const bobPhone = await open(bobToken);
    const bobLaptop = await open(bobToken);
    const aliceLaptop = await open(aliceToken);
    const m = signedMessage(alice, { receiver: bob.address, payload: 'hello-bob' });
    const res = await send(m);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ id: m.id, chatId: bob.address.toLowerCase(), seq: 1 });
    for (const c of [bobPhone, bobLaptop]) {
      const f = await c.next((x) => x['type'] === 'message');
      expect(f).toMatchObject({ chatId: alice.address.toLowerCase(), alert: true, message: { ...m, seq: 1 } });
    }
    const own = await aliceLaptop.next((x) => x['type'] === 'message');
    expect(own).toMatchObject({ chatId: bob.address.toLowerCase(), message: { id: m.id } });
  });

  it('answers a resend of the same id identically, storing and pushing nothing again', async () => {
    const bobWs = await open(bobToken);
    const m = signedMessage(alice, { receiver: bob.address });
    const first = await send(m);
    await bobWs.next((x) => x['type'] === 'message' && (x['message'] as { id: string }).id === m.id);
    const again = await send(m);
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    const marker = signedMessage(alice, { receiver: bob.address });
    await send(marker);
    await bobWs.next((x) => x['type'] === 'message' && (x['message'] as { id: string }).id === marker.id);
    expect(bobWs.frames.filter((x) => x['type'] === 'message' && (x['message'] as { id: string }).id === m.id)).toEqual([]);
    const list = await http(srv.url, 'GET', `/message/list?chatId=${alice.address}&limit=200`, { token: bobToken });
    expect((list.json as { id: string }[]).filter((x) => x.id === m.id).length).toBe(1);
  });

  it('answers concurrent resends of one id with one copy', async () => {
    const m = signedMessage(alice, { receiver: bob.address });
    const answers = await Promise.all(Array.from({ length: 5 }, () => send(m)));
    expect(new Set(answers.map((a) => a.text)).size).toBe(1);
    expect(answers.every((a) => a.status === 200)).toBe(true);
  });

  it('refuses a different message that reuses a stored id', async () => {
    const m = signedMessage(alice, { receiver: bob.address });
    await send(m);
    const res = await send({ ...m, type: 'CARD' });
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ error: { code: 'ID_CONFLICT' } });
  });

  it('lists a chat newest first, pages it, and resumes after a seq', async () => {
    const carol = makeIdentity();
    const carolToken = await login(srv.url, carol);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const m = signedMessage(i % 2 ? carol : alice, { receiver: i % 2 ? alice.address : carol.address });
      ids.push(m.id);
      expect((await send(m)).status).toBe(200);
    }
    const newest = await http(srv.url, 'GET', `/message/list?chatId=${carol.address}&limit=2`, { token: aliceToken });
    expect((newest.json as { id: string; seq: number }[]).map((x) => x.seq)).toEqual([5, 4]);
    const page = await http(srv.url, 'GET', `/message/list?chatId=${carol.address}&limit=2&offset=2`, { token: aliceToken });
    expect((page.json as { seq: number }[]).map((x) => x.seq)).toEqual([3, 2]);
    const resumed = await http(srv.url, 'GET', `/message/list?chatId=${alice.address}&afterSeq=2`, { token: carolToken });
    expect((resumed.json as { id: string }[]).map((x) => x.id)).toEqual(ids.slice(2));
    const all = await http(srv.url, 'GET', '/message/list?limit=200', { token: carolToken });
    expect((all.json as { id: string }[]).map((x) => x.id)).toEqual([...ids].reverse());
  });

  it('keeps unread counts, read markers and tells the reader\'s other devices', async () => {
    const dave = makeIdentity();
    const daveToken = await login(srv.url, dave);
    const daveOther = await open(daveToken);
    const msgs = [0, 1, 2].map(() => signedMessage(alice, { receiver: dave.address }));
    for (const m of msgs) await send(m);
    await send(signedMessage(dave, { receiver: alice.address }));
    expect((await http(srv.url, 'GET', '/message/unreadCount', { token: daveToken })).text).toBe('3');
    expect((await http(srv.url, 'GET', `/message/unreadCount?chatId=${alice.address}`, { token: daveToken })).text).toBe('3');
    const read = await http(srv.url, 'POST', `/message/read?messageId=${msgs[1]?.id}`, { token: daveToken });
    expect(read.status).toBe(200);
    expect(read.json).toEqual({ chatId: alice.address.toLowerCase(), lastReadSeq: 2 });
    expect(await daveOther.next((x) => x['type'] === 'read')).toMatchObject({ chatId: alice.address.toLowerCase(), lastReadSeq: 2 });
    expect((await http(srv.url, 'GET', '/message/unreadCount', { token: daveToken })).text).toBe('1');
    const chats = await http(srv.url, 'GET', '/chats/list', { token: daveToken });
    expect(chats.json).toEqual([expect.objectContaining({
      id: alice.address.toLowerCase(), channelType: 'P2P', unreadMessageCount: 1, lastSeq: 4, lastReadSeq: 2, type: 'TEXT', muted: false, pinned: false,
    })]);
    expect(typeof (chats.json as { lastPostAt: unknown }[])[0]?.lastPostAt).toBe('string');
  });

  it('orders the chat list pinned first, then by last post; mute silences alerts but keeps counting', async () => {
    const erin = makeIdentity();
    const erinToken = await login(srv.url, erin);
    const peers = [makeIdentity(), makeIdentity(), makeIdentity()];
    for (const p of peers) await send(signedMessage(p, { receiver: erin.address }));
    let list = await http(srv.url, 'GET', '/chats/list', { token: erinToken });
    expect((list.json as { id: string }[]).map((c) => c.id)).toEqual(peers.map((p) => p.address.toLowerCase()).reverse());
    expect((await http(srv.url, 'POST', `/chats/pin?chatId=${peers[0]?.address}`, { token: erinToken })).status).toBe(204);
    list = await http(srv.url, 'GET', '/chats/list', { token: erinToken });
    expect((list.json as { id: string; pinned: boolean }[]).map((c) => c.id)[0]).toBe(peers[0]?.address.toLowerCase());
    await http(srv.url, 'POST', `/chats/unpin?chatId=${peers[0]?.address}`, { token: erinToken });
    list = await http(srv.url, 'GET', '/chats/list', { token: erinToken });
    expect((list.json as { id: string }[]).map((c) => c.id)[0]).toBe(peers[2]?.address.toLowerCase());

    expect((await http(srv.url, 'POST', `/chats/mute?chatId=${peers[1]?.address}`, { token: erinToken })).status).toBe(204);
    const ws = await open(erinToken);
    const m = signedMessage(peers[1] as Identity, { receiver: erin.address });
    await send(m);
    expect(await ws.next((x) => x['type'] === 'message')).toMatchObject({ alert: false, message: { id: m.id } });
    expect((await http(srv.url, 'GET', `/message/unreadCount?chatId=${peers[1]?.address}`, { token: erinToken })).text).toBe('2');
    await http(srv.url, 'POST', `/chats/unmute?chatId=${peers[1]?.address}`, { token: erinToken });
    const m2 = signedMessage(peers[1] as Identity, { receiver: erin.address });
    await send(m2);
    expect(await ws.next((x) => x['type'] === 'message' && (x['message'] as { id: string }).id === m2.id)).toMatchObject({ alert: true });
  });

  it('hides a message for the hider only (kind 4)', async () => {
    const frank = makeIdentity();
    const frankToken = await login(srv.url, frank);
    const target = signedMessage(alice, { receiver: frank.address });
    await send(target);
    const frankWs = await open(frankToken);
    const hide = signedMessage(frank, { receiver: alice.address, kind: 4, tags: [['quoteId', target.id]] });
    expect((await send(hide)).status).toBe(200);
    expect(await frankWs.next((x) => x['type'] === 'message')).toMatchObject({ message: { id: hide.id, kind: 4 } });
    const forFrank = await http(srv.url, 'GET', `/message/list?chatId=${alice.address}`, { token: frankToken });
    expect((forFrank.json as { id: string }[]).map((x) => x.id)).toEqual([hide.id]);
    const forAlice = await http(srv.url, 'GET', `/message/list?chatId=${frank.address}`, { token: aliceToken });
    expect((forAlice.json as { id: string }[]).map((x) => x.id)).toEqual([target.id]);
    expect((await http(srv.url, 'GET', '/message/unreadCount', { token: frankToken })).text).toBe('0');
  });

  it('refuses a hide whose target is in another chat or missing', async () => {
    const other = signedMessage(alice, { receiver: Wallet.createRandom().address });
    await send(other);
    const bad = signedMessage(bob, { receiver: alice.address, kind: 4, tags: [['quoteId', other.id]] });
    expect((await send(bad)).json).toMatchObject({ error: { code: 'INVALID_TARGET' } });
    const none = signedMessage(bob, { receiver: alice.address, kind: 4, tags: [] });
    expect((await send(none)).json).toMatchObject({ error: { code: 'INVALID_TARGET' } });
  });

  it('refuses group kinds clearly while no relation reader is configured, storing nothing', async () => {
    const m = signedMessage(alice, { receiver: Wallet.createRandom().address, kind: 1 });
    const res = await send(m);
    expect(res.status).toBe(501);
    expect(res.json).toMatchObject({ error: { code: 'GROUPS_UNAVAILABLE' } });
    expect(await srv.app.store.getEventById(m.id)).toBeNull();
  });

  it('lets nobody read a chat they are not part of', async () => {
    const res = await http(srv.url, 'GET', `/message/list?chatId=dm:${alice.address.toLowerCase()}:${bob.address.toLowerCase()}`, {
      token: await login(srv.url, makeIdentity()),
    });
    expect(res.status).toBe(403);
    expect(res.json).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const m = signedMessage(alice, { receiver: bob.address });
    await send(m);
    const stranger = await login(srv.url, makeIdentity());
    const read = await http(srv.url, 'POST', `/message/read?messageId=${m.id}`, { token: stranger });
    expect(read.status).toBe(404);
    expect(read.json).toMatchObject({ error: { code: 'MESSAGE_NOT_FOUND' } });
  });

  it('accepts sends over /ws with one answer per ref', async () => {
    const ws = await open(aliceToken);
    const m = signedMessage(alice, { receiver: bob.address });
    ws.send({ type: 'send', ref: 'r1', message: m });
    expect(await ws.next((x) => x['ref'] === 'r1')).toMatchObject({ type: 'sent', result: { id: m.id, seq: expect.any(Number) } });
    ws.send({ type: 'send', ref: 'r2', message: { ...m, sig: '0x' + '1'.repeat(130) } });
    expect(await ws.next((x) => x['ref'] === 'r2')).toMatchObject({ type: 'error', error: { code: 'ID_CONFLICT' } });
  });
});

/**
 * A resend is answered as the first delivery was even when its checks would now refuse it: the store is
 * asked on the way to a refusal, since a new message is no longer looked up before it is verified.
 */
describe('a resend after its checks changed', () => {
  let srv: TestServer;
  let offset = 0;
  beforeAll(async () => {
    srv = await startServer({}, { clock: { now: () => Date.now() + offset } });
  });
  afterAll(async () => {
    await srv.close();
  });

  it('answers the first delivery when the message would now be refused as stale, and refuses a new one', async () => {
    const alice = makeIdentity();
    const bob = makeIdentity();
    const m = signedMessage(alice, { receiver: bob.address });
    const first = await http(srv.url, 'POST', '/message/send', { body: m });
    expect(first.status).toBe(200);
    offset = 3_600_000; // the server's clock is an hour on: the timestamp is far outside the skew
    const again = await http(srv.url, 'POST', '/message/send', { body: m });
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    const fresh = await http(srv.url, 'POST', '/message/send', { body: signedMessage(alice, { receiver: bob.address }) });
    expect(fresh.status).toBe(400);
    expect(fresh.json).toMatchObject({ error: { code: 'TIMESTAMP_SKEW' } });
    const conflict = await http(srv.url, 'POST', '/message/send', { body: { ...m, type: 'CARD' } });
    expect(conflict.json).toMatchObject({ error: { code: 'ID_CONFLICT' } });
    offset = 0;
  });
});
