import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { makeIdentity } from '../support/messages.js';
import { http, login, startServer, type TestServer } from '../support/server.js';

const EXT = 'chrome-extension://abcdefghijklmnopabcdefghijklmnop';

/** Resolves with the HTTP status of a refused upgrade, or 101 when the socket opened. */
function upgradeStatus(url: string, origin: string | undefined): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, origin ? { origin } : {});
    ws.on('open', () => { ws.close(); resolve(101); });
    ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.on('error', () => undefined);
  });
}

describe('browser access: CORS allowlist and the Origin check', () => {
  let srv: TestServer;
  afterEach(async () => { await srv?.close(); });

  it('by default allows clients without Origin and same-origin pages, and refuses other origins on REST and both WebSocket faces', async () => {
    srv = await startServer();
    const host = new URL(srv.url).host;
    expect((await http(srv.url, 'GET', '/health')).status).toBe(200);
    const same = await fetch(`${srv.url}/health`, { headers: { origin: `http://${host}` } });
    expect(same.status).toBe(200);
    expect(same.headers.get('access-control-allow-origin')).toBeNull();
    const cross = await http(srv.url, 'GET', '/health', { headers: { origin: 'https://evil.example' } });
    expect(cross.status).toBe(403);
    expect(cross.json).toMatchObject({ error: { code: 'ORIGIN_NOT_ALLOWED' } });
    const send = await http(srv.url, 'POST', '/message/send', { raw: '{}', headers: { origin: EXT } });
    expect(send.json).toMatchObject({ error: { code: 'ORIGIN_NOT_ALLOWED' } });
    for (const face of ['/ws', '/im']) {
      const url = srv.wsUrl.replace(/\/ws$/, face);
      expect(await upgradeStatus(url, undefined)).toBe(101);
      expect(await upgradeStatus(url, `http://${host}`)).toBe(101);
      expect(await upgradeStatus(url, 'https://evil.example')).toBe(403);
      expect(await upgradeStatus(url, EXT)).toBe(403);
    }
  });

  it('allows the listed origins (web and chrome-extension) with CORS headers and preflight, never with credentials', async () => {
    srv = await startServer({ corsOrigins: ['https://app.example', EXT] });
    const token = await login(srv.url, makeIdentity());
    const pre = await fetch(`${srv.url}/chats/list`, { method: 'OPTIONS', headers: { origin: EXT, 'access-control-request-method': 'GET', 'access-control-request-headers': 'authorization' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe(EXT);
    expect(pre.headers.get('access-control-allow-headers')).toContain('authorization');
    expect(pre.headers.get('access-control-allow-credentials')).toBeNull();
    const res = await fetch(`${srv.url}/chats/list`, { headers: { origin: 'https://app.example', authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('vary')).toContain('Origin');
    expect((await http(srv.url, 'GET', '/health', { headers: { origin: 'https://other.example' } })).status).toBe(403);
    expect(await upgradeStatus(srv.wsUrl, EXT)).toBe(101);
    expect(await upgradeStatus(srv.wsUrl.replace(/\/ws$/, '/im'), 'https://app.example')).toBe(101);
    expect(await upgradeStatus(srv.wsUrl, 'https://other.example')).toBe(403);
  });

  it('allows any origin with "*", as a plain wildcard', async () => {
    srv = await startServer({ corsOrigins: ['*'] });
    const res = await fetch(`${srv.url}/health`, { headers: { origin: 'https://anything.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('*');
    expect(await upgradeStatus(srv.wsUrl, 'https://anything.example')).toBe(101);
  });
});
