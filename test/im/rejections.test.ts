import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import { ImClient, imUrl, m, packr, type M } from '../support/im-client.js';
import { makeIdentity, type Identity } from '../support/messages.js';
import { login, startServer, type TestServer } from '../support/server.js';

describe('/im bad input: an error answer or a documented close, nothing stored, still serving', () => {
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let token: string;
  let a: ImClient;
  let cid: string;
  let url: string;
  beforeAll(async () => {
    srv = await startServer({ imMaxFrameBytes: 4096, imMaxDepth: 6, imMaxElements: 64, wsAuthTimeoutMs: 500 });
    url = imUrl(srv.wsUrl);
    [alice, bob] = [makeIdentity(), makeIdentity()];
    token = await login(srv.url, alice);
    a = await ImClient.open(url, token);
    cid = dmCid(alice.address, bob.address);
  });
  afterAll(async () => {
    a.close();
    await srv.close();
  });

  /** After each bad frame: the conversation is unchanged and the connection still answers. */
  async function stillServing(): Promise<void> {
    expect(await srv.app.store.lastSeq(cid)).toBe(0);
    const p = await a.request(2);
    expect(p.cmd).toBe(2);
  }
  const errorWithoutSeq = async (): Promise<string> => {
    const before = a.answers.length;
    const f = await a.wait((x) => x.cmd === 0 && x.seq === undefined && a.answers.indexOf(x) >= before);
    return f.body.get(1) as string;
  };

  it('answers a text frame with BAD_MSGPACK', async () => {
    const p = errorWithoutSeq();
    a.raw('{"cmd": 3}');
    expect(await p).toBe('BAD_MSGPACK');
    await stillServing();
  });

  it('answers truncated MsgPack, trailing bytes and extension types with BAD_MSGPACK', async () => {
    const good = packr.pack(m({ 0: 1, 1: 3, 2: 77, 4: { 1: cid, 2: 1, 7: { 0: 'hi' } } }));
    for (const bad of [good.subarray(0, good.length - 3), Buffer.concat([good, Buffer.from([0x01])]), Buffer.from([0xd4, 0x01, 0x02]), Buffer.from([0xc1])]) {
      const p = errorWithoutSeq();
      a.raw(bad);
      expect(await p).toBe('BAD_MSGPACK');
    }
    await stillServing();
  });

  it('answers deeply nested and huge arrays with BAD_MSGPACK without decoding them', async () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 20; i++) deep = [deep];
    const p1 = errorWithoutSeq();
    a.raw(packr.pack(m({ 0: 1, 1: 3, 2: 5, 4: { 1: cid, 2: 1, 7: { 0: deep } } })));
    expect(await p1).toBe('BAD_MSGPACK');
    // An array header claiming 2^32-1 entries, in a 9-byte frame.
    const p2 = errorWithoutSeq();
    a.raw(Buffer.from([0x81, 0x04, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00]));
    expect(await p2).toBe('BAD_MSGPACK');
    const p3 = errorWithoutSeq();
    a.raw(packr.pack(m({ 0: 1, 1: 8, 4: { 0: Array.from({ length: 100 }, () => 'x') } })));
    expect(await p3).toBe('BAD_MSGPACK');
    await stillServing();
  });

  it('answers wrong types with INVALID_FIELD carrying the request seq', async () => {
    expect(await a.err(3, { 1: 42, 2: 1, 7: { 0: 'x' } })).toBe('INVALID_FIELD');
    expect(await a.err(3, { 1: cid, 2: 'one', 7: { 0: 'x' } })).toBe('INVALID_FIELD');
    expect(await a.err(3, { 1: cid, 2: 1, 7: { 0: 12 } })).toBe('INVALID_FIELD');
    expect(await a.err(3, { 1: cid, 2: 1, 7: { 0: '' } })).toBe('INVALID_FIELD');
    expect(await a.err(3, { 1: cid, 2: 9, 7: { 0: 'x' } })).toBe('INVALID_FIELD');
    expect(await a.err(3, { 1: cid.toUpperCase(), 2: 1, 7: { 0: 'x' } })).toBe('INVALID_FIELD');
    expect(await a.err(3, { 1: cid, 2: 5, 6: [[6, 'one']], 7: { 0: 1 } })).toBe('INVALID_FIELD');
    expect(await a.err(3, { 1: cid, 2: 5, 7: { 0: 1 } })).toBe('INVALID_FIELD');
    expect(await a.err(7, { 0: cid, 5: -1 })).toBe('INVALID_FIELD');
    const r = await a.request(3, m({ 1: cid, 2: 1, 7: 'not a map' }));
    expect([r.cmd, r.body.get(1), r.body.get(0)]).toEqual([0, 'INVALID_FIELD', 1003]);
    await stillServing();
  });

  it('ignores unknown keys in the envelope, the body and data', async () => {
    const other = dmCid(alice.address, makeIdentity().address);
    const r = await a.ok(3, { 1: other, 2: 1, 7: { 0: 'hi', 9: 'future' }, 12: 'x', 15: { 3: 1 } });
    expect(r.get(0)).toBe(1);
    a.raw(packr.pack(m({ 0: 1, 1: 2, 2: 900, 9: 'extension', 15: { 1: 2 } })));
    expect((await a.wait((f) => f.seq === 900)).cmd).toBe(2);
  });

  it('answers an unknown command with UNKNOWN_COMMAND', async () => {
    expect(await a.err(99)).toBe('UNKNOWN_COMMAND');
    expect(await a.err(4)).toBe('UNKNOWN_COMMAND');
    await stillServing();
  });

  it('answers requests before auth with UNAUTHENTICATED and closes 4001 when no auth arrives', async () => {
    const anon = await ImClient.open(url);
    expect(await anon.err(3, { 1: cid, 2: 1, 7: { 0: 'x' } })).toBe('UNAUTHENTICATED');
    expect((await anon.request(2)).cmd).toBe(2);
    expect(await anon.closed).toBe(4001);
    const wrong = await ImClient.open(url);
    expect(await wrong.err(1, { 0: 'not-a-token' })).toBe('UNAUTHENTICATED');
    expect(await wrong.closed).toBe(4001);
    await stillServing();
  });

  it('refuses a kind 3 event for a file never uploaded, or with another size', async () => {
    const file = { 0: 'ab'.repeat(16), 1: 'x.txt', 2: 5, 3: 'text/plain', 4: '00'.repeat(32) };
    expect(await a.err(3, { 1: cid, 2: 3, 7: file })).toBe('FILE_NOT_FOUND');
    const p = await a.ok(9, { 0: 'x.txt', 1: 5, 2: 'text/plain' });
    const put = await fetch(p.get(1) as string, { method: 'PUT', body: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(put.status).toBe(200);
    expect(await a.err(3, { 1: cid, 2: 3, 7: { ...file, 0: p.get(0), 2: 6 } })).toBe('FILE_NOT_FOUND');
    await stillServing();
  });

  it('closes 1009 on a frame over IM_MAX_FRAME_BYTES', async () => {
    const big = await ImClient.open(url, token);
    big.raw(packr.pack(m({ 0: 1, 1: 2, 4: { 0: 'x'.repeat(8000) } })));
    expect(await big.closed).toBe(1009);
    await stillServing();
  });

  it('survives a burst of random garbage frames', async () => {
    for (let i = 0; i < 40; i++) a.raw(Buffer.from(Array.from({ length: 1 + (i % 30) }, (_, j) => (i * 37 + j * 101) % 256)));
    await stillServing();
  });
});

describe('/im slow consumer and rate limit', () => {
  it('closes 4029 when a client floods frames', async () => {
    const srv = await startServer({ wsMaxFramesPerSec: 20 });
    const c = await ImClient.open(imUrl(srv.wsUrl), await login(srv.url, makeIdentity()));
    for (let i = 0; i < 60; i++) c.raw(packr.pack(m({ 0: 1, 1: 2 })));
    expect(await c.closed).toBe(4029);
    await srv.close();
  });
});

export type { M };
