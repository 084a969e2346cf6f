import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { threadId } from 'node:worker_threads';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archiver } from '../../src/archive/archiver.js';
import { arweaveFor } from '../../src/archive/arweave/client.js';
import { ArweaveUplink } from '../../src/archive/arweave/uplink.js';
import { APP_NAME, bundleBytes, parseBundleTags, type BundleMeta } from '../../src/archive/format.js';
import { archiveRoutes } from '../../src/archive/routes.js';
import { canonicalJson, type RelationMessage } from '../../src/protocol/message.js';
import { makeRig, silentLog, startGateway, type Rig } from '../support/archive.js';

let gw: Awaited<ReturnType<typeof startGateway>>;
const rigs: Rig[] = [];
const rig = async (): Promise<Rig> => {
  const r = await makeRig(gw);
  rigs.push(r);
  return r;
};

beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  for (const r of rigs) await r.close();
  await gw?.gateway.stop();
});

/** The bundle as a reader finds it on the gateway: parsed tags and data. */
async function onChain(txid: string): Promise<{ meta: BundleMeta; tags: Record<string, string>; data: string }> {
  const tx = await gw.source.tx(txid);
  if (!tx) throw new Error(`tx ${txid} not on the gateway`);
  const parsed = parseBundleTags(tx.tags);
  if (!('meta' in parsed)) throw new Error(parsed.problems.join('; '));
  return { meta: parsed.meta, tags: Object.fromEntries(tx.tags.map((t) => [t.name, t.value])), data: (await gw.source.data(txid)).toString('utf8') };
}

const arrayOf = (ms: RelationMessage[]): string => `[${ms.map(canonicalJson).join(',')}]`;

/** This process's threads whose nice value is 10 (field 19 of /proc/self/task/<tid>/stat, after the name). */
function niceThreads(): number {
  let n = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[16] === '10') n++;
    } catch {
      // the thread ended meanwhile
    }
  }
  return n;
}

describe('Archiver on a real arlocal gateway', () => {
  it('a run whose lease call fails is a failed run (backoff, lastError), never an unhandled rejection', async () => {
    // Seen in a benchmark: SQLITE_BUSY from acquireLease inside the poll timer ended the whole server.
    const r = await rig();
    await r.send(1);
    const a = r.archiver();
    const store = r.archive as unknown as { acquireLease: (...args: unknown[]) => Promise<number | null> };
    const real = store.acquireLease.bind(store);
    store.acquireLease = async () => {
      throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
    };
    const res = await a.runOnce(r.clock.now(), 'tick');
    expect(res.error).toMatch(/database is locked/);
    expect((await a.status()).lastError).toMatchObject({ message: 'database is locked', failures: 1 });
    store.acquireLease = real;
    r.clock.t += 60_000; // past the backoff
    expect((await a.runOnce(r.clock.now(), 'tick')).confirmed).toEqual([1]);
  });

  it('plans, writes, signs and uploads a bundle on a worker thread, not on the archiver\'s (status.work)', async () => {
    const r = await rig();
    const sent = await r.send(3);
    const a = r.archiver();
    expect((await a.status()).work).toMatchObject({ mode: 'worker', jobs: 0, archiverThreadId: threadId });
    expect((await a.runOnce(r.clock.now(), 'tick')).confirmed).toEqual([1]);
    // The worker stepped back (nice 10, its own thread only: it ends with a.stop() below); the archiver's
    // thread keeps its priority.
    const stepped = niceThreads();
    expect(stepped).toBeGreaterThan(0);
    expect(getPriority(0)).toBe(0);
    const work = (await a.status()).work;
    expect(work).toMatchObject({ mode: 'worker', workers: 1, workersStarted: 1, jobs: 4, archiverThreadId: threadId });
    const threads = Object.values(work.lastThread);
    expect(threads).toHaveLength(4);
    for (const t of threads) {
      expect(t).toEqual(expect.any(Number));
      expect(t).not.toBe(threadId); // the archiver's own thread hashed, signed and uploaded nothing
    }
    expect(new Set(threads).size).toBe(1); // one worker did all four
    expect((await onChain((await r.archive.head())?.txid as string)).data).toBe(arrayOf(sent));
    await a.stop();
    expect(niceThreads()).toBe(stepped - 1);

    // told to work on its own thread, the same steps report the archiver's thread
    const more = await r.send(2);
    const inline = r.archiver({ work: 'main' });
    expect((await inline.runOnce(r.clock.now(), 'tick')).confirmed).toEqual([2]);
    expect((await inline.status()).work).toMatchObject({ mode: 'main', workers: 0, jobs: 4, lastThread: { plan: threadId, write: threadId, sign: threadId, upload: threadId } });
    expect((await onChain((await r.archive.head())?.txid as string)).data).toBe(arrayOf(more));
  });

  it('makes no bundle on a tick with nothing pending', async () => {
    const r = await rig();
    const a = r.archiver();
    const res = await a.runOnce(r.clock.now(), 'tick');
    expect(res).toEqual({ confirmed: [] });
    expect(await r.archive.latestBundle()).toBeNull();
    expect(await gw.source.bundlesOf(r.owner)).toEqual([]);
  });

  it('keeps messages below the size trigger pending until the tick, then bundles all of them', async () => {
    const r = await rig();
    const sent = await r.send(3);
    const a = r.archiver();
    expect((await a.runOnce(r.clock.now(), 'poll')).confirmed).toEqual([]);
    expect((await a.status()).pending.messages).toBe(3);
    const res = await a.runOnce(r.clock.now(), 'tick');
    expect(res.confirmed).toEqual([1]);
    const b = await r.archive.head();
    expect(b).toMatchObject({ seq: 1, status: 'confirmed', count: 3, prevTx: null });
    const chain = await onChain(b?.txid as string);
    expect(chain.data).toBe(arrayOf(sent));
    expect(chain.tags).toEqual({
      'App-Name': APP_NAME, 'App-Version': '1', 'Content-Type': 'application/json', 'Bundle-Seq': '1', 'Message-Count': '3',
      'First-Timestamp': String(sent[0]?.timestamp), 'Last-Timestamp': String(sent[2]?.timestamp), 'Data-SHA256': b?.sha256,
    });
    expect((await a.status()).pending).toEqual({ messages: 0, bytes: 0 });
    // the next tick with nothing new makes nothing
    expect((await a.runOnce(r.clock.now(), 'tick')).confirmed).toEqual([]);
  });

  it('cuts a bundle as soon as pending data reaches the size trigger, each bundle within it', async () => {
    const r = await rig();
    const sent = await r.send(12, 600);
    const size = Buffer.byteLength(canonicalJson(sent[0] as RelationMessage));
    expect(sent.every((m) => Buffer.byteLength(canonicalJson(m)) === size)).toBe(true);
    const trigger = bundleBytes(4, 4 * size); // exactly four messages: four pending reach it, a fifth would not fit
    const a = r.archiver({ sizeTriggerBytes: trigger });
    const res = await a.runOnce(r.clock.now(), 'poll');
    expect(res.confirmed).toEqual([1, 2, 3]);
    const chunks: string[] = [];
    for (const seq of [1, 2, 3]) {
      const b = await r.archive.getBundle(seq);
      expect(b?.bytes).toBeLessThanOrEqual(trigger);
      const c = await onChain(b?.txid as string);
      chunks.push(c.data.slice(1, -1));
    }
    expect(`[${chunks.join(',')}]`).toBe(arrayOf(sent));
    // below the trigger again: stays pending
    await r.send(2, 600);
    expect((await a.runOnce(r.clock.now(), 'poll')).confirmed).toEqual([]);
    expect((await a.status()).pending.messages).toBe(2);
  });

  it('chains several bundles: Bundle-Seq 1, 2, 3, each Prev-Tx the one before, every message exactly once', async () => {
    const r = await rig();
    const a = r.archiver();
    const all: RelationMessage[] = [];
    const txids: string[] = [];
    for (let i = 0; i < 3; i++) {
      all.push(...(await r.send(2 + i)));
      await a.runOnce(r.clock.now(), 'tick');
      txids.push((await r.archive.head())?.txid as string);
    }
    const datas: string[] = [];
    for (const [i, txid] of txids.entries()) {
      const c = await onChain(txid);
      expect(c.meta.seq).toBe(i + 1);
      expect(c.meta.prevTx).toBe(i === 0 ? null : txids[i - 1]);
      expect(c.meta.count).toBe(2 + i);
      datas.push(c.data.slice(1, -1));
    }
    expect(`[${datas.join(',')}]`).toBe(arrayOf(all));
    const found = await gw.source.bundlesOf(r.owner);
    expect(found.map((t) => t.id).sort()).toEqual([...txids].sort());
  });

  it('uploads a multi-chunk bundle with the chunked uploader', async () => {
    const r = await rig();
    const sent = await r.send(8, 150_000); // ~1.6 MB: several 256 KiB chunks
    const a = r.archiver({ sizeTriggerBytes: 10_000_000 });
    await a.runOnce(r.clock.now(), 'tick');
    const b = await r.archive.head();
    expect(JSON.parse(b?.uploadState as string).chunkIndex).toBeGreaterThan(4);
    expect((await onChain(b?.txid as string)).data).toBe(arrayOf(sent));
  });

  it('keeps the backlog and retries with growing, jittered backoff while the gateway is down; the status shows the error', async () => {
    const r = await rig();
    await r.send(3);
    const down = new ArweaveUplink(arweaveFor('http://127.0.0.1:9'), r.jwk);
    const a = new Archiver(r.archive, down, r.clock, silentLog, {
      dataDir: r.dir, cron: '0 */12 * * *', sizeTriggerBytes: 1_000_000, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000, leaseMs: 30_000, random: () => 0.5,
    });
    const t0 = r.clock.now();
    const first = await a.runOnce(t0, 'tick');
    expect(first.confirmed).toEqual([]);
    expect(first.error).toBeTruthy();
    let s = await a.status();
    expect(s.lastError).toMatchObject({ failures: 1, at: t0 });
    expect(s.nextRetryAt).toBe(t0 + 750); // 1000 ms × (0.5 + 0.5 × 0.5)
    expect(await a.runOnce(t0 + 100, 'poll')).toEqual({ confirmed: [], skipped: 'backoff' });
    await a.runOnce(t0 + 750, 'poll');
    s = await a.status();
    expect(s.lastError?.failures).toBe(2);
    expect(s.nextRetryAt).toBe(t0 + 750 + 1500);
    expect(s.lastBundle).toMatchObject({ seq: 1, status: 'cut', messages: 3 });
    await a.stop();
    // the gateway is back (same state, another process): the same bundle goes up
    const b = r.archiver();
    r.clock.t = t0 + 60_000;
    expect((await b.runOnce(r.clock.now(), 'poll')).confirmed).toEqual([1]);
    expect((await b.status()).lastError).toBeNull();
  });

  it('answers its status while an upload hangs on a gateway that never replies (the backlog sum does not queue behind it)', async () => {
    // Seen in a benchmark: while the worker uploaded a 100 MB bundle to a slow gateway, /metrics (its
    // rim_archive_* gauges ask the status) and /archive/status waited for the whole upload.
    const r = await rig();
    await r.send(3);
    let open = 0;
    let seen: () => void = () => undefined;
    const asked = new Promise<void>((resolve) => { seen = resolve; });
    const silent = createServer((req) => {
      open += 1;
      req.on('close', () => { open -= 1; });
      seen(); // and never answer
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    const a = new Archiver(r.archive, new ArweaveUplink(arweaveFor(url), r.jwk), r.clock, silentLog, {
      dataDir: r.dir, cron: '0 */12 * * *', sizeTriggerBytes: 1_000_000, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000, leaseMs: 30_000, random: () => 0.5,
    });
    try {
      const run = a.runOnce(r.clock.now(), 'tick');
      await asked; // the worker is waiting on the gateway
      await r.send(2);
      const s = await a.status();
      expect(open).toBe(1); // answered while the gateway still holds the worker's request
      expect(s.work.mode).toBe('worker');
      expect(s.pending.messages).toBe(2);
      expect(s.lastBundle).toMatchObject({ seq: 1, status: 'cut', messages: 3 });
      silent.closeAllConnections();
      expect((await run).confirmed).toEqual([]);
    } finally {
      await a.stop();
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('lets only the lease holder archive', async () => {
    const r = await rig();
    await r.send(1);
    const a = r.archiver({ holder: 'a' });
    const b = r.archiver({ holder: 'b' });
    expect(await r.archive.acquireLease('a', r.clock.now(), 30_000)).toBe(1);
    expect(await b.runOnce(r.clock.now(), 'tick')).toEqual({ confirmed: [], skipped: 'lease' });
    expect((await a.runOnce(r.clock.now(), 'tick')).confirmed).toEqual([1]);
  });

  it('runs the node-cron schedule once started', async () => {
    const r = await rig();
    await r.send(2);
    const a = r.archiver({ cron: '* * * * * *' });
    a.start();
    await expect.poll(async () => (await r.archive.head())?.seq, { timeout: 20_000, interval: 200 }).toBe(1);
    expect((await a.status()).nextTick).toEqual(expect.any(Number));
    await a.stop();
  });

  it('serves the head and the status over HTTP', async () => {
    const r = await rig();
    const a = r.archiver();
    const server = createServer(archiveRoutes({ status: () => a.status(), log: silentLog }));
    await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      expect(await (await fetch(`${base}/archive/head`)).json()).toEqual({ head: null });
      await r.send(2);
      await a.runOnce(r.clock.now(), 'tick');
      const head = (await (await fetch(`${base}/archive/head`)).json()) as { head: { seq: number; txid: string; owner: string } };
      expect(head.head).toMatchObject({ seq: 1, txid: (await r.archive.head())?.txid, owner: r.owner });
      const status = await (await fetch(`${base}/archive/status`)).json();
      expect(status).toMatchObject({ pending: { messages: 0, bytes: 0 }, lastBundle: { seq: 1, status: 'confirmed', messages: 2 }, lastError: null, cron: '0 */12 * * *' });
      expect((await fetch(`${base}/archive/nope`)).status).toBe(404);
    } finally {
      await new Promise((res) => server.close(res));
    }
  });
});
