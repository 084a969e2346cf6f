import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import { ImClient, imUrl, type Frame } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

const READ_PUSH = 15;
const reads = (c: ImClient): [unknown, unknown][] => c.answers.filter((f) => f.cmd === READ_PUSH).map((f) => [f.body.get(0), f.body.get(1)]);
const readFrom = (cid: string, seq: number) => (f: Frame): boolean => f.cmd === READ_PUSH && f.body.get(0) === cid && f.body.get(1) === seq;

/** A read marker moved on one device reaches the user's other devices on both faces. */
describe('read markers across devices and faces', () => {
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let a1: ImClient;
  let a2: ImClient;
  let aw: WsClient;
  let b: ImClient;
  let cid: string;
  let aToken: string;
  beforeAll(async () => {
    srv = await startServer({ requireName: false });
    [alice, bob] = [makeIdentity(), makeIdentity()];
    aToken = await login(srv.url, alice);
    const url = imUrl(srv.wsUrl);
    a1 = await ImClient.open(url, aToken);
    a2 = await ImClient.open(url, aToken);
    aw = await WsClient.open(srv.wsUrl, aToken);
    b = await ImClient.open(url, await login(srv.url, bob));
    cid = dmCid(alice.address, bob.address);
    for (let i = 1; i <= 4; i++) await b.ok(3, { 1: cid, 2: 1, 7: { 0: `m${i}` } });
  });
  afterAll(async () => {
    for (const c of [a1, a2, aw, b]) c.close();
    await srv.close();
  });

  it('pushes an /im ACK to the other /im device and to /ws, not back to the device that acked', async () => {
    expect((await a1.ok(5, { 0: cid, 1: 2 })).get(1)).toBe(2);
    await a2.wait(readFrom(cid, 2));
    expect(await aw.next((f) => f['type'] === 'read')).toEqual({ type: 'read', chatId: bob.address.toLowerCase(), lastReadSeq: 2 });
    // The push was written before the ACK's answer on the same socket: none came to the acking device.
    expect(reads(a1)).toEqual([]);
    // Nor to the peer: its next answer follows anything written to it before.
    await b.ok(2);
    expect(reads(b)).toEqual([]);
  });

  it('pushes only a move: an ACK below the marker in force is answered but tells no one', async () => {
    expect((await a1.ok(5, { 0: cid, 1: 1 })).get(1)).toBe(2);
    expect((await a1.ok(5, { 0: cid, 1: 3 })).get(1)).toBe(3);
    await a2.wait(readFrom(cid, 3));
    expect(reads(a2)).toEqual([[cid, 2], [cid, 3]]);
    expect(await aw.next((f) => f['type'] === 'read')).toMatchObject({ lastReadSeq: 3 });
    expect(aw.frames.filter((f) => f['type'] === 'read')).toEqual([]);
  });

  it('pushes a marker moved by an ACK on the other /im device back to the first one', async () => {
    await a2.ok(5, { 0: cid, 1: 4 });
    await a1.wait(readFrom(cid, 4));
    expect(reads(a1)).toEqual([[cid, 4]]);
    expect(await aw.next((f) => f['type'] === 'read')).toMatchObject({ lastReadSeq: 4 });
  });

  it('pushes a marker moved by POST /message/read to every /im device and to /ws', async () => {
    const msg = signedMessage(bob, { receiver: alice.address });
    const sent = await http(srv.url, 'POST', '/message/send', { body: msg });
    expect(sent.status).toBe(200);
    const seq = (sent.json as { seq: number }).seq;
    const read = await http(srv.url, 'POST', `/message/read?messageId=${msg.id}`, { token: aToken });
    expect(read.json).toEqual({ chatId: bob.address.toLowerCase(), lastReadSeq: seq });
    await a1.wait(readFrom(cid, seq));
    await a2.wait(readFrom(cid, seq));
    expect(await aw.next((f) => f['type'] === 'read')).toEqual({ type: 'read', chatId: bob.address.toLowerCase(), lastReadSeq: seq });
    // Marking the same message again moves nothing and pushes nothing.
    await http(srv.url, 'POST', `/message/read?messageId=${msg.id}`, { token: aToken });
    await a1.ok(5, { 0: cid, 1: seq + 50 });
    await a2.ok(2);
    expect(reads(a2).filter(([, s]) => s === seq)).toHaveLength(1);
  });
});
