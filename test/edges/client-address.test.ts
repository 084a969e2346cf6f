import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRaw } from '../support/raw.js';
import { proxyV2 } from '../support/proxy-v2.js';
import { startServer, type TestServer } from '../support/server.js';

/**
 * TRUSTED_PROXIES: the client address every limit counts is the TCP peer, unless the peer is a trusted
 * proxy; then it is the source of its PROXY v2 header, or the right-most untrusted X-Forwarded-For hop.
 * Connections come from 127.0.0.1 (the "proxy") and from 127.0.0.2 (a client that is no proxy).
 */
interface Held { status: number; head: string; socket: Socket }

/** Opens a connection from `from`, sends `bytes`, and resolves with the answer's status once its head arrived (the connection stays open). */
function open(port: number, bytes: Buffer | string, from = '127.0.0.1'): Promise<Held> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: from });
    let got = '';
    const timer = setTimeout(() => reject(new Error(`no answer: ${JSON.stringify(got)}`)), 10_000);
    socket.on('connect', () => socket.write(bytes));
    socket.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('\r\n\r\n')) {
        clearTimeout(timer);
        resolve({ status: parseRaw(got).status, head: got, socket });
      }
    });
    socket.on('error', reject);
  });
}

const nonce = (xff?: string): string => `GET /auth/nonce HTTP/1.1\r\nHost: x\r\n${xff ? `X-Forwarded-For: ${xff}\r\n` : ''}Connection: close\r\n\r\n`;
const upgrade = (path: string, xff?: string): string => `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`
  + `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${xff ? `X-Forwarded-For: ${xff}\r\n` : ''}\r\n`;
const proxied = (src: string, http: string): Buffer => Buffer.concat([proxyV2(src, 40000, '127.0.0.1', 8080), Buffer.from(http)]);

async function statuses(port: number, requests: (Buffer | string)[], from?: string): Promise<number[]> {
  const out: number[] = [];
  for (const r of requests) {
    const h = await open(port, r, from);
    h.socket.destroy();
    out.push(h.status);
  }
  return out;
}

describe('client addresses behind trusted proxies (TRUSTED_PROXIES)', () => {
  let srv: TestServer;
  let port: number;
  const start = async (trustedProxies: string[], extra: Record<string, unknown> = {}): Promise<void> => {
    srv = await startServer({ rateLimitExempt: [], rateNoncePerMin: 3, trustedProxies, ...extra });
    port = Number(new URL(srv.url).port);
  };
  afterEach(async () => { await srv?.close(); });

  it('ignores X-Forwarded-For and PROXY headers when no proxy is trusted (the default)', async () => {
    await start([]);
    const spoofed = ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4'].map((a) => nonce(a));
    expect(await statuses(port, spoofed)).toEqual([200, 200, 200, 429]);
    // A PROXY header from a peer that is no trusted proxy is not HTTP: refused, nothing counted.
    const h = await open(port, proxied('198.51.100.9', nonce()));
    expect(h.status).toBe(400);
    h.socket.destroy();
  });

  it('limits each client named by a trusted proxy\'s X-Forwarded-For (right-most untrusted hop), and never believes anyone else', async () => {
    await start(['127.0.0.1']);
    // Four clients behind the proxy: none is limited by the others.
    expect(await statuses(port, ['203.0.113.1', '203.0.113.2', '203.0.113.3', '203.0.113.4'].map((a) => nonce(a)))).toEqual([200, 200, 200, 200]);
    // One client that writes its own X-Forwarded-For: the proxy appends the real address, which counts.
    const forged = ['10.9.9.1', '10.9.9.2', '10.9.9.3', '10.9.9.4'].map((f) => nonce(`${f}, 203.0.113.50`));
    expect(await statuses(port, forged)).toEqual([200, 200, 200, 429]);
    // Hops that are trusted proxies themselves are skipped.
    expect(await statuses(port, [nonce('203.0.113.50, 127.0.0.1')])).toEqual([429]);
    // 127.0.0.2 is no proxy: its X-Forwarded-For is ignored and it is limited as itself.
    expect(await statuses(port, ['192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4'].map((a) => nonce(a)), '127.0.0.2')).toEqual([200, 200, 200, 429]);
  });

  it('limits each client named by a trusted proxy\'s PROXY v2 header; an untrusted peer may not send one', async () => {
    await start(['127.0.0.1/32']);
    const a = Array.from({ length: 4 }, () => proxied('203.0.113.9', nonce()));
    expect(await statuses(port, a)).toEqual([200, 200, 200, 429]);
    expect(await statuses(port, [proxied('2001:db8::9', nonce())])).toEqual([200]);
    // Without a header the trusted proxy is answered as plain HTTP (its own health checks).
    expect(await statuses(port, ['GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'])).toEqual([200]);
    expect(await statuses(port, [proxied('203.0.113.10', nonce())], '127.0.0.2')).toEqual([400]);
  });

  it('counts both WebSocket upgrades against the client\'s address: PROXY v2 and X-Forwarded-For', async () => {
    await start(['127.0.0.1'], { maxUnauthConnectionsPerAddress: 2 });
    for (const [i, path] of ['/ws', '/im'].entries()) {
      const a = (n: number): string => `203.0.11${3 - i}.${n}`; // other clients for each face
      const held: Held[] = [];
      // PROXY v2: the cap counts the connection as the header's source.
      held.push(await open(port, proxied(a(20), upgrade(path))), await open(port, proxied(a(20), upgrade(path))));
      expect(held.map((h) => h.status)).toEqual([101, 101]);
      const third = await open(port, proxied(a(20), upgrade(path)));
      expect(third.status).toBe(429);
      const other = await open(port, proxied(a(21), upgrade(path)));
      expect(other.status).toBe(101);
      // X-Forwarded-For: the proxy's own connection is not capped, the upgraded one counts as the client's.
      held.push(await open(port, upgrade(path, a(30))), await open(port, upgrade(path, a(30))));
      expect(held.slice(2).map((h) => h.status)).toEqual([101, 101]);
      expect((await open(port, upgrade(path, a(30)))).status).toBe(429);
      expect((await open(port, upgrade(path, a(31)))).status).toBe(101);
      for (const h of [...held, third, other]) h.socket.destroy();
    }
  });
});
