import WebSocket from 'ws';
import { testConfig, type Config } from '../../src/config/config.js';
import { startChainRelations, type StartedRelations } from '../../src/roles/relations/chain/setup.js';
import { startServer, type TestServer } from '../../test/support/server.js';
import type { WebSocketCtor, WebSocketLike } from '../src/live.js';

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

export type { WebSocketLike };
