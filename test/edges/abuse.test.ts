import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';
import { Wallet } from 'ethers';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/config.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { parseRaw } from '../support/raw.js';
import { http, login, siweText, startServer, WsClient, type TestServer } from '../support/server.js';

const stored = async (srv: TestServer, who: Identity): Promise<number> => (await srv.app.store.listUserEvents(who.address.toLowerCase(), 1000, 0)).length;

/** A token made in process, so the test opens no HTTP keep-alive connection (the connection cap counts them). */
async function tokenFor(srv: TestServer, who: Identity): Promise<string> {
  const { nonce } = await srv.app.auth.nonce();
  const message = siweText(srv.url, who.address, nonce);
  return (await srv.app.auth.login({ message, signature: who.wallet.signMessageSync(message) }, new URL(srv.url).host)).token;
}

function expectRateLimited(res: { status: number; json: unknown }, headers?: Headers): void {
  expect(res.status).toBe(429);
  expect(res.json).toMatchObject({ error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) } });
  if (headers) expect(Number(headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
}

describe('rate limits per client address and per user', () => {
  let srv: TestServer;
  afterEach(async () => { await srv?.close(); });

  it('answers 429 RATE_LIMITED with Retry-After past RATE_NONCE_PER_MIN and RATE_LOGIN_PER_MIN', async () => {
    srv = await startServer({ rateLimitExempt: [], rateNoncePerMin: 3, rateLoginPerMin: 2 });
    for (let i = 0; i < 3; i++) expect((await http(srv.url, 'GET', '/auth/nonce')).status).toBe(200);
    const res = await fetch(`${srv.url}/auth/nonce`);
    expectRateLimited({ status: res.status, json: await res.json() }, res.headers);

    const who = makeIdentity();
    const { nonce } = await srv.app.auth.nonce();
    const message = siweText(srv.url, who.address, nonce);
    const body = JSON.stringify({ message, signature: Wallet.createRandom().signMessageSync(message) });
    for (let i = 0; i < 2; i++) {
      expect((await http(srv.url, 'POST', '/auth/login', { raw: body })).json).toMatchObject({ error: { code: 'INVALID_SIGNATURE' } });
    }
    const limited = await fetch(`${srv.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expectRateLimited({ status: limited.status, json: await limited.json() }, limited.headers);
  });

  it('limits sends per address over REST, /ws and /im together, and stores only what it accepted', async () => {
    srv = await startServer({ rateLimitExempt: [], rateSendPerSec: 2, rateUserSendPerSec: 0, rateNoncePerMin: 0, rateLoginPerMin: 0 });
    const alice = makeIdentity();
    const bob = makeIdentity();
    const rest = await Promise.all(Array.from({ length: 12 }, () => http(srv.url, 'POST', '/message/send', { body: signedMessage(alice, { receiver: bob.address }) })));
    const ok = rest.filter((r) => r.status === 200).length;
    expect(ok).toBeGreaterThan(0);
    for (const r of rest.filter((x) => x.status !== 200)) expectRateLimited(r);
    expect(await stored(srv, alice)).toBe(ok);

    const token = await login(srv.url, alice);
    const ws = await WsClient.open(srv.wsUrl, token);
    for (let i = 0; i < 12; i++) ws.send({ type: 'send', ref: `r${i}`, message: signedMessage(alice, { receiver: bob.address }) });
    const err = await ws.next((f) => f['type'] === 'error');
    expect(err).toMatchObject({ error: { code: 'RATE_LIMITED', retryAfterMs: expect.any(Number) } });

    const im = await ImClient.open(imUrl(srv.wsUrl), token);
    const cid = `dm:${[alice.address.toLowerCase(), bob.address.toLowerCase()].sort().join(':')}`;
    const answers = await Promise.all(Array.from({ length: 12 }, () => im.request(3, { 1: cid, 2: 1, 7: { 0: 'hi' } })));
    const refused = answers.filter((a) => a.cmd === 0);
    expect(refused.length).toBeGreaterThan(0);
    for (const a of refused) {
      expect(a.body.get(1)).toBe('RATE_LIMITED');
      expect(a.body.get(0)).toBe(4200);
      expect(a.body.get(4)).toEqual(expect.any(Number));
    }
    ws.close();
    im.close();
  });

  it('limits sends per user on both faces, and forged messages cannot spend another user\'s allowance', async () => {
    srv = await startServer({ rateLimitExempt: [], rateSendPerSec: 0, rateUserSendPerSec: 2, rateNoncePerMin: 0, rateLoginPerMin: 0 });
    const alice = makeIdentity();
    const bob = makeIdentity();
    const forger = makeIdentity();
    // Forgeries naming alice as sender fail verification before the per-user limit counts them.
    const forged = await Promise.all(Array.from({ length: 20 }, () => http(srv.url, 'POST', '/message/send', {
      body: { ...signedMessage(alice, { receiver: bob.address }), sig: forger.session.signMessageSync('x') },
    })));
    for (const r of forged) expect(r.json).toMatchObject({ error: { code: 'INVALID_SIGNATURE' } });
    expect((await http(srv.url, 'POST', '/message/send', { body: signedMessage(alice, { receiver: bob.address }) })).status).toBe(200);

    const burstMessages = Array.from({ length: 12 }, () => signedMessage(alice, { receiver: bob.address }));
    const burst = await Promise.all(burstMessages.map((m) => http(srv.url, 'POST', '/message/send', { body: m })));
    const limited = burst.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThan(0);
    for (const r of limited) expect(r.json).toMatchObject({ error: { code: 'RATE_LIMITED', message: expect.stringMatching(/user/) } });
    // At the limit, a resend of a stored message is answered from the store, not refused.
    const stored = burst.findIndex((r) => r.status === 200);
    const again = await http(srv.url, 'POST', '/message/send', { body: burstMessages[stored] });
    expect(again.status).toBe(200);
    expect(again.text).toBe(burst[stored]?.text);
    // Another user is not affected.
    expect((await http(srv.url, 'POST', '/message/send', { body: signedMessage(bob, { receiver: alice.address }) })).status).toBe(200);

    const im = await ImClient.open(imUrl(srv.wsUrl), await login(srv.url, alice));
    const cid = `dm:${[alice.address.toLowerCase(), bob.address.toLowerCase()].sort().join(':')}`;
    const answers = await Promise.all(Array.from({ length: 12 }, () => im.request(3, { 1: cid, 2: 1, 7: { 0: 'hi' } })));
    expect(answers.some((a) => a.cmd === 0 && a.body.get(1) === 'RATE_LIMITED')).toBe(true);
    im.close();
  });

  it('exempts nothing by default, loopback included', async () => {
    srv = await startServer({ rateLimitExempt: loadConfig({}).rateLimitExempt, rateNoncePerMin: 2 });
    const res = await Promise.all(Array.from({ length: 3 }, () => http(srv.url, 'GET', '/auth/nonce')));
    expect(res.map((r) => r.status).sort()).toEqual([200, 200, 429]);
  });

  it('exempts the addresses of RATE_LIMIT_EXEMPT', async () => {
    srv = await startServer({ rateLimitExempt: loadConfig({ RATE_LIMIT_EXEMPT: '127.0.0.1, ::1' }).rateLimitExempt, rateNoncePerMin: 2, rateSendPerSec: 1, rateUserSendPerSec: 1 });
    const res = await Promise.all(Array.from({ length: 30 }, () => http(srv.url, 'GET', '/auth/nonce')));
    expect(res.every((r) => r.status === 200)).toBe(true);
    const alice = makeIdentity();
    const sends = await Promise.all(Array.from({ length: 30 }, () => http(srv.url, 'POST', '/message/send', { body: signedMessage(alice, { receiver: alice.address }) })));
    expect(sends.every((r) => r.status === 200)).toBe(true);
  });
});

/** Opens a raw TCP connection that sends `head`, then one more byte every `everyMs`, and resolves with what the server answered. */
function slowClient(port: number, head: string, drip: string, everyMs: number, giveUpMs: number): Promise<string> {
  return new Promise((resolve) => {
    const s: Socket = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    let i = 0;
    const timer = setInterval(() => { if (!s.destroyed) s.write(drip[i++ % drip.length] as string); }, everyMs);
    const done = (): void => { clearInterval(timer); clearTimeout(stop); resolve(Buffer.concat(got).toString('latin1')); };
    const stop = setTimeout(() => { s.destroy(); done(); }, giveUpMs);
    s.on('connect', () => s.write(head));
    s.on('data', (c) => got.push(c));
    s.on('error', () => undefined);
    s.on('close', done);
  });
}

describe('slow clients (slowloris) and the connection cap', () => {
  let srv: TestServer;
  afterEach(async () => { await srv?.close(); });

  it('answers headers sent byte by byte with 408 REQUEST_TIMEOUT and closes, within HTTP_HEADERS_TIMEOUT_MS', async () => {
    srv = await startServer({ httpHeadersTimeoutMs: 500 });
    const port = Number(new URL(srv.url).port);
    const answer = await slowClient(port, 'GET /health HTTP/1.1\r\nHost: x\r\n', 'X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 100, 20_000);
    expect(parseRaw(answer)).toMatchObject({ status: 408, json: { error: { code: 'REQUEST_TIMEOUT' } } });
    const upgrade = await slowClient(port, 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n', 'X-Slow: aaaaaaaaaaaaaaa', 100, 20_000);
    expect(parseRaw(upgrade).status).toBe(408);
    expect((await http(srv.url, 'GET', '/health')).status).toBe(200);
  });

  it('answers a JSON body sent byte by byte with 408 REQUEST_TIMEOUT within HTTP_BODY_TIMEOUT_MS', async () => {
    srv = await startServer({ httpBodyTimeoutMs: 500 });
    const port = Number(new URL(srv.url).port);
    for (const p of ['/message/send', '/auth/login']) {
      const answer = await slowClient(port, `POST ${p} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{`, '"', 100, 20_000);
      expect(parseRaw(answer), p).toMatchObject({ status: 408, json: { error: { code: 'REQUEST_TIMEOUT' } } });
    }
  });

  it('refuses connections past MAX_UNAUTH_CONNECTIONS_PER_ADDRESS with 429, and stops counting one once it authenticated', async () => {
    srv = await startServer({ rateLimitExempt: [], maxUnauthConnectionsPerAddress: 3 });
    const who = makeIdentity();
    const token = await tokenFor(srv, who);
    const open = await Promise.all(Array.from({ length: 3 }, () => WsClient.open(srv.wsUrl)));
    const refused = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(srv.wsUrl);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('a fourth unauthenticated connection was admitted')));
      ws.on('error', () => undefined);
    });
    expect(refused).toBe(429);
    const raw = await new Promise<string>((resolve) => {
      const s = connect(Number(new URL(srv.url).port), '127.0.0.1');
      const got: Buffer[] = [];
      s.on('data', (c) => got.push(c));
      s.on('close', () => resolve(Buffer.concat(got).toString('latin1')));
      s.on('error', () => undefined);
    });
    expect(parseRaw(raw)).toMatchObject({ status: 429, json: { error: { code: 'TOO_MANY_CONNECTIONS' } } });
    // One of the three authenticates: it leaves the count, and a new connection is admitted.
    const first = open[0] as WsClient;
    first.send({ type: 'auth', token });
    await first.next((f) => f['type'] === 'ready');
    const fourth = await WsClient.open(srv.wsUrl);
    for (const c of [...open, fourth]) c.close();
  });
});
