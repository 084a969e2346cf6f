import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { testConfig } from '../../src/config/config.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, WsClient } from '../support/server.js';

/** The value of one sample in Prometheus text (`name{labels} value`), or undefined. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** A store whose chat list fails unexpectedly, so a request ends in INTERNAL and is logged. */
class BrokenChatList extends SqliteStore {
  override async listChats(): Promise<never> {
    throw new Error('disk on fire');
  }
}

describe('operations: /metrics, request and connection ids', () => {
  const lines: Record<string, unknown>[] = [];
  let app: App;
  let url: string;
  let dataDir: string;
  let alice: Identity;
  let bob: Identity;
  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(tmpdir(), 'rim-metrics-'));
    const sink = new Writable({ write(chunk: Buffer, _enc, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done(); } });
    const log = pino({ level: 'debug' }, sink);
    const config = testConfig({
      port: 0, host: '127.0.0.1', dataDir, verifyWorkers: 1, sqliteSynchronous: 'NORMAL', chain: 'none', archiveEnabled: false,
      requireName: false, metricsToken: 'scrape-secret', wsAuthTimeoutMs: 300,
    });
    app = buildApp(config, log, { store: new BrokenChatList({ file: path.join(dataDir, 's.sqlite'), synchronous: 'NORMAL' }), metrics: new Metrics() });
    url = `http://127.0.0.1:${await app.listen()}`;
    [alice, bob] = [makeIdentity(), makeIdentity()];
  });
  afterAll(async () => {
    await app.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const scrape = async (): Promise<string> => (await http(url, 'GET', '/metrics', { headers: { authorization: 'Bearer scrape-secret' } })).text;

  it('refuses /metrics without the operator token, serves it with', async () => {
    const none = await http(url, 'GET', '/metrics');
    expect(none.status).toBe(401);
    expect(none.json).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    expect((await http(url, 'GET', '/metrics', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const ok = await fetch(`${url}/metrics`, { headers: { authorization: 'Bearer scrape-secret' } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await ok.text();
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_heap_size_used_bytes');
    // the collectors that walk every handle and descriptor at each scrape are left out
    expect(text).not.toMatch(/^(process_open_fds|nodejs_active_handles|nodejs_active_requests|nodejs_active_resources)/m);
    expect(text).toContain('process_max_fds');
  });

  it('counts sends accepted and refused by code on each face, commits, fan-out and connections', async () => {
    const bobToken = await login(url, bob);
    const bobWs = await WsClient.open(`${url.replace('http', 'ws')}/ws`, bobToken);
    const bobIm = await ImClient.open(imUrl(`${url.replace('http', 'ws')}/ws`), bobToken);
    try {
      const before = await scrape();
      expect(sample(before, 'rim_connections{face="ws",state="authenticated"}')).toBe(1);
      expect(sample(before, 'rim_connections{face="im",state="authenticated"}')).toBe(1);
      // REST: one accepted, one BAD_JSON, one ID_MISMATCH
      expect((await http(url, 'POST', '/message/send', { body: signedMessage(alice, { receiver: bob.address }) })).status).toBe(200);
      expect((await http(url, 'POST', '/message/send', { raw: '{not json' })).status).toBe(400);
      const bad = { ...signedMessage(alice, { receiver: bob.address }), payload: 'changed after signing' };
      expect((await http(url, 'POST', '/message/send', { body: bad })).status).toBe(400);
      // /ws send frame: one accepted
      bobWs.send({ type: 'send', ref: 'r1', message: signedMessage(bob, { receiver: alice.address }) });
      await bobWs.next((f) => f['type'] === 'sent');
      // /im: one accepted, one refused (FORBIDDEN: not a participant)
      const dm = `dm:${[alice.address.toLowerCase(), bob.address.toLowerCase()].sort().join(':')}`;
      await bobIm.ok(3, { 1: dm, 2: 1, 7: { 0: 'hi' } });
      const stranger = `dm:0x${'1'.repeat(40)}:0x${'2'.repeat(40)}`;
      expect(await bobIm.err(3, { 1: stranger, 2: 1, 7: { 0: 'hi' } })).toBe('FORBIDDEN');
      const text = await scrape();
      expect(sample(text, 'rim_sends_accepted_total{face="rest"}')).toBe(1);
      expect(sample(text, 'rim_sends_refused_total{face="rest",code="BAD_JSON"}')).toBe(1);
      expect(sample(text, 'rim_sends_refused_total{face="rest",code="ID_MISMATCH"}')).toBe(1);
      expect(sample(text, 'rim_sends_accepted_total{face="ws"}')).toBe(1);
      expect(sample(text, 'rim_sends_accepted_total{face="im"}')).toBe(1);
      expect(sample(text, 'rim_sends_refused_total{face="im",code="FORBIDDEN"}')).toBe(1);
      expect(sample(text, 'rim_commit_batch_size_count')).toBeGreaterThanOrEqual(3);
      expect(sample(text, 'rim_commit_seconds_count')).toBeGreaterThanOrEqual(3);
      // Bob's two devices got the REST message: at least one push reached 2 connections.
      expect(sample(text, 'rim_push_recipients_bucket{le="1"}')).toBeLessThan(sample(text, 'rim_push_recipients_count') as number);
      expect(text).toContain('rim_archive_up 0');
    } finally {
      bobWs.close();
      bobIm.close();
    }
  });

  it('counts server-side closes by face and reason', async () => {
    const c = new WsClient(new WebSocket(`${url.replace('http', 'ws')}/ws`));
    expect(await c.closed).toBe(4001); // no auth within WS_AUTH_TIMEOUT_MS
    expect(sample(await scrape(), 'rim_ws_closes_total{face="ws",reason="UNAUTHENTICATED"}')).toBe(1);
  });

  it('echoes a well-formed X-Request-Id, replaces a malformed one, and logs with it', async () => {
    const kept = await fetch(`${url}/health`, { headers: { 'x-request-id': 'trace-42.a:b' } });
    expect(kept.headers.get('x-request-id')).toBe('trace-42.a:b');
    const replaced = await fetch(`${url}/health`, { headers: { 'x-request-id': 'bad id with spaces' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const fresh = await fetch(`${url}/health`);
    expect(fresh.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const token = await login(url, alice);
    const res = await fetch(`${url}/chats/list`, { headers: { authorization: `Bearer ${token}`, 'x-request-id': 'broken-list-1' } });
    expect(res.status).toBe(500);
    expect(res.headers.get('x-request-id')).toBe('broken-list-1');
    expect(lines.some((l) => l['reqId'] === 'broken-list-1' && l['level'] === 50)).toBe(true);
  });

  it('gives every WebSocket connection an id (the upgrade request\'s) carried by its log lines', async () => {
    const token = await login(url, alice);
    const ws = await WsClient.open(`${url.replace('http', 'ws')}/ws`, token, { headers: { 'x-request-id': 'conn-ws-7' } });
    const im = new ImClient(new WebSocket(imUrl(`${url.replace('http', 'ws')}/ws`), { headers: { 'x-request-id': 'conn-im-7' } }));
    await new Promise((r) => im.ws.once('open', r));
    await im.ok(1, { 0: token });
    ws.close();
    im.close();
    await Promise.all([ws.closed, im.closed]);
    await expect.poll(() => lines.filter((l) => l['conn'] === 'conn-ws-7').map((l) => l['msg'])).toEqual(['connection opened', 'authenticated', 'connection closed']);
    await expect.poll(() => lines.filter((l) => l['conn'] === 'conn-im-7').map((l) => l['msg'])).toEqual(['connection opened', 'authenticated', 'connection closed']);
    expect(lines.find((l) => l['conn'] === 'conn-im-7' && l['msg'] === 'connection closed')?.['user']).toBe(alice.address.toLowerCase());
  });
});

describe('Metrics (unit)', () => {
  it('counts slow-consumer cuts per face and maps unknown codes to INTERNAL', async () => {
    const m = new Metrics({ defaultMetrics: false });
    m.socket('im').closed('SLOW_CONSUMER');
    m.socket('im').closed('SLOW_CONSUMER');
    m.socket('ws').closed('RATE_LIMITED');
    m.sends('rest').refused('NO_SUCH_CODE');
    m.rpc('eth_call', 0.01);
    m.rpc('eth_weird', 0.02, 'transport');
    const { body } = await m.text();
    expect(sample(body, 'rim_slow_consumer_cuts_total{face="im"}')).toBe(2);
    expect(sample(body, 'rim_slow_consumer_cuts_total{face="ws"}')).toBe(0);
    expect(sample(body, 'rim_ws_closes_total{face="ws",reason="RATE_LIMITED"}')).toBe(1);
    expect(sample(body, 'rim_sends_refused_total{face="rest",code="INTERNAL"}')).toBe(1);
    expect(sample(body, 'rim_relation_rpc_seconds_count{method="eth_call"}')).toBe(1);
    expect(sample(body, 'rim_relation_rpc_errors_total{method="other",kind="transport"}')).toBe(1);
    // A second scrape reports the same totals (counters are copied, not added twice).
    expect(sample((await m.text()).body, 'rim_slow_consumer_cuts_total{face="im"}')).toBe(2);
  });
});
