import { afterAll, beforeAll } from 'vitest';
import WebSocket from 'ws';
import { testConfig, type Config } from '../../src/config/config.js';
import { startChainRelations, type StartedRelations } from '../../src/roles/relations/chain/setup.js';
import { startServer, type TestServer } from '../../test/support/server.js';
import { RelationClient } from '../src/client.js';
import type { IncomingMessage, UndecryptableInfo } from '../src/connection.js';
import type { WebSocketCtor, WebSocketLike } from '../src/live.js';
import type { MlsEncryptor } from '../src/mls/mls-encryptor.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage, type KeyValueStorage } from '../src/storage.js';

export interface Demo {
  chain: StartedRelations;
  srv: TestServer;
  keys: Record<'alice' | 'bob' | 'carol' | 'dave', string>;
  dao: string;
  close(): Promise<void>;
}

/** The real server on port 0 over the in-process chain with the demo identities (names, friends, the demo DAO). */
export async function startDemo(overrides: Partial<Config> = {}): Promise<Demo> {
  const chain = await startChainRelations(testConfig({ chain: 'embedded' }));
  const srv = await startServer({ chain: 'embedded', requireName: true, ...overrides }, { relations: chain.reader });
  const ids = chain.demo!.identities;
  const key = (label: string): string => ids.find((i) => i.label === label)!.privateKey;
  return {
    chain, srv, dao: chain.demo!.dao.address,
    keys: { alice: key('alice'), bob: key('bob'), carol: key('carol'), dave: key('dave') },
    async close() {
      await srv.close();
      await chain.close();
    },
  };
}

/**
 * The `ws` package's WebSocket (wrapped in the browser-like interface), tracked so a test can drop live connections (as a network would), and
 * optionally rewriting incoming text frames (to announce a store epoch before the server does).
 */
export function trackedWebSocket(rewrite?: (frame: Record<string, unknown>) => Record<string, unknown>, blackhole: { on: boolean } = { on: false }): { Ctor: WebSocketCtor; open: WebSocket[]; dropAll(): void; opened: number } {
  const open: Wrapped[] = [];
  const state = { opened: 0 };
  class Wrapped implements WebSocketLike {
    readonly inner: WebSocket;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    constructor(url: string) {
      const inner = (this.inner = new WebSocket(url));
      open.push(this);
      state.opened++;
      inner.onopen = (e) => this.onopen?.(e);
      inner.onmessage = (e) => {
        // A black-holed link: the TCP connection stays up, nothing arrives (what a heartbeat must notice).
        if (blackhole.on) return;
        let data: unknown = e.data;
        if (rewrite && typeof data === 'string') data = JSON.stringify(rewrite(JSON.parse(data) as Record<string, unknown>));
        this.onmessage?.({ data });
      };
      inner.onclose = (e) => {
        open.splice(open.indexOf(this), 1);
        this.onclose?.({ code: e.code, reason: e.reason });
      };
      inner.onerror = (e) => this.onerror?.(e);
    }
    get readyState(): number { return this.inner.readyState; }
    get binaryType(): string { return this.inner.binaryType; }
    set binaryType(v: string) { this.inner.binaryType = v as 'arraybuffer'; }
    send(d: string | Uint8Array | ArrayBuffer): void { this.inner.send(d); }
    close(code?: number, reason?: string): void { this.inner.close(code, reason); }
  }
  return {
    Ctor: Wrapped as unknown as WebSocketCtor, open: open.map((w) => w.inner),
    get opened() { return state.opened; },
    dropAll() { for (const w of [...open]) w.inner.terminate(); },
  };
}

export async function until(pred: () => boolean | Promise<boolean>, timeoutMs = 20_000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The live-connection timings of the MLS SDK tests (quick heartbeats and reconnects). */
export const mlsLive = { heartbeatMs: 2_000, backoffBaseMs: 50, backoffCapMs: 400 };

/** A test device: a client with its MLS encryptor, what it received and what it reported undecryptable. */
export interface MlsDev<S extends KeyValueStorage = KeyValueStorage> {
  client: RelationClient;
  mls: MlsEncryptor;
  storage: S;
  got: IncomingMessage[];
  bad: UndecryptableInfo[];
}

/**
 * The MLS SDK tests' devices against the server `target()` names when a device is made (a test that
 * replaces its server passes a getter that follows it): `device` makes one (not started), `dev` makes,
 * starts and waits for its connection; `all` holds every one made, `closeAll` closes them.
 */
export function mlsDevices(target: () => { url: string; key(who: string): string }) {
  const all: MlsDev[] = [];
  function device<S extends KeyValueStorage = MemoryStorage>(who: string, storage?: S): MlsDev<S> {
    const t = target();
    const st = (storage ?? new MemoryStorage()) as S;
    const client = new RelationClient({ baseUrl: t.url, signer: privateKeySigner(t.key(who)), storage: st, WebSocket: WebSocket as unknown as WebSocketCtor, live: mlsLive });
    const d: MlsDev<S> = { client, mls: client.encryptor as MlsEncryptor, storage: st, got: [], bad: [] };
    client.on('message', (m) => d.got.push(m));
    client.on('undecryptable', (u) => d.bad.push(u));
    all.push(d);
    return d;
  }
  async function dev<S extends KeyValueStorage = MemoryStorage>(who: string, storage?: S): Promise<MlsDev<S>> {
    const d = device(who, storage);
    await d.client.start();
    await until(() => d.client.connection.connected, 30_000, `${who} connected`);
    return d;
  }
  const texts = async (d: MlsDev): Promise<(string | null)[]> => Promise.all(d.got.map((m) => d.client.decrypt(m.message)));
  const reads = async (d: MlsDev, t: string): Promise<boolean> => (await texts(d)).includes(t);
  return { all, device, dev, texts, reads, closeAll: (): void => { for (const d of all) d.client.close(); } };
}

/** `mlsDevices` against a demo (its server and identities). */
export function demoDevices(demo: () => Demo) {
  return mlsDevices(() => ({ url: demo().srv.url, key: (who) => demo().keys[who as keyof Demo['keys']] }));
}

/**
 * A demo started before a file's tests (told to `started`) and closed after them with every device
 * `demoDevices` opened on it.
 */
export function demoSuite(overrides: Partial<Config>, started: (demo: Demo) => void) {
  let demo: Demo | undefined;
  const devices = demoDevices(() => demo as Demo);
  beforeAll(async () => {
    demo = await startDemo(overrides);
    started(demo);
  }, 120_000);
  afterAll(async () => {
    devices.closeAll();
    await demo?.close();
  });
  return devices;
}

export type { WebSocketLike };
