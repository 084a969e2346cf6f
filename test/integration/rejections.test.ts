import fc from 'fast-check';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delegationText } from '../../src/protocol/delegation.js';
import { makeIdentity, resign, signedMessage } from '../support/messages.js';
import { http, login, siweText, startServer, type TestServer } from '../support/server.js';

/** Every bad request gets a 4xx with a stable code, stores nothing, and the server keeps serving. */
describe('bad input over REST', () => {
  let srv: TestServer;
  beforeAll(async () => { srv = await startServer({ maxBodyBytes: 4096 }); });
  afterAll(async () => { await srv.close(); });

  const storedCount = async (): Promise<number> => (await srv.app.store.listUserEvents('0x' + '0'.repeat(40), 1, 0)).length;
  const send = (body: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body });
  const alice = makeIdentity();
  const bob = makeIdentity();

  const cases: [string, () => Promise<{ status: number; json: unknown }>, number, string][] = [
    ['malformed JSON', () => http(srv.url, 'POST', '/message/send', { raw: '{"id":' }), 400, 'BAD_JSON'],
    ['a non-JSON content type', () => http(srv.url, 'POST', '/message/send', { raw: '{}', headers: { 'content-type': 'text/plain' } }), 415, 'UNSUPPORTED_MEDIA_TYPE'],
    ['an oversized body', () => send({ ...signedMessage(alice, { receiver: bob.address }), payload: 'x'.repeat(5000) }), 413, 'BODY_TOO_LARGE'],
    ['a wrong type', () => send({ ...signedMessage(alice, { receiver: bob.address }), kind: '0' }), 400, 'INVALID_FIELD'],
    ['an unknown field', () => send({ ...signedMessage(alice, { receiver: bob.address }), admin: true }), 400, 'UNKNOWN_FIELD'],
    ['a bad signature', () => send({ ...signedMessage(alice, { receiver: bob.address }), sig: Wallet.createRandom().signMessageSync('x') }), 401, 'INVALID_SIGNATURE'],
    ['a mismatched id', () => send({ ...signedMessage(alice, { receiver: bob.address }), id: '0x' + 'a'.repeat(64) }), 400, 'ID_MISMATCH'],
    ['a stale timestamp (replay of an old message)', () => {
      const longLived = makeIdentity({ createdAt: Date.now() - 3_600_000 });
      return send(signedMessage(longLived, { receiver: bob.address, timestamp: Date.now() - 400_000 }));
    }, 400, 'TIMESTAMP_SKEW'],
    ['an expired delegation', () => {
      const old = makeIdentity({ createdAt: Date.now() - 100_000, expiresAt: Date.now() - 50_000 });
      return send(signedMessage(old, { receiver: bob.address }));
    }, 401, 'DELEGATION_EXPIRED'],
    ['a forged delegation', () => {
      const text = delegationText(alice.session.address, Date.now() - 1000, Date.now() + 100_000);
      const forged = { ...alice, delegationMessage: text, delegationSig: bob.wallet.signMessageSync(text) };
      return send(resign(forged, signedMessage(forged, { receiver: bob.address })));
    }, 401, 'INVALID_SIGNATURE'],
    ['an array body', () => send([1, 2]), 400, 'INVALID_FIELD'],
  ];
  for (const [what, run, status, code] of cases) {
    it(`rejects ${what} with ${status} ${code} and stores nothing`, async () => {
      const before = await storedCount();
      const res = await run();
      expect(res.status).toBe(status);
      expect(res.json).toMatchObject({ error: { code, message: expect.any(String) } });
      expect(await storedCount()).toBe(before);
    });
  }

  it('answers unknown paths and methods with NOT_FOUND', async () => {
    expect((await http(srv.url, 'GET', '/message/send')).json).toMatchObject({ error: { code: 'NOT_FOUND' } });
    expect((await http(srv.url, 'DELETE', '/chats/list')).status).toBe(404);
  });

  it('requires a token on every read endpoint', async () => {
    for (const [m, p] of [['GET', '/message/list'], ['POST', '/message/read?messageId=0x' + '1'.repeat(64)], ['GET', '/message/unreadCount'], ['GET', '/chats/list'], ['POST', '/chats/mute?chatId=' + bob.address]] as const) {
      const res = await http(srv.url, m, p);
      expect(res.status).toBe(401);
      expect(res.json).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
      const bad = await http(srv.url, m, p, { token: 'not-a-token' });
      expect(bad.json).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    }
  });

  it('validates query parameters', async () => {
    const token = await login(srv.url, alice);
    for (const q of ['limit=0', 'limit=abc', 'limit=100000', 'offset=-1', 'chatId=nope', 'afterSeq=3']) {
      const res = await http(srv.url, 'GET', `/message/list?${q}`, { token });
      expect(res.status, q).toBe(400);
      expect(res.json).toMatchObject({ error: { code: 'INVALID_FIELD' } });
    }
    expect((await http(srv.url, 'POST', '/message/read', { token })).json).toMatchObject({ error: { code: 'INVALID_FIELD' } });
  });

  it('survives arbitrary bodies on every write endpoint (fuzz) and keeps serving', async () => {
    await fc.assert(fc.asyncProperty(fc.oneof(fc.string(), fc.jsonValue().map((v) => JSON.stringify(v))), fc.constantFrom('/message/send', '/auth/login'), async (raw, p) => {
      const res = await http(srv.url, 'POST', p, { raw });
      return res.status >= 400 && res.status < 500 && typeof (res.json as { error?: { code?: unknown } }).error?.code === 'string';
    }), { numRuns: 150 });
    expect((await http(srv.url, 'GET', '/health')).status).toBe(200);
  });
});

describe('sign-in and tokens', () => {
  let srv: TestServer;
  beforeAll(async () => { srv = await startServer({ tokenTtlMs: 60_000 }); });
  afterAll(async () => { await srv.close(); });
  const nonce = async (): Promise<string> => ((await http(srv.url, 'GET', '/auth/nonce')).json as { nonce: string }).nonce;

  it('logs in with a session key and its delegation', async () => {
    const who = makeIdentity();
    const message = siweText(srv.url, who.address, await nonce());
    const res = await http(srv.url, 'POST', '/auth/login', {
      body: { message, signature: who.session.signMessageSync(message), delegationMessage: who.delegationMessage, delegationSig: who.delegationSig },
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ address: who.address.toLowerCase(), token: expect.any(String) });
  });

  it('refuses a session key without a delegation, a reused nonce, a wrong domain and an expired message', async () => {
    const who = makeIdentity();
    let message = siweText(srv.url, who.address, await nonce());
    let res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature: who.session.signMessageSync(message) } });
    expect(res.json).toMatchObject({ error: { code: 'INVALID_SIGNATURE' } });

    message = siweText(srv.url, who.address, await nonce());
    const signature = who.wallet.signMessageSync(message);
    expect((await http(srv.url, 'POST', '/auth/login', { body: { message, signature } })).status).toBe(200);
    res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature } });
    expect(res.json).toMatchObject({ error: { code: 'NONCE_INVALID' } });

    message = siweText('http://evil.example', who.address, await nonce());
    res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature: who.wallet.signMessageSync(message) } });
    expect(res.json).toMatchObject({ error: { code: 'SIWE_INVALID' } });

    message = siweText(srv.url, who.address, await nonce(), { expirationTime: new Date(Date.now() - 1000).toISOString() });
    res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature: who.wallet.signMessageSync(message) } });
    expect(res.json).toMatchObject({ error: { code: 'SIWE_INVALID' } });

    res = await http(srv.url, 'POST', '/auth/login', { body: { message: 'hello', signature } });
    expect(res.json).toMatchObject({ error: { code: 'SIWE_INVALID' } });
    res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature, extra: 1 } });
    expect(res.json).toMatchObject({ error: { code: 'UNKNOWN_FIELD' } });
  });

  it('revokes the token on logout', async () => {
    const who = makeIdentity();
    const token = await login(srv.url, who);
    expect((await http(srv.url, 'GET', '/chats/list', { token })).status).toBe(200);
    expect((await http(srv.url, 'POST', '/auth/logout', { token })).status).toBe(204);
    const res = await http(srv.url, 'GET', '/chats/list', { token });
    expect(res.status).toBe(401);
    expect(res.json).toMatchObject({ error: { code: 'TOKEN_EXPIRED' } });
  });
});

describe('token expiry', () => {
  it('refuses a token after its lifetime', async () => {
    let now = Date.now();
    const srv = await startServer({ tokenTtlMs: 5_000 }, { clock: { now: () => now } });
    try {
      const token = await login(srv.url, makeIdentity());
      expect((await http(srv.url, 'GET', '/chats/list', { token })).status).toBe(200);
      now += 6_000;
      const res = await http(srv.url, 'GET', '/chats/list', { token });
      expect(res.json).toMatchObject({ error: { code: 'TOKEN_EXPIRED' } });
    } finally {
      await srv.close();
    }
  });
});

describe('load shedding', () => {
  it('answers OVERLOADED (503, temporary) past MAX_PENDING_SENDS and stores only what it accepted', async () => {
    const srv = await startServer({ maxPendingSends: 2 });
    try {
      const alice = makeIdentity();
      const bob = makeIdentity();
      const msgs = Array.from({ length: 30 }, () => signedMessage(alice, { receiver: bob.address }));
      const answers = await Promise.all(msgs.map((m) => http(srv.url, 'POST', '/message/send', { body: m })));
      const shed = answers.filter((a) => a.status === 503);
      expect(shed.length).toBeGreaterThan(0);
      for (const a of shed) expect(a.json).toMatchObject({ error: { code: 'OVERLOADED' } });
      for (let i = 0; i < msgs.length; i++) {
        const stored = await srv.app.store.getEventById(msgs[i]?.id as string);
        expect(stored !== null).toBe(answers[i]?.status === 200);
      }
    } finally {
      await srv.close();
    }
  });
});
