import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

describe('/ws connection rules', () => {
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let aliceToken: string;
  let bobToken: string;
  beforeAll(async () => {
    srv = await startServer({ wsAuthTimeoutMs: 300, wsHeartbeatMs: 200, wsMaxFramesPerSec: 20, maxBodyBytes: 8192, wsMaxBufferedBytes: 64 * 1024 });
    alice = makeIdentity();
    bob = makeIdentity();
    aliceToken = await login(srv.url, alice);
    bobToken = await login(srv.url, bob);
  });
  afterAll(async () => { await srv.close(); });
  const send = (m: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body: m });

  it('authenticates with a first frame when no token is in the URL', async () => {
    const c = await WsClient.open(srv.wsUrl);
    c.send({ type: 'auth', token: bobToken });
    expect(await c.next((f) => f['type'] === 'ready')).toMatchObject({ address: bob.address.toLowerCase() });
    c.send({ type: 'ping', ref: 'p' });
    expect(await c.next((f) => f['type'] === 'pong')).toMatchObject({ ref: 'p' });
    c.close();
  });

  it('closes 4001 when no token arrives in time, and on any frame before auth', async () => {
    const idle = await WsClient.open(srv.wsUrl);
    expect(await idle.closed).toBe(4001);
    const eager = await WsClient.open(srv.wsUrl);
    eager.send({ type: 'ping' });
    expect(await eager.closed).toBe(4001);
    const wrong = await WsClient.open(srv.wsUrl);
    wrong.send({ type: 'auth', token: 'nope' });
    expect(await wrong.next((f) => f['type'] === 'error')).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    expect(await wrong.closed).toBe(4001);
  });

  it('answers a bad JSON frame with an error and keeps the connection', async () => {
    const c = await WsClient.open(srv.wsUrl, aliceToken);
    c.send('{nope');
    expect(await c.next((f) => f['type'] === 'error')).toMatchObject({ error: { code: 'BAD_JSON' } });
    c.send({ type: 'teleport', ref: 'x' });
    expect(await c.next((f) => f['type'] === 'error')).toMatchObject({ ref: 'x', error: { code: 'INVALID_FIELD' } });
    c.send({ type: 'ping', ref: 'still-here' });
    expect(await c.next((f) => f['type'] === 'pong')).toMatchObject({ ref: 'still-here' });
    c.close();
  });

  it('closes 4003 on a binary frame and 1009 on an oversized frame', async () => {
    const bin = await WsClient.open(srv.wsUrl, aliceToken);
    bin.ws.send(Buffer.from([1, 2, 3]));
    expect(await bin.closed).toBe(4003);
    const big = await WsClient.open(srv.wsUrl, aliceToken);
    big.send({ type: 'ping', pad: 'x'.repeat(10_000) });
    expect(await big.closed).toBe(1009);
  });

  it('closes 4029 when a client floods frames', async () => {
    const c = await WsClient.open(srv.wsUrl, aliceToken);
    for (let i = 0; i < 50; i++) c.send({ type: 'ping' });
    expect(await c.closed).toBe(4029);
  });

  it('drops a peer that stops answering pings (4009 attempted, connection gone)', async () => {
    const c = await WsClient.open(srv.wsUrl, aliceToken, { autoPong: false });
    const code = await c.closed;
    expect([4009, 1006]).toContain(code);
    expect(srv.app.hub.connections).toBeLessThan(5);
  });

  it('closes every connection of a token on logout with 4002', async () => {
    const token = await login(srv.url, alice);
    const a = await WsClient.open(srv.wsUrl, token);
    const b = await WsClient.open(srv.wsUrl, token);
    const other = await WsClient.open(srv.wsUrl, aliceToken);
    await http(srv.url, 'POST', '/auth/logout', { token });
    expect(await a.closed).toBe(4002);
    expect(await b.closed).toBe(4002);
    other.send({ type: 'ping', ref: 'alive' });
    expect(await other.next((f) => f['type'] === 'pong')).toMatchObject({ ref: 'alive' });
    other.close();
  });

});

describe('/ws slow consumers', () => {
  let slowSrv: TestServer;
  beforeAll(async () => { slowSrv = await startServer({ maxBodyBytes: 16384, wsMaxBufferedBytes: 64 * 1024, wsHeartbeatMs: 60_000 }); });
  afterAll(async () => { await slowSrv.close(); });
  const send = (m: unknown): ReturnType<typeof http> => http(slowSrv.url, 'POST', '/message/send', { body: m });

  it('cuts off a slow consumer with 4008 instead of buffering without bound', async () => {
    const carol = makeIdentity();
    const carolToken = await login(slowSrv.url, carol);
    const alice = makeIdentity();
    const slow = await WsClient.open(slowSrv.wsUrl, carolToken);
    // Stop reading: the server's send buffer for this connection can only grow.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const payload = 'y'.repeat(6000);
    for (let i = 0; i < 3000; i++) {
      await send(signedMessage(alice, { receiver: carol.address, payload }));
      if (!slowSrv.app.hub.isOnline(carol.address.toLowerCase())) break;
    }
    expect(slowSrv.app.hub.isOnline(carol.address.toLowerCase())).toBe(false);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await slow.closed).toBe(4008);
  });
});

describe('/ws resume', () => {
  let srv: TestServer;
  beforeAll(async () => { srv = await startServer({ resumeMaxPerChat: 3 }); });
  afterAll(async () => { await srv.close(); });
  const send = (m: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body: m });

  it('replays what was missed after a cursor, reports more, then continues live without gaps or repeats', async () => {
    const alice = makeIdentity();
    const bob = makeIdentity();
    const bobToken = await login(srv.url, bob);
    const first = await WsClient.open(srv.wsUrl, bobToken);
    await send(signedMessage(alice, { receiver: bob.address }));
    const seen = await first.next((f) => f['type'] === 'message');
    first.close();
    const lastSeen = (seen['message'] as { seq: number }).seq;
    const missed: string[] = [];
    for (let i = 0; i < 4; i++) {
      const m = signedMessage(alice, { receiver: bob.address });
      missed.push(m.id);
      await send(m);
    }
    const again = await WsClient.open(srv.wsUrl, bobToken);
    again.send({ type: 'resume', ref: 'r', cursors: { [alice.address]: lastSeen } });
    // A message sent while the replay runs must arrive exactly once, after the replay.
    const during = signedMessage(alice, { receiver: bob.address });
    const sending = send(during);
    const resumed = await again.next((f) => f['type'] === 'resumed');
    expect(resumed).toMatchObject({ ref: 'r', chats: { [alice.address]: { lastSeq: 4, more: true } } });
    await sending;
    await again.next((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === during.id);
    const order = again.all.filter((f) => f['type'] === 'message' || f['type'] === 'resumed')
      .map((f) => (f['type'] === 'resumed' ? 'resumed' : (f['message'] as { id: string }).id));
    expect(order).toEqual([missed[0], missed[1], missed[2], 'resumed', during.id]);
    const rest = await http(srv.url, 'GET', `/message/list?chatId=${alice.address}&afterSeq=4`, { token: bobToken });
    expect((rest.json as { id: string }[]).map((m) => m.id)).toEqual([missed[3], during.id]);
    again.close();
  });
});
