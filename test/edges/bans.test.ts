import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage } from '../support/messages.js';
import { http, login, siweText, startServer, WsClient, type TestServer } from '../support/server.js';

const OPERATOR = 'operator-token-for-tests-0123456789';
const op = { headers: { authorization: `Bearer ${OPERATOR}` } };

describe('the operator ban list', () => {
  let srv: TestServer | undefined;
  afterEach(async () => { await srv?.close(); srv = undefined; });

  it('needs OPERATOR_TOKEN: off without one, 401 with a wrong one', async () => {
    srv = await startServer();
    expect((await http(srv.url, 'GET', '/admin/bans', op)).json).toMatchObject({ error: { code: 'NOT_SUPPORTED' } });
    await srv.close();
    srv = await startServer({ operatorToken: OPERATOR });
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${OPERATOR}x` }] as Record<string, string>[]) {
      const res = await http(srv.url, 'GET', '/admin/bans', { headers });
      expect(res.status).toBe(401);
      expect(res.json).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    }
    const bad = await http(srv.url, 'POST', '/admin/bans/0x123', op);
    expect(bad.json).toMatchObject({ error: { code: 'INVALID_FIELD' } });
  });

  it('a banned address can neither sign in nor send on either face, its connections close with 4203, and the ban survives a restart', async () => {
    srv = await startServer({ operatorToken: OPERATOR });
    const mallory = makeIdentity();
    const bob = makeIdentity();
    const token = await login(srv.url, mallory);
    const ws = await WsClient.open(srv.wsUrl, token);
    const im = await ImClient.open(imUrl(srv.wsUrl), token);

    const ban = await http(srv.url, 'POST', `/admin/bans/${mallory.address}`, { ...op, body: { reason: 'spam' } });
    expect(ban.status).toBe(200);
    expect(ban.json).toMatchObject({ address: mallory.address.toLowerCase(), reason: 'spam', createdAt: expect.any(Number) });
    expect(await ws.closed).toBe(4203);
    expect(await im.closed).toBe(4203);

    const refusedSend = await http(srv.url, 'POST', '/message/send', { body: signedMessage(mallory, { receiver: bob.address }) });
    expect(refusedSend.status).toBe(403);
    expect(refusedSend.json).toMatchObject({ error: { code: 'BANNED' } });
    expect((await http(srv.url, 'GET', '/chats/list', { token })).json).toMatchObject({ error: { code: 'BANNED' } });
    const nonce = ((await http(srv.url, 'GET', '/auth/nonce')).json as { nonce: string }).nonce;
    const message = siweText(srv.url, mallory.address, nonce);
    expect((await http(srv.url, 'POST', '/auth/login', { body: { message, signature: mallory.wallet.signMessageSync(message) } })).json)
      .toMatchObject({ error: { code: 'BANNED' } });
    const again = new WebSocket(`${srv.wsUrl}?token=${token}`);
    expect(await new Promise((r) => again.on('close', r))).toBe(4203);
    const againIm = await ImClient.open(imUrl(srv.wsUrl));
    expect(await againIm.err(1, { 0: token })).toBe('BANNED');
    expect(await againIm.closed).toBe(4203);

    // A bystander is not affected; a /ws send of the banned sender's message is refused too.
    const bobWs = await WsClient.open(srv.wsUrl, await login(srv.url, bob));
    bobWs.send({ type: 'send', ref: 'x', message: signedMessage(mallory, { receiver: bob.address }) });
    expect(await bobWs.next((f) => f['type'] === 'error')).toMatchObject({ ref: 'x', error: { code: 'BANNED' } });
    expect((await http(srv.url, 'POST', '/message/send', { body: signedMessage(bob, { receiver: mallory.address }) })).status).toBe(200);
    bobWs.close();
    expect((await srv.app.store.listUserEvents(mallory.address.toLowerCase(), 10, 0)).filter((e) => e.sender === mallory.address.toLowerCase())).toEqual([]);

    const list = await http(srv.url, 'GET', '/admin/bans', op);
    expect(list.json).toEqual([{ address: mallory.address.toLowerCase(), reason: 'spam', createdAt: expect.any(Number) }]);

    // Persisted: a new app on the same data directory still refuses the address.
    const dataDir = srv.dataDir;
    await srv.app.close();
    const { buildApp } = await import('../../src/app.js');
    const { testConfig } = await import('../../src/config/config.js');
    const { createLogger } = await import('../../src/log/logger.js');
    const app2 = buildApp(testConfig({ port: 0, host: '127.0.0.1', dataDir, verifyWorkers: 1, sqliteSynchronous: 'NORMAL', chain: 'none', archiveEnabled: false, operatorToken: OPERATOR }), createLogger('silent'));
    const port = await app2.listen();
    const url = `http://127.0.0.1:${port}`;
    try {
      expect((await http(url, 'POST', '/message/send', { body: signedMessage(mallory, { receiver: bob.address }) })).json).toMatchObject({ error: { code: 'BANNED' } });
      expect((await http(url, 'DELETE', `/admin/bans/${mallory.address}`, op)).status).toBe(204);
      expect((await http(url, 'DELETE', `/admin/bans/${mallory.address}`, op)).json).toMatchObject({ error: { code: 'NOT_FOUND' } });
      expect((await http(url, 'POST', '/message/send', { body: signedMessage(mallory, { receiver: bob.address }) })).status).toBe(200);
      expect((await http(url, 'GET', '/chats/list', { token })).status).toBe(200);
    } finally {
      await app2.close();
    }
  });

  it('refuses a banned user\'s /im SEND on a connection that raced the ban', async () => {
    srv = await startServer({ operatorToken: OPERATOR });
    const mallory = makeIdentity();
    const bob = makeIdentity();
    const im = await ImClient.open(imUrl(srv.wsUrl), await login(srv.url, mallory));
    // The ban list says banned, but this connection was not closed (as on another process before its reload).
    (srv.app.bans as unknown as { banned: Map<string, unknown> }).banned.set(mallory.address.toLowerCase(), { address: mallory.address.toLowerCase(), reason: '', createdAt: 0 });
    const cid = `dm:${[mallory.address.toLowerCase(), bob.address.toLowerCase()].sort().join(':')}`;
    expect(await im.err(3, { 1: cid, 2: 1, 7: { 0: 'hi' } })).toBe('BANNED');
    im.close();
  });

  it('is managed from the command line too (npm run admin)', async () => {
    srv = await startServer({ operatorToken: OPERATOR });
    const who = makeIdentity();
    const run = (...args: string[]): Promise<{ stdout: string }> => promisify(execFile)('npx', ['tsx', 'scripts/admin.ts', '--url', srv?.url ?? '', ...args], {
      env: { ...process.env, OPERATOR_TOKEN: OPERATOR }, timeout: 60_000,
    });
    expect(JSON.parse((await run('ban', who.address, 'too', 'many', 'links')).stdout)).toMatchObject({ address: who.address.toLowerCase(), reason: 'too many links' });
    expect(srv.app.bans.isBanned(who.address)).toBe(true);
    expect(JSON.parse((await run('bans')).stdout)).toHaveLength(1);
    await run('unban', who.address);
    expect(srv.app.bans.isBanned(who.address)).toBe(false);
    await expect(run('unban', who.address)).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining('NOT_FOUND') });
  }, 120_000);
});
