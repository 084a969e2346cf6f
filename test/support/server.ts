import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SiweMessage } from 'siwe';
import WebSocket from 'ws';
import { buildApp, type App, type AppOverrides } from '../../src/app.js';
import { testConfig, type Config } from '../../src/config/config.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import type { Identity } from './messages.js';

export interface TestServer {
  app: App;
  url: string;
  wsUrl: string;
  dataDir: string;
  close(): Promise<void>;
}

/** Loopback, which tests and benchmarks exempt from the rate limits themselves (RATE_LIMIT_EXEMPT). */
export const LOOPBACK = ['127.0.0.1', '::1'];

/** Boots the real app on port 0 with its own SQLite file in a temporary DATA_DIR. */
export async function startServer(overrides: Partial<Config> = {}, deps: AppOverrides = {}, opts: { log?: Logger } = {}): Promise<TestServer> {
  // A given DATA_DIR (a store built beforehand, e.g. by the archive import) is used as it is.
  const own = overrides.dataDir === undefined;
  const dataDir = overrides.dataDir ?? mkdtempSync(path.join(tmpdir(), 'rim-test-'));
  // Tests talk to the server from loopback in bursts: they exempt it themselves (the default exempts
  // nothing); a test of the limits passes rateLimitExempt: [].
  const config = testConfig({ port: 0, host: '127.0.0.1', verifyWorkers: 1, sqliteSynchronous: 'NORMAL', chain: deps.relations ? 'embedded' : 'none', archiveEnabled: false, rateLimitExempt: LOOPBACK,
    // The SDK's tests still send the development plaintext; a test of the refusal overrides this.
    allowDevPlaintext: true, ...overrides, dataDir });
  const app = buildApp(config, opts.log ?? createLogger('silent'), deps);
  const port = await app.listen();
  return {
    app, dataDir, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/ws`,
    async close() {
      await app.close();
      // A DATA_DIR the caller gave is the caller's (a restart on the same store reuses it).
      if (own) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export async function http(base: string, method: string, p: string, opts: { token?: string; body?: unknown; raw?: string; headers?: Record<string, string> } = {}): Promise<{ status: number; json: unknown; text: string }> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
  let body: string | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) body = JSON.stringify(opts.body);
  if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
  const res = await fetch(base + p, { method, headers, ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: unknown = undefined;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text };
}

export function siweText(base: string, address: string, nonce: string, extra: Partial<SiweMessage> = {}): string {
  const host = new URL(base).host;
  return new SiweMessage({
    domain: host, address, statement: 'Sign in to Relation ONE', uri: base, version: '1', chainId: 1, nonce,
    issuedAt: new Date().toISOString(), ...extra,
  }).prepareMessage();
}

/** SIWE login with the wallet itself; returns the bearer token. */
export async function login(base: string, who: Identity): Promise<string> {
  const { json } = await http(base, 'GET', '/auth/nonce');
  const message = siweText(base, who.address, (json as { nonce: string }).nonce);
  const res = await http(base, 'POST', '/auth/login', { body: { message, signature: who.wallet.signMessageSync(message) } });
  if (res.status !== 200) throw new Error(`login failed: ${res.text}`);
  return (res.json as { token: string }).token;
}

/** A /ws client that records every frame and lets a test wait for the next one matching a predicate. */
export class WsClient {
  /** Frames not yet taken by `next`. */
  readonly frames: Record<string, unknown>[] = [];
  /** Every frame received, in arrival order. */
  readonly all: Record<string, unknown>[] = [];
  private waiters: { pred: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }[] = [];
  closeCode: number | null = null;
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as Record<string, unknown>;
      this.frames.push(f);
      this.all.push(f);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(f)) return true;
        w.resolve(f);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => {
      this.closeCode = code;
      resolve(code);
    }));
  }

  static async open(wsUrl: string, token?: string, opts: WebSocket.ClientOptions = {}): Promise<WsClient> {
    const ws = new WebSocket(token ? `${wsUrl}?token=${encodeURIComponent(token)}` : wsUrl, opts);
    const c = new WsClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    if (token) await c.next((f) => f['type'] === 'ready');
    return c;
  }

  /** Resolves with the first frame (already received or future) matching `pred`. */
  next(pred: (f: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const seen = this.frames.find(pred);
    if (seen) {
      this.frames.splice(this.frames.indexOf(seen), 1);
      return Promise.resolve(seen);
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; got ${JSON.stringify(this.frames).slice(0, 500)}`)), timeoutMs);
      this.waiters.push({ pred, resolve: (f) => {
        clearTimeout(timer);
        this.frames.splice(this.frames.indexOf(f), 1);
        resolve(f);
      } });
    });
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  close(): void {
    this.ws.close();
  }
}
