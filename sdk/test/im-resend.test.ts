import { Unpackr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RelationClient } from '../src/client.js';
import { dmCid } from '../src/im.js';
import type { WebSocketCtor, WebSocketLike } from '../src/live.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage } from '../src/storage.js';
import { startDemo, until, type Demo } from './support.js';

const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });

/**
 * The `ws` WebSocket in the browser-like interface, where the link can be made to die exactly when the
 * answer to a SEND arrives: the server stored the message, the client never hears so.
 */
function losingAnswers(): { Ctor: WebSocketCtor; loseNextSendAnswer: { on: boolean } } {
  const loseNextSendAnswer = { on: false };
  class Wrapped implements WebSocketLike {
    readonly inner: WebSocket;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    constructor(url: string) {
      const inner = (this.inner = new WebSocket(url));
      inner.binaryType = 'arraybuffer';
      inner.onopen = (e) => this.onopen?.(e);
      inner.onmessage = (e) => {
        if (loseNextSendAnswer.on && e.data instanceof ArrayBuffer) {
          const env = unpackr.unpack(new Uint8Array(e.data)) as Map<number, unknown>;
          if (env.get(1) === 3) {
            loseNextSendAnswer.on = false;
            inner.terminate();
            return;
          }
        }
        this.onmessage?.({ data: e.data });
      };
      inner.onclose = (e) => this.onclose?.({ code: e.code, reason: e.reason });
      inner.onerror = (e) => this.onerror?.(e);
    }
    get readyState(): number { return this.inner.readyState; }
    get binaryType(): string { return this.inner.binaryType; }
    set binaryType(v: string) { this.inner.binaryType = v as 'arraybuffer'; }
    send(d: string | Uint8Array | ArrayBuffer): void { this.inner.send(d); }
    close(code?: number, reason?: string): void { this.inner.close(code, reason); }
  }
  return { Ctor: Wrapped as unknown as WebSocketCtor, loseNextSendAnswer };
}

describe('SDK /im send after a lost answer', () => {
  let demo: Demo;
  let alice: RelationClient;
  const link = losingAnswers();

  beforeAll(async () => {
    demo = await startDemo();
    alice = new RelationClient({
      baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.alice), storage: new MemoryStorage(), WebSocket: link.Ctor,
      live: { heartbeatMs: 2_000, backoffBaseMs: 50, backoffCapMs: 300 },
    });
  }, 120_000);
  afterAll(async () => {
    alice?.close();
    await demo?.close();
  });

  it('resends once with the same client id when the connection is back, and the message is stored once', async () => {
    const a = alice.im();
    a.start();
    await until(() => a.connected, 20_000, '/im connected');
    const bob = new (await import('ethers')).Wallet(demo.keys.bob).address;
    const cid = dmCid(alice.address, bob);
    const before = await demo.srv.app.store.lastSeq(cid);
    link.loseNextSendAnswer.on = true;
    const r = await a.sendText(cid, 'said once');
    expect(link.loseNextSendAnswer.on).toBe(false); // the first answer was lost indeed
    expect(r.mid).toBe(before + 1);
    expect(await demo.srv.app.store.lastSeq(cid)).toBe(before + 1);
    const stored = await demo.srv.app.store.getEventBySeq(cid, r.mid);
    expect(JSON.parse(stored!.body)).toMatchObject({ data: { 0: 'said once' } });
    // The next send is a new message.
    expect((await a.sendText(cid, 'said twice')).mid).toBe(before + 2);
  }, 60_000);
});
