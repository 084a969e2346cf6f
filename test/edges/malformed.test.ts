import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CATALOGUE } from '../../src/errors/catalogue.js';
import { makeIdentity } from '../support/messages.js';
import { parseRaw, rawExchange, startLoggedServer } from '../support/raw.js';
import { http, login } from '../support/server.js';

/**
 * Issue 12: `/users/%ZZ` answered 500 INTERNAL with a stack at error level for every request, before the
 * token was checked. Every malformed request gets a 4xx catalogue code and a client's mistake is logged
 * below error level, without a stack.
 */
describe('malformed requests', () => {
  let srv: Awaited<ReturnType<typeof startLoggedServer>>;
  let token: string;
  beforeAll(async () => {
    srv = await startLoggedServer({ maxBodyBytes: 4096 });
    token = await login(srv.url, makeIdentity());
  });
  afterAll(async () => { await srv.close(); });

  const noErrorLogged = (): void => {
    const bad = srv.lines.filter((l) => l.level >= 50);
    expect(bad, JSON.stringify(bad).slice(0, 500)).toEqual([]);
  };
  const isCatalogue4xx = (status: number, json: unknown): void => {
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    const code = (json as { error?: { code?: string } } | undefined)?.error?.code;
    expect(code !== undefined && code in ERROR_CATALOGUE, `code ${code}`).toBe(true);
    expect(ERROR_CATALOGUE[code as keyof typeof ERROR_CATALOGUE].http).toBe(status);
  };

  it('answers malformed percent-encoding in a path with 400 BAD_REQUEST, with or without a token, logged at debug', async () => {
    for (const p of ['/users/%ZZ', '/users/%E0%A4%A/friends', '/groups/%E0%A4%A/members', '/groups/%/admins/%ZZ']) {
      for (const t of [undefined, token]) {
        const method = p.includes('admins') ? 'PUT' : 'GET';
        const res = await http(srv.url, method, p, t ? { token: t } : {});
        expect(res.status, p).toBe(400);
        expect(res.json).toMatchObject({ error: { code: 'BAD_REQUEST' } });
      }
    }
    noErrorLogged();
    const refused = srv.lines.filter((l) => l.msg === 'request refused' && l['code'] === 'BAD_REQUEST');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((l) => l.level <= 30 && l.err === undefined)).toBe(true);
  });

  it('answers malformed percent-encoding and numbers in query strings with a 4xx catalogue code', async () => {
    for (const q of ['limit=%ZZ', 'limit=%', 'chatId=%E0%A4%A', 'offset=1e3', 'limit=0x10', 'afterSeq=%31&chatId=%ZZ', 'limit=1&limit=2']) {
      const res = await http(srv.url, 'GET', `/message/list?${q}`, { token });
      isCatalogue4xx(res.status, res.json);
    }
    const send = await http(srv.url, 'POST', '/message/send?%ZZ', { raw: '{' });
    expect(send.json).toMatchObject({ error: { code: 'BAD_JSON' } });
    noErrorLogged();
  });

  it('answers a request line, headers or an upgrade it cannot read with a catalogue code, and keeps serving', async () => {
    const cases: [string, number, string][] = [
      ['GARBAGE\r\n\r\n', 400, 'BAD_REQUEST'],
      ['GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n', 400, 'BAD_REQUEST'],
      [`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
      ['GET http://[ HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 400, 'BAD_REQUEST'],
      ['GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n', 400, 'BAD_REQUEST'],
      ['GET /im HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 400, 'BAD_REQUEST'],
      ['GET /nope HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n', 404, 'NOT_FOUND'],
      ['POST /message/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'BAD_REQUEST'],
    ];
    for (const [bytes, status, code] of cases) {
      const answer = parseRaw(await rawExchange(srv.port, bytes));
      expect(answer.status, bytes.slice(0, 40)).toBe(status);
      expect(answer.json).toMatchObject({ error: { code } });
    }
    expect((await http(srv.url, 'GET', '/health')).status).toBe(200);
    noErrorLogged();
  });

  it('does not log a client that hangs up mid-body as a server error', async () => {
    await rawExchange(srv.port, 'POST /message/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":', 300);
    await rawExchange(srv.port, 'POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"message":', 300);
    expect((await http(srv.url, 'GET', '/health')).status).toBe(200);
    noErrorLogged();
  });
});
