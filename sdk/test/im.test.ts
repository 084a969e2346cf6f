import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DevEncryptor } from '../src/encryptor.js';
import { RelationClient } from '../src/client.js';
import { dmCid, Kind, type ImIncoming, type ImResumeReport } from '../src/im.js';
import type { WebSocketCtor } from '../src/live.js';
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
});
