import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE_CODES } from '../../src/errors/catalogue.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

const documented = new Set<number>(Object.values(CLOSE_CODES).map((c) => c.code));

/** Opens a socket and resolves with the close code it ends with (after `act`). */
async function closeCodeOf(url: string, act: (ws: WebSocket) => void, opts: WebSocket.ClientOptions = {}): Promise<number> {
  const ws = new WebSocket(url, opts);
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  act(ws);
  return closed;
}

/** A raw WebSocket frame as a client must not send it: unmasked (RFC 6455 5.1: the server closes with 1002). */
const unmaskedText = Buffer.from([0x81, 0x02, 0x68, 0x69]);

/**
 * Issue 12: a /ws text frame with invalid UTF-8 closed with 1007, which docs/errors.md did not list. Every
 * close code a client can see is in CLOSE_CODES (and so in the generated table); these tests make the
 * server close with each one it sends and check it is documented.
 */
describe('close codes of /ws and /im', () => {
  let srv: TestServer;
  let token: string;
  beforeAll(async () => {
    srv = await startServer({ maxBodyBytes: 4096, imMaxFrameBytes: 4096, wsMaxFramesPerSec: 20, wsHeartbeatMs: 300 });
    token = await login(srv.url, makeIdentity());
  });
  afterAll(async () => { await srv.close(); });

  const ws = (): string => `${srv.wsUrl}?token=${encodeURIComponent(token)}`;
  const im = (): string => imUrl(srv.wsUrl);
  const expectDocumented = (code: number, expected: number): void => {
    expect(code).toBe(expected);
    expect(documented.has(code), `close ${code} is not in CLOSE_CODES`).toBe(true);
  };

  it('1007 for a text frame that is not UTF-8, on both faces', async () => {
    expectDocumented(await closeCodeOf(ws(), (s) => s.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: false })), 1007);
    expectDocumented(await closeCodeOf(im(), (s) => s.send(Buffer.from([0xc3, 0x28]), { binary: false })), 1007);
  });

  it('1009 for a frame over the size limit, on both faces', async () => {
    expectDocumented(await closeCodeOf(ws(), (s) => s.send('x'.repeat(5000))), 1009);
    expectDocumented(await closeCodeOf(im(), (s) => s.send(Buffer.alloc(5000))), 1009);
  });

  it('1002 for a frame that breaks the protocol (unmasked), on both faces', async () => {
    const raw = (s: WebSocket): void => { (s as unknown as { _socket: import('node:net').Socket })._socket.write(unmaskedText); };
    expectDocumented(await closeCodeOf(ws(), raw), 1002);
    expectDocumented(await closeCodeOf(im(), raw), 1002);
  });

  it('4003 for a binary frame on /ws; 4001 for a bad token on both faces', async () => {
    expectDocumented(await closeCodeOf(ws(), (s) => s.send(Buffer.from([1, 2]))), 4003);
    expectDocumented(await closeCodeOf(`${srv.wsUrl}?token=nope`, () => undefined), 4001);
    const c = await ImClient.open(im());
    await c.request(1, { 0: 'nope' });
    expectDocumented(await c.closed, 4001);
  });

  it('4002 after logout, on both faces', async () => {
    const t = await login(srv.url, makeIdentity());
    const a = await WsClient.open(srv.wsUrl, t);
    const b = await ImClient.open(im(), t);
    expect((await http(srv.url, 'POST', '/auth/logout', { token: t })).status).toBe(204);
    expectDocumented(await a.closed, 4002);
    expectDocumented(await b.closed, 4002);
  });

  it('4029 past WS_MAX_FRAMES_PER_SEC; 4009 for a peer that answers no ping', async () => {
    expectDocumented(await closeCodeOf(ws(), (s) => { for (let i = 0; i < 50; i++) s.send('{"type":"ping"}'); }), 4029);
    expectDocumented(await closeCodeOf(im(), () => undefined, { autoPong: false }), 4009);
  });

  it('1001 when the server shuts down', async () => {
    const other = await startServer();
    const t = await login(other.url, makeIdentity());
    const a = await WsClient.open(other.wsUrl, t);
    const b = await ImClient.open(imUrl(other.wsUrl), t);
    await other.close();
    expectDocumented(await a.closed, 1001);
    expectDocumented(await b.closed, 1001);
  });

  it('lists 1006, what a client sees when the TCP connection ends without a close frame, and says whether to reconnect for every code', () => {
    expect(documented.has(1006)).toBe(true);
    for (const c of Object.values(CLOSE_CODES)) expect(typeof c.reconnect).toBe('boolean');
  });
});
