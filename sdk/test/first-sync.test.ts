import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RelationClient } from '../src/client.js';
import type { IncomingMessage } from '../src/connection.js';
import { DevEncryptor } from '../src/encryptor.js';
import type { FetchLike } from '../src/http.js';
import type { WebSocketCtor } from '../src/live.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage } from '../src/storage.js';
import { startDemo, until, type Demo } from './support.js';

// These tests use the development plaintext on purpose (the harness starts the server with
// ALLOW_DEV_PLAINTEXT); they are about delivery and addressing, not encryption.
const live = { heartbeatMs: 2_000, backoffBaseMs: 50, backoffCapMs: 400 };

describe('issue 17: SDK delivery defects (real server)', () => {
  let demo: Demo;
  const clients: RelationClient[] = [];
  beforeAll(async () => {
    demo = await startDemo();
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await demo?.close();
  });

  it('every message sent after start() was called is delivered, even those the first sync sees as history', async () => {
    const alice = new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.alice), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live });
    clients.push(alice);
    // bob's first chat list waits until alice sent both messages: one before bob's socket is ready (it is
    // only in the history), one after (a live push whose seq the chat list then already counts).
    let open!: () => void;
    const gate = new Promise<void>((r) => { open = r; });
    const gatedFetch: FetchLike = async (url, init) => {
      if (url.includes('/chats/list')) await gate;
      return fetch(url, init as RequestInit) as unknown as ReturnType<FetchLike>;
    };
    const bob = new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.bob), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, fetch: gatedFetch, live });
    clients.push(bob);
    const got: IncomingMessage[] = [];
    bob.on('message', (m) => got.push(m));
    const iter = bob.messages();
    await bob.start();
    const first = await alice.send(bob.address, 'right after start');
    await until(() => bob.connection.connected, 20_000, 'bob connected');
    const second = await alice.send(bob.address, 'after connect, before the first chat list');
    open();
    await until(() => got.some((m) => m.message.seq === first.seq) && got.some((m) => m.message.seq === second.seq), 20_000, 'both delivered');
    const texts = await Promise.all(got.filter((m) => m.message.seq === first.seq || m.message.seq === second.seq).map((m) => bob.decrypt(m.message)));
    expect(texts.sort()).toEqual(['after connect, before the first chat list', 'right after start']);
    const a = await iter.next();
    const b = await iter.next();
    expect([a.value?.message.seq, b.value?.message.seq].sort()).toEqual([first.seq, second.seq].sort());
    // Each once.
    expect(got.filter((m) => m.message.seq === first.seq)).toHaveLength(1);
  });

  it('send(daoAddress, text) without a kind goes to the group, not to a direct chat with the contract', async () => {
    const alice = new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.alice), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live });
    clients.push(alice);
    await alice.start();
    const r = await alice.send(demo.dao, 'to the DAO');
    expect(r.chatId.toLowerCase()).toBe(demo.dao.toLowerCase());
    const items = await alice.rest.list({ chatId: demo.dao, limit: 5 });
    const m = items.find((x) => 'id' in x && x.id === r.id) as { kind: number } | undefined;
    expect(m?.kind).toBe(1);
    expect(await alice.isGroup(bobAddr(demo))).toBe(false);
    const d = await alice.send(bobAddr(demo), 'a person stays a direct chat');
    expect(d.chatId.toLowerCase()).toBe(bobAddr(demo).toLowerCase());
  });
});

function bobAddr(demo: Demo): string {
  return privateKeySigner(demo.keys.bob).address;
}
