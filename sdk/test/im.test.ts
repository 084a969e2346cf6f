import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { DevEncryptor } from '../src/encryptor.js';
import { RelationClient } from '../src/client.js';
import { dmCid, Kind, type ImIncoming, type ImResumeReport } from '../src/im.js';
import type { WebSocketCtor, WebSocketLike } from '../src/live.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage } from '../src/storage.js';
import { startDemo, until, type Demo } from './support.js';

const live = { heartbeatMs: 2_000, backoffBaseMs: 50, backoffCapMs: 300 };

/** `ws` WebSocket whose instances a test can drop. */
function droppable(): { Ctor: WebSocketCtor; dropAll(): void } {
  const open = new Set<WebSocket>();
  class D extends WebSocket {
    constructor(url: string) {
      super(url);
      open.add(this);
      this.on('close', () => open.delete(this));
    }
  }
  return { Ctor: D as unknown as WebSocketCtor, dropAll: () => { for (const w of open) w.terminate(); } };
}

/** A `ws` WebSocket that loses the PUSH of one event (mid) once, as a lost push would: the socket stays up. */
function lossy(): { Ctor: WebSocketCtor; lose: { mid: number | null } } {
  const lose: { mid: number | null } = { mid: null };
  const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });
  class L implements WebSocketLike {
    readonly inner: WebSocket;
    onopen: WebSocketLike['onopen'] = null;
    onmessage: WebSocketLike['onmessage'] = null;
    onclose: WebSocketLike['onclose'] = null;
    onerror: WebSocketLike['onerror'] = null;
    constructor(url: string) {
      const inner = (this.inner = new WebSocket(url));
      inner.onopen = (e) => this.onopen?.(e);
      inner.onmessage = (e) => {
        const env = unpackr.unpack(Buffer.from(e.data as ArrayBuffer)) as Map<number, unknown>;
        const body = env.get(4) as Map<number, unknown> | undefined;
        if (env.get(1) === 4 && lose.mid !== null && body?.get(3) === lose.mid) {
          lose.mid = null;
          return;
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
  return { Ctor: L as unknown as WebSocketCtor, lose };
}

describe('SDK on the /im MsgPack face against the real server', () => {
  let demo: Demo;
  let alice: RelationClient;
  let bob: RelationClient;
  const drop = droppable();

  beforeAll(async () => {
    demo = await startDemo({ resumeMaxPerChat: 2 });
    alice = new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.alice), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live });
    bob = new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.bob), storage: new MemoryStorage(), WebSocket: drop.Ctor, live });
  }, 120_000);
  afterAll(async () => {
    alice?.close();
    bob?.close();
    await demo?.close();
  });

  it('sends text with a reply, queries, revokes, uploads a file (kind 3), and resumes after a dropped socket', async () => {
    const a = alice.im();
    const b = bob.im();
    const got: ImIncoming[] = [];
    const reports: ImResumeReport[] = [];
    b.on('event', (e) => got.push(e));
    b.on('resumed', (r) => reports.push(r));
    a.start();
    b.start();
    await until(() => a.connected && b.connected, 20_000, 'both /im connected');
    const cid = dmCid(alice.address, bob.address);
    const first = await a.sendText(cid, 'hello over msgpack');
    const reply = await b.sendText(cid, 'reply', { replyTo: first.mid });
    await until(() => got.some((e) => e.event.mid === first.mid), 10_000, 'bob got the push');
    expect(got.find((e) => e.event.mid === first.mid)!.event).toMatchObject({ cid, kind: Kind.TEXT, text: 'hello over msgpack', sender: alice.address.toLowerCase() });

    const q = await a.query({ cid, fromMid: first.mid });
    expect(q.events.map((e) => e.mid)).toEqual([first.mid, reply.mid]);
    expect(q.events[1]!.tags).toEqual([[1, first.mid]]);

    // A refusal is a typed error: bob cannot revoke alice's message for everyone in a direct chat.
    await expect(b.revoke(cid, first.mid, 1)).rejects.toMatchObject({ code: 'FORBIDDEN', status: 403, temporary: false });
    const rv = await a.revoke(cid, first.mid, 1);
    const after = await a.query({ cid, fromMid: first.mid, toMid: first.mid });
    expect(after.events[0]!.revokedBy).toBe(rv.mid);

    const bytes = new TextEncoder().encode('file body ✓');
    const f = await a.sendFile(cid, { name: 'note.txt', bytes, mime: 'text/plain' });
    const fileEv = (await a.query({ cid, fromMid: f.mid, toMid: f.mid })).events[0]!;
    expect(fileEv.kind).toBe(Kind.FILE);
    const url = String(fileEv.data.get(5));
    expect(await (await fetch(url)).text()).toBe('file body ✓');

    // Drop bob's socket; alice sends 5 more; bob resumes (RESUME_MAX_PER_CHAT=2 forces QUERY paging).
    await until(() => got.some((e) => e.event.mid === f.mid), 10_000, 'bob saw the file');
    const before = reports.length;
    drop.dropAll();
    const more: number[] = [];
    for (let i = 0; i < 5; i++) more.push((await a.sendText(cid, `later ${i}`)).mid);
    await until(() => more.every((m) => got.some((e) => e.event.mid === m)), 20_000, 'bob recovered all');
    const mids = got.map((e) => e.event.mid);
    expect(new Set(mids).size).toBe(mids.length);
    expect(reports.length).toBeGreaterThan(before);
    const r = reports.at(-1)!;
    expect(r.gap).toBe(false);
    expect(r.chats.find((c) => c.cid === cid)).toBeDefined();
    expect(await b.ack(cid, more.at(-1)!)).toBe(more.at(-1));
  }, 60_000);

  it('a lost PUSH is fetched (QUERY from the cursor) before the next one is delivered: the cursor never skips it', async () => {
    const l = lossy();
    const carol = new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.carol), storage: new MemoryStorage(), WebSocket: l.Ctor, live });
    try {
      const a = alice.im();
      const c = carol.im();
      const got: ImIncoming[] = [];
      c.on('event', (e) => got.push(e));
      a.start();
      c.start();
      await until(() => a.connected && c.connected, 20_000, 'carol /im connected');
      const cid = dmCid(alice.address, carol.address);
      const first = await a.sendText(cid, 'one');
      await until(() => got.some((e) => e.event.mid === first.mid), 10_000, 'carol got the first');
      l.lose.mid = first.mid + 1;
      const second = await a.sendText(cid, 'two (its push is lost)');
      expect(second.mid).toBe(first.mid + 1);
      const third = await a.sendText(cid, 'three');
      await until(() => got.some((e) => e.event.mid === third.mid), 10_000, 'carol got the third');
      expect(l.lose.mid).toBeNull();
      expect(got.map((e) => e.event.mid)).toEqual([first.mid, second.mid, third.mid]);
      expect(got[1]).toMatchObject({ recovered: true, event: { text: 'two (its push is lost)' } });
    } finally {
      carol.close();
    }
  }, 60_000);
});
