import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import { Kind } from '../../src/protocol/message.js';
import { PrivateServer } from '../support/bus-servers.js';
import { startChainRpc, type ChainRpc } from '../support/chain-rpc.js';
import { ImClient, type M } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { freshDatabase } from '../support/pg.js';
import { startServerProcess, type ServerProcess } from '../support/processes.js';
import { http, login, WsClient } from '../support/server.js';
import { tempDir } from '../support/tmp.js';

const lower = (i: Identity): string => i.address.toLowerCase();

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Seqs of the chat messages a /ws client received from `chatId`, in arrival order. */
const wsSeqs = (c: WsClient, chatId: string): number[] =>
  c.all.filter((f) => f['type'] === 'message' && f['chatId'] === chatId).map((f) => (f['message'] as { seq: number }).seq);
/** Mids of the events an /im client was pushed in `cid`. */
const imMids = (c: ImClient, cid: string): number[] => c.pushes.filter((e) => e.get(1) === cid).map((e) => e.get(3) as number);

/**
 * Three real server processes on one PostgreSQL database (fresh, dropped afterwards) and one NATS (a
 * private nats-server on a random port, which one test stops and starts), reading one chain over
 * JSON-RPC. What SPEC section 9 promises: any process serves any client, nothing is lost or repeated
 * when a process dies or the bus blips.
 */
describe('three processes on PostgreSQL and NATS', () => {
  let chain: ChainRpc;
  let nats: PrivateServer;
  let env: Record<string, string>;
  let a: ServerProcess;
  let b: ServerProcess;
  let c: ServerProcess;
  const procs: ServerProcess[] = [];
  const clients: { close(): void }[] = [];
  let alice: Identity;
  let bob: Identity;
  let carol: Identity;
  const tokens = new Map<Identity, string>();
  const tokenOf = async (who: Identity, via: ServerProcess): Promise<string> => {
    const t = tokens.get(who) ?? (await login(via.url, who));
    tokens.set(who, t);
    return t;
  };
  const start = async (name: string): Promise<ServerProcess> => {
    const p = await startServerProcess(name, tempDir(`rim-mp-${name}-`), env);
    procs.push(p);
    return p;
  };
  const ws = async (who: Identity, on: ServerProcess): Promise<WsClient> => {
    const cl = await WsClient.open(on.wsUrl, await tokenOf(who, on));
    clients.push(cl);
    return cl;
  };
  const im = async (who: Identity, on: ServerProcess): Promise<ImClient> => {
    const cl = await ImClient.open(on.imUrl, await tokenOf(who, on));
    clients.push(cl);
    return cl;
  };
  const send = async (via: ServerProcess, m: unknown): Promise<{ seq: number }> => {
    const r = await http(via.url, 'POST', '/message/send', { body: m });
    if (r.status !== 200) throw new Error(`send through ${via.name}: ${r.status} ${r.text}`);
    return r.json as { seq: number };
  };
  const ready = async (p: ServerProcess): Promise<{ status: number; bus: boolean }> => {
    try {
      const r = await http(p.url, 'GET', '/ready');
      return { status: r.status, bus: (r.json as { bus: { ok: boolean } }).bus.ok };
    } catch {
      return { status: 0, bus: false };
    }
  };

  beforeAll(async () => {
    [alice, bob, carol] = [makeIdentity(), makeIdentity(), makeIdentity()];
    [chain, nats] = await Promise.all([startChainRpc([alice.address, bob.address, carol.address]), PrivateServer.start('nats')]);
    env = {
      STORE: 'postgres', DATABASE_URL: await freshDatabase('rim_mp'), BUS: 'nats', NATS_URL: nats.url,
      BUS_PREFIX: `rim-mp-${randomBytes(6).toString('hex')}`, BUS_PING_MS: '200', BUS_DOWN_AFTER_MS: '1500', ...chain.env,
    };
    a = await start('A'); // creates the schema; the others find it migrated
    [b, c] = await Promise.all([start('B'), start('C')]);
    await until(async () => (await Promise.all([a, b, c].map(ready))).every((r) => r.status === 200), 'all three ready');
  }, 90_000);

  afterAll(async () => {
    for (const cl of clients) cl.close();
    for (const p of procs) await p.kill('SIGTERM');
    await nats?.down();
    await chain?.close();
  });

  it('delivers direct and group messages of both faces sent through A to both faces on B and C', async () => {
    const bobWsB = await ws(bob, b);
    const bobImC = await im(bob, c);
    const carolWsC = await ws(carol, c);
    const carolImB = await im(carol, b);
    const aliceIm = await im(alice, a);
    const dao = chain.dao;
    const dmBob = dmCid(lower(alice), lower(bob));
    const dmCarol = dmCid(lower(alice), lower(carol));

    // Relation ONE (REST) direct message to bob, /im text to carol.
    const r1 = await send(a, signedMessage(alice, { receiver: bob.address, payload: 'dm-rest' }));
    const r2 = (await aliceIm.ok(3, { 1: dmCarol, 2: 1, 7: { 0: 'dm-im' } })).get(0) as number;
    // Group messages on both faces.
    const r3 = await send(a, signedMessage(alice, { receiver: dao, kind: Kind.GROUP, payload: 'group-rest' }));
    const r4 = (await aliceIm.ok(3, { 1: dao, 2: 1, 7: { 0: 'group-im' } })).get(0) as number;

    await until(() => wsSeqs(bobWsB, lower(alice)).includes(r1.seq) && imMids(bobImC, dmBob).includes(r1.seq), 'bob\'s direct message on B and C');
    await until(() => wsSeqs(carolWsC, lower(alice)).includes(r2) && imMids(carolImB, dmCarol).includes(r2), 'carol\'s /im text on C and B');
    for (const [w, i] of [[bobWsB, bobImC], [carolWsC, carolImB]] as const) {
      await until(() => wsSeqs(w, dao).includes(r3.seq) && wsSeqs(w, dao).includes(r4), 'both group messages on /ws');
      await until(() => imMids(i, dao).includes(r3.seq) && imMids(i, dao).includes(r4), 'both group messages on /im');
    }
    const groupIm = bobImC.pushes.find((e) => e.get(1) === dao && e.get(3) === r4) as M;
    expect((groupIm.get(7) as M).get(0)).toBe('group-im');
    const groupWs = carolWsC.all.find((f) => f['type'] === 'message' && f['chatId'] === dao && (f['message'] as { seq: number }).seq === r3.seq);
    expect(groupWs).toMatchObject({ alert: true, message: { payload: 'group-rest', sender: alice.address } });
  }, 60_000);

  it('a /ws client that loses its process (kill -9) resumes on another with nothing missed or repeated', async () => {
    const chatId = lower(alice);
    const base = (await send(a, signedMessage(alice, { receiver: bob.address }))).seq;
    let client = await ws(bob, b);
    const got: number[] = [];
    const collect = (cl: WsClient): void => {
      cl.ws.on('message', (data) => {
        const f = JSON.parse(data.toString()) as Record<string, unknown>;
        if (f['type'] === 'message' && f['chatId'] === chatId) got.push((f['message'] as { seq: number }).seq);
      });
    };
    collect(client);
    const TOTAL = 40;
    const acked: number[] = [];
    let killed = false;
    const sender = (async () => {
      for (let i = 0; i < TOTAL; i++) {
        acked.push((await send(a, signedMessage(alice, { receiver: bob.address, payload: `s${i}` }))).seq);
        if (acked.length === 12 && !killed) {
          killed = true;
          await b.kill('SIGKILL');
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await client.closed;
    // The client reconnects elsewhere and resumes from the last seq it saw.
    const last = got.filter((s) => s > base).reduce((m, s) => Math.max(m, s), base);
    client = await ws(bob, c);
    collect(client);
    client.send({ type: 'resume', ref: 'r', cursors: { [chatId]: last } });
    await client.next((f) => f['type'] === 'resumed');
    await sender;
    await until(() => acked.every((s) => got.includes(s)), 'every acknowledged message on the client');
    await new Promise((r) => setTimeout(r, 500)); // a duplicate would arrive by now
    const mine = got.filter((s) => s > base);
    expect(new Set(mine).size).toBe(mine.length);
    expect([...mine].sort((x, y) => x - y)).toEqual(Array.from({ length: TOTAL }, (_, i) => base + 1 + i));
    b = await start('B2'); // three processes again for what follows
  }, 60_000);

  it('gives gap-free seqs when two processes write one conversation at once', async () => {
    const before = (await send(a, signedMessage(alice, { receiver: carol.address }))).seq;
    const writes: Promise<{ seq: number }>[] = [];
    for (let i = 0; i < 30; i++) {
      writes.push(send(a, signedMessage(alice, { receiver: carol.address, payload: `a${i}` })));
      writes.push(send(c, signedMessage(carol, { receiver: alice.address, payload: `c${i}` })));
    }
    const seqs = (await Promise.all(writes)).map((r) => r.seq).sort((x, y) => x - y);
    expect(seqs).toEqual(Array.from({ length: 60 }, (_, i) => before + 1 + i));
    const listed = (await http(b.url, 'GET', `/message/list?chatId=${carol.address}&afterSeq=${before}&limit=200`, { token: await tokenOf(alice, b) })).json as { seq: number }[];
    expect(listed.map((m) => m.seq)).toEqual(seqs);
  }, 60_000);

  it('when NATS stops and starts during a stream of sends, every acknowledged message reaches every receiver, and readiness goes red and back', async () => {
    const bobWs = await ws(bob, b);
    const bobIm = await im(bob, c);
    const carolWs = await ws(carol, c);
    const dmBob = dmCid(lower(alice), lower(bob));
    const TOTAL = 60;
    const ackedBob: number[] = [];
    const ackedCarol: number[] = [];
    let sawRed = false;
    let sawBack = false;
    const outage = (async () => {
      await until(() => ackedBob.length + ackedCarol.length >= 10, 'some sends before the outage');
      await nats.down();
      await until(async () => (await Promise.all([a, b, c].map(ready))).every((r) => r.status === 503 && !r.bus), 'all three red');
      sawRed = true;
      await nats.up();
      await until(async () => (await Promise.all([a, b, c].map(ready))).every((r) => r.status === 200), 'all three ready again');
      sawBack = true;
    })();
    for (let i = 0; i < TOTAL; i++) {
      // Sends keep being acknowledged while the bus is away: they commit to the store.
      if (i % 2 === 0) ackedBob.push((await send(a, signedMessage(alice, { receiver: bob.address, payload: `n${i}` }))).seq);
      else ackedCarol.push((await send(a, signedMessage(alice, { receiver: carol.address, payload: `n${i}` }))).seq);
      await new Promise((r) => setTimeout(r, i < 20 ? 30 : 80));
    }
    await outage;
    expect([sawRed, sawBack]).toEqual([true, true]);
    await until(() => ackedBob.every((s) => wsSeqs(bobWs, lower(alice)).includes(s)), 'bob\'s /ws on B got every acknowledged message');
    await until(() => ackedBob.every((s) => imMids(bobIm, dmBob).includes(s)), 'bob\'s /im on C got every acknowledged message');
    await until(() => ackedCarol.every((s) => wsSeqs(carolWs, lower(alice)).includes(s)), 'carol\'s /ws on C got every acknowledged message');
    for (const seqs of [wsSeqs(bobWs, lower(alice)), imMids(bobIm, dmBob), wsSeqs(carolWs, lower(alice))]) expect(new Set(seqs).size).toBe(seqs.length);
  }, 90_000);
});
