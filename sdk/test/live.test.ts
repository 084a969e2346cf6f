import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DevEncryptor } from '../src/encryptor.js';
import { RelationClient } from '../src/client.js';
import type { IncomingMessage, ResumeReport } from '../src/connection.js';
import { ImError } from '../src/errors.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage } from '../src/storage.js';
import type { WebSocketCtor } from '../src/live.js';
import { startDemo, trackedWebSocket, until, type Demo } from './support.js';

const live = { heartbeatMs: 2_000, backoffBaseMs: 50, backoffCapMs: 400 };

function client(demo: Demo, who: keyof Demo['keys'], o: { storage?: MemoryStorage; WebSocket?: WebSocketCtor; baseUrl?: string } = {}): RelationClient {
  return new RelationClient({ encryptor: new DevEncryptor(), baseUrl: o.baseUrl ?? demo.srv.url, signer: privateKeySigner(demo.keys[who]), storage: o.storage ?? new MemoryStorage(), WebSocket: o.WebSocket ?? (WebSocket as unknown as WebSocketCtor), live });
}

describe('SDK against the real server (Relation ONE face)', () => {
  let demo: Demo;
  const clients: RelationClient[] = [];
  const track = (c: RelationClient): RelationClient => { clients.push(c); return c; };

  beforeAll(async () => {
    demo = await startDemo({ resumeMaxPerChat: 3 });
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await demo?.close();
  });

  it('logs in with SIWE via the session key, sends, receives, reads; REST answers are typed', async () => {
    const alice = track(client(demo, 'alice'));
    const bob = track(client(demo, 'bob'));
    const got: IncomingMessage[] = [];
    bob.on('message', (m) => got.push(m));
    await Promise.all([alice.start(), bob.start()]);
    await until(() => bob.connection.state === 'connected' && alice.connection.state === 'connected', 20_000, 'both connected');
    const sent = await alice.send(bob.address, 'hello bob');
    expect(sent.seq).toBeGreaterThan(0);
    await until(() => got.some((m) => m.message.seq === sent.seq), 10_000, 'bob receives');
    const m = got.find((x) => x.message.seq === sent.seq)!;
    expect(await bob.decrypt(m.message)).toBe('hello bob');
    expect(await bob.rest.unreadCount()).toBeGreaterThanOrEqual(1);
    const chats = await bob.rest.chats();
    const chat = chats.find((c) => c.id === alice.address.toLowerCase())!;
    expect(chat.name).toMatch(/^alice/);
    expect(chat.unreadMessageCount).toBeGreaterThanOrEqual(1);
    const r = await bob.rest.read(sent.id);
    expect(r.lastReadSeq).toBe(sent.seq);
    expect(await bob.rest.unreadCount(alice.address)).toBe(0);
  });

  it('a non-temporary refusal ends that send with its code and keeps the connection', async () => {
    const dave = track(client(demo, 'dave'));
    await dave.start();
    await until(() => dave.connection.connected, 20_000, 'dave connected');
    const opened = dave.connection.state;
    // dave is no member of the demo DAO.
    const err = await dave.send(demo.dao, 'let me in', { kind: 1 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ImError);
    expect(err).toMatchObject({ code: 'NOT_MEMBER', status: 403, temporary: false });
    expect(dave.connection.state).toBe(opened);
    // REST errors are the same class.
    const e2 = await dave.rest.group(dave.address).catch((e: unknown) => e);
    expect(e2).toMatchObject({ code: 'NOT_A_GROUP', status: 400 });
    // The next send goes on.
    await expect(dave.send(track(client(demo, 'carol')).address, 'hi carol')).resolves.toMatchObject({ seq: expect.any(Number) });
  });

  it('reconnects and resumes while messages keep arriving: every seq once, in order, recovery reported', async () => {
    const tws = trackedWebSocket();
    const alice = track(client(demo, 'alice'));
    const carol = track(client(demo, 'carol', { WebSocket: tws.Ctor }));
    const got: number[] = [];
    const reports: ResumeReport[] = [];
    const chatId = alice.address.toLowerCase();
    carol.on('message', (m) => { if (m.chatId === chatId) got.push(m.message.seq); });
    carol.on('resumed', (r) => reports.push(r));
    await Promise.all([alice.start(), carol.start()]);
    await until(() => carol.connection.connected && reports.length >= 1, 20_000, 'carol synced');
    // Alice sends 40 messages; carol's socket is dropped several times meanwhile.
    const sends: Promise<{ seq: number }>[] = [];
    let dropping = true;
    const dropper = (async () => {
      while (dropping) {
        await new Promise((r) => setTimeout(r, 150));
        if (carol.connection.connected) tws.dropAll();
      }
    })();
    for (let i = 0; i < 40; i++) {
      sends.push(alice.send(carol.address, `m${i}`));
      await new Promise((r) => setTimeout(r, 15));
    }
    const seqs = (await Promise.all(sends)).map((s) => s.seq);
    dropping = false;
    await dropper;
    await until(() => seqs.every((s) => got.includes(s)), 30_000, 'every message at carol').catch((e: Error) => {
      // Say what was missing and where the connection stood, so a failure here can be diagnosed.
      const missing = seqs.filter((s) => !got.includes(s));
      throw new Error(`${e.message}: missing seqs ${missing.join(',')} of ${seqs.join(',')}; got ${got.join(',')}; state ${carol.connection.state}, sockets opened ${tws.opened}, reports ${JSON.stringify(reports)}`);
    });
    expect(got.filter((s) => seqs.includes(s))).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(got).size).toBe(got.length);
    expect(tws.opened).toBeGreaterThan(2);
    const later = reports.slice(1);
    expect(later.length).toBeGreaterThan(0);
    expect(later.every((r) => !r.gap)).toBe(true);
    // With RESUME_MAX_PER_CHAT=3, a long gap was paged over REST.
    expect(later.reduce((n, r) => n + r.recovered, 0)).toBeGreaterThan(0);
  }, 90_000);

  it('fetches a message whose push was lost before delivering the next one: the cursor never moves past it', async () => {
    const alice = track(client(demo, 'alice'));
    const chatId = alice.address.toLowerCase();
    // The push of one message to bob's socket is lost on the way (bob's socket stays up).
    let lose: number | null = null;
    const tws = trackedWebSocket((f) => {
      const m = f['message'] as { seq?: number } | undefined;
      if (f['type'] === 'message' && lose !== null && m?.seq === lose) {
        lose = null;
        return { type: 'lost-in-this-test' };
      }
      return f;
    });
    const bobLive = track(client(demo, 'bob', { WebSocket: tws.Ctor }));
    const got: { seq: number; recovered: boolean }[] = [];
    bobLive.on('message', (m) => { if (m.chatId === chatId) got.push({ seq: m.message.seq, recovered: m.recovered }); });
    await Promise.all([alice.start(), bobLive.start()]);
    await until(() => bobLive.connection.connected, 20_000, 'bob connected');
    const first = await alice.send(bobLive.address, 'one');
    await until(() => got.some((g) => g.seq === first.seq), 10_000, 'the first message at bob');
    lose = first.seq + 1;
    const second = await alice.send(bobLive.address, 'two (its push is lost)');
    expect(second.seq).toBe(first.seq + 1);
    const third = await alice.send(bobLive.address, 'three');
    await until(() => got.some((g) => g.seq === third.seq), 10_000, 'the third message at bob');
    expect(lose).toBeNull();
    expect(got.map((g) => g.seq).filter((q) => q >= first.seq)).toEqual([first.seq, second.seq, third.seq]);
    expect(got.find((g) => g.seq === second.seq)?.recovered).toBe(true);
    expect(tws.opened).toBe(1);
  });

  it('notices a link on which nothing arrives (heartbeat timeout), reconnects, and hands messages to an async iterator', async () => {
    const hole = { on: false };
    const tws = trackedWebSocket(undefined, hole);
    const alice = track(client(demo, 'alice'));
    const bob = track(new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.bob), WebSocket: tws.Ctor, live: { heartbeatMs: 300, deadAfterMs: 2_000, backoffBaseMs: 50, backoffCapMs: 200 } }));
    const disconnects: { code: number; willReconnect: boolean }[] = [];
    bob.on('disconnected', (d) => disconnects.push(d));
    const it = bob.messages();
    await bob.start();
    await until(() => bob.connection.connected, 20_000, 'bob connected');
    hole.on = true;
    await until(() => disconnects.length > 0, 10_000, 'heartbeat timeout');
    expect(disconnects[0]).toMatchObject({ code: 4009, willReconnect: true });
    hole.on = false;
    const sent = await alice.send(bob.address, 'after the black hole');
    for (;;) {
      const { value, done } = await it.next();
      expect(done).toBe(false);
      if (value.message.seq === sent.seq) break;
    }
    // The message may come through the resume's REST page before the socket reports connected; on a
    // loaded machine a 300 ms heartbeat may also cut once more. What must hold: it connects again.
    await until(() => bob.connection.connected, 20_000, 'bob reconnected');
  }, 60_000);

  it('drops its cursors and resyncs when the announced store epoch changes', async () => {
    let epoch = 'epoch-A';
    const tws = trackedWebSocket((f) => (f['type'] === 'ready' || f['type'] === 'resumed' ? { ...f, epoch } : f));
    const storage = new MemoryStorage();
    const bob = track(client(demo, 'bob', { storage, WebSocket: tws.Ctor }));
    const reports: ResumeReport[] = [];
    bob.on('resumed', (r) => reports.push(r));
    await bob.start();
    await until(() => reports.length === 1, 20_000, 'first sync');
    expect(reports[0]!.initial).toBe(true);
    expect(bob.cursors.epoch).toBe('epoch-A');
    expect(Object.keys(bob.cursors.all()).length).toBeGreaterThan(0);
    tws.dropAll();
    await until(() => reports.length === 2, 20_000, 'resume, same epoch');
    expect(reports[1]!).toMatchObject({ epochReset: false, initial: false });
    epoch = 'epoch-B';
    tws.dropAll();
    await until(() => reports.length === 3, 20_000, 'resync, new epoch');
    expect(reports[2]!).toMatchObject({ epochReset: true, initial: true, recovered: 0 });
    expect(bob.cursors.epoch).toBe('epoch-B');
  }, 60_000);

  it('abandons a resume whose REST page announces another store epoch, and recovers on the next socket', async () => {
    const tws = trackedWebSocket((f) => (f['type'] === 'ready' || f['type'] === 'resumed' ? { ...f, epoch: 'E1' } : f));
    let lie = false;
    let lied = 0;
    const fetchWithEpoch = (async (url: string, init: RequestInit) => {
      const res = await fetch(url, init);
      if (!res.headers.has('x-store-epoch')) return res;
      // The server announces its real epoch; this client is shown E1 everywhere (frames above, headers
      // here), except on the one list page that lies with E2.
      const headers = new Headers(res.headers);
      if (lie && String(url).includes('/message/list')) {
        lie = false;
        lied++;
        headers.set('x-store-epoch', 'E2');
      } else headers.set('x-store-epoch', 'E1');
      return new Response(await res.text(), { status: res.status, headers });
    }) as never;
    const alice = track(client(demo, 'alice'));
    const bob = track(new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.bob), storage: new MemoryStorage(), WebSocket: tws.Ctor, fetch: fetchWithEpoch, live }));
    const got: number[] = [];
    const reports: ResumeReport[] = [];
    const errors: ImError[] = [];
    bob.on('message', (m) => { if (m.chatId === alice.address.toLowerCase()) got.push(m.message.seq); });
    bob.on('resumed', (r) => reports.push(r));
    bob.on('error', (e) => errors.push(e));
    await bob.start();
    await until(() => reports.length === 1, 20_000, 'first sync');
    bob.connection.close();
    const seqs: number[] = [];
    for (let i = 0; i < 6; i++) seqs.push((await alice.send(bob.address, `offline ${i}`)).seq);
    lie = true;
    bob.connection.start();
    await until(() => seqs.every((q) => got.includes(q)), 20_000, 'all recovered after the abandoned resume');
    expect(lied).toBe(1);
    expect(errors.some((e) => e.code === 'BAD_RESPONSE' && /epoch changed/.test(e.message))).toBe(true);
    expect(got.filter((q) => seqs.includes(q))).toEqual(seqs);
    expect(reports.at(-1)).toMatchObject({ gap: false, epochReset: false });
  }, 60_000);

  it('a revoked token is renewed once for REST; a login that cannot succeed is reported, not looped', async () => {
    const bob = track(client(demo, 'bob'));
    const t1 = await bob.auth.token();
    await fetch(`${demo.srv.url}/auth/logout`, { method: 'POST', headers: { authorization: `Bearer ${t1}` } });
    await expect(bob.rest.chats()).resolves.toBeInstanceOf(Array);
    expect(await bob.auth.token()).not.toBe(t1);

    // The server accepts no SIWE domain this client uses: every login fails with SIWE_INVALID.
    const wrong = track(new RelationClient({ encryptor: new DevEncryptor(), baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.carol), WebSocket: WebSocket as unknown as WebSocketCtor, siweDomain: 'elsewhere.example', live }));
    let nonces = 0;
    const realFetch = globalThis.fetch;
    const disconnects: { willReconnect: boolean; error?: ImError }[] = [];
    wrong.on('disconnected', (d) => disconnects.push(d));
    (wrong.auth as unknown as { opts: { fetch: typeof fetch } }).opts.fetch = ((url: string, init: RequestInit) => {
      if (String(url).endsWith('/auth/nonce')) nonces++;
      return realFetch(url, init);
    }) as typeof fetch;
    await wrong.start();
    await until(() => wrong.connection.state === 'closed', 20_000, 'gave up with a report');
    expect(disconnects.at(-1)).toMatchObject({ willReconnect: false, error: { code: 'SIWE_INVALID' } });
    await new Promise((r) => setTimeout(r, 500));
    expect(nonces).toBe(1);
    await expect(wrong.rest.chats()).rejects.toMatchObject({ code: 'SIWE_INVALID' });
  });
});
