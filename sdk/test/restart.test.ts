import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { buildApp, type App } from '../../src/app.js';
import { testConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/log/logger.js';
import { DevEncryptor } from '../src/encryptor.js';
import { RelationClient } from '../src/client.js';
import type { DisconnectInfo, WebSocketCtor } from '../src/live.js';
import type { RelationMessage } from '../src/message.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage } from '../src/storage.js';
import { until } from './support.js';

const live = { heartbeatMs: 2_000, backoffBaseMs: 50, backoffCapMs: 300 };
const KEY_A = '0x' + 'a1'.repeat(32);
const KEY_B = '0x' + 'b2'.repeat(32);

/** A server (no chain, names not required) that can be stopped and started again on the same port and data. */
class Restartable {
  app: App | null = null;
  port = 0;
  readonly dataDir = mkdtempSync(path.join(tmpdir(), 'rim-sdk-'));
  constructor(private readonly extra: Record<string, unknown> = {}) {}
  get url(): string { return `http://127.0.0.1:${this.port}`; }
  async start(): Promise<void> {
    const config = testConfig({ port: this.port, host: '127.0.0.1', dataDir: this.dataDir, verifyWorkers: 1, chain: 'none', requireName: false, archiveEnabled: false, allowDevPlaintext: true, sqliteSynchronous: 'NORMAL', ...this.extra });
    this.app = buildApp(config, createLogger('silent'));
    this.port = await this.app.listen();
  }
  async stop(): Promise<void> {
    await this.app?.close();
    this.app = null;
  }
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

function client(base: string, key: string, storage = new MemoryStorage()): RelationClient {
  return new RelationClient({ encryptor: new DevEncryptor(), baseUrl: base, signer: privateKeySigner(key), storage, WebSocket: WebSocket as unknown as WebSocketCtor, live });
}

describe('outbox across a server restart', () => {
  const srv = new Restartable();
  const clients: RelationClient[] = [];
  beforeAll(() => srv.start());
  afterAll(async () => {
    for (const c of clients) c.close();
    await srv.dispose();
  });

  it('serves the development-only /dev/demo only with the embedded demo chain (not here)', async () => {
    const r = await fetch(`${srv.url}/dev/demo`);
    expect(r.status).toBe(404);
    expect(await r.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });

  it('messages sent while the server is down are delivered once it is back, each exactly once', async () => {
    const a = client(srv.url, KEY_A);
    const b = client(srv.url, KEY_B);
    clients.push(a, b);
    const gotB: number[] = [];
    b.on('message', (m) => gotB.push(m.message.seq));
    const disconnects: DisconnectInfo[] = [];
    a.on('disconnected', (d) => disconnects.push(d));
    await Promise.all([a.start(), b.start()]);
    await until(() => a.connection.connected && b.connection.connected, 20_000, 'connected');
    await a.send(b.address, 'before');

    await srv.stop();
    await until(() => disconnects.length > 0, 10_000, 'disconnect seen');
    expect(disconnects[0]).toMatchObject({ willReconnect: true });
    const pending = [a.send(b.address, 'during 1'), a.send(b.address, 'during 2'), a.send(b.address, 'during 3')];
    await until(() => a.outbox.pending().length === 3, 5_000, 'queued');
    await new Promise((r) => setTimeout(r, 300));
    await srv.start();
    const results = await Promise.all(pending);
    expect(results.map((r) => r.seq)).toEqual([2, 3, 4]);
    await until(() => gotB.includes(4), 20_000, 'b got them all');
    const list = await b.rest.list({ chatId: a.address });
    expect(list.map((m) => m.seq).sort()).toEqual([1, 2, 3, 4]);
    expect(a.outbox.pending()).toEqual([]);
  }, 60_000);

  it('a message left in the outbox by a closed client is resent by the next one (same storage) without a second copy', async () => {
    const storage = new MemoryStorage();
    const first = client(srv.url, KEY_A, storage);
    const signed: RelationMessage = await first.prepare(privateKeySigner(KEY_B).address, 'kept across reloads');
    // Sent once already (acknowledged, but the answer "lost"), and still in the stored outbox.
    const firstAnswer = await first.rest.send(signed);
    await storage.set(`outbox:${srv.url}:${first.address.toLowerCase()}`, JSON.stringify([signed]));
    first.close();
    const second = client(srv.url, KEY_A, storage);
    clients.push(second);
    const sent = new Promise((resolve) => second.outbox.on('sent', (s) => resolve(s.result)));
    await second.start();
    expect(await sent).toEqual(firstAnswer);
    const list = await second.rest.list({ chatId: signed.receiver });
    expect(list.filter((m) => 'id' in m && m.id === signed.id)).toHaveLength(1);
  }, 30_000);
});

describe('token expiry on a live connection', () => {
  const srv = new Restartable({ tokenTtlMs: 1500 });
  let c: RelationClient;
  beforeAll(() => srv.start());
  afterAll(async () => {
    c?.close();
    await srv.dispose();
  });

  it('a token that expires closes the socket with 4002; the client logs in again and carries on', async () => {
    c = client(srv.url, KEY_A);
    const disconnects: DisconnectInfo[] = [];
    let connected = 0;
    c.on('disconnected', (d) => disconnects.push(d));
    c.on('connected', () => connected++);
    await c.start();
    await until(() => connected >= 3, 20_000, 'two renewals');
    expect(disconnects.filter((d) => d.code === 4002).length).toBeGreaterThanOrEqual(2);
    expect(disconnects.every((d) => d.willReconnect)).toBe(true);
    expect(c.connection.state).not.toBe('closed');
  }, 30_000);
});
