import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity } from '../support/messages.js';
import { login, startServer, WsClient, type TestServer } from '../support/server.js';

/** docs/errors.md: `{"type": "error", "ref": <your ref or null>, …}` — the key is always there. */
describe('/ws answers always carry ref', () => {
  let srv: TestServer;
  let token: string;
  const clients: WsClient[] = [];
  beforeAll(async () => {
    srv = await startServer();
    token = await login(srv.url, makeIdentity());
  });
  afterAll(async () => {
    for (const c of clients) c.close();
    await srv.close();
  });
  const open = async (t?: string): Promise<WsClient> => {
    const c = await WsClient.open(srv.wsUrl, t);
    clients.push(c);
    return c;
  };

  it('sends "ref": null in the error frame of a frame without a usable ref', async () => {
    const c = await open(token);
    c.send('{not json');
    const bad = await c.next((f) => f['type'] === 'error');
    expect(bad).toHaveProperty('ref', null);
    expect(bad).toMatchObject({ error: { code: 'BAD_JSON' } });
    c.send({ type: 'teleport' });
    expect(await c.next((f) => f['type'] === 'error')).toEqual({ type: 'error', ref: null, error: { code: 'INVALID_FIELD', message: 'unknown frame type' } });
    c.send({ type: 'teleport', ref: 42 });
    expect(await c.next((f) => f['type'] === 'error')).toHaveProperty('ref', null);
    c.send({ type: 'teleport', ref: 'x'.repeat(65) });
    expect(await c.next((f) => f['type'] === 'error')).toHaveProperty('ref', null);
    c.send({ type: 'send', message: { nope: true } });
    expect(await c.next((f) => f['type'] === 'error')).toMatchObject({ ref: null, error: { code: 'UNKNOWN_FIELD' } });
    c.send({ type: 'teleport', ref: 'kept' });
    expect(await c.next((f) => f['type'] === 'error')).toHaveProperty('ref', 'kept');
  });

  it('sends "ref": null in the error before closing an unauthenticated connection', async () => {
    const c = await open();
    c.send({ type: 'auth', token: 'unknown' });
    expect(await c.next((f) => f['type'] === 'error')).toMatchObject({ ref: null, error: { code: 'UNAUTHENTICATED' } });
    expect(await c.closed).toBe(4001);
  });

  it('sends "ref": null in pong and resumed when the request had none', async () => {
    const c = await open(token);
    c.send({ type: 'ping' });
    expect(await c.next((f) => f['type'] === 'pong')).toHaveProperty('ref', null);
    c.send({ type: 'resume', cursors: {} });
    expect(await c.next((f) => f['type'] === 'resumed')).toEqual({ type: 'resumed', ref: null, chats: {}, epoch: expect.stringMatching(/^[0-9a-f]{32}$/) });
  });
});
