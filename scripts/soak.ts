/**
 * Soak test: `npm run build && node dist/scripts/soak.js [--minutes 30] [--rate 1000] [--sockets 1000] [--cluster 3]`.
 *
 * The real server (dist build, its own process, SQLite synchronous=FULL, CHAIN=none) with `sockets`
 * WebSocket connections held open for the whole run: half on /ws, half on /im, one of each per user, users
 * paired in direct chats. `rate` messages per second in all, half signed Relation ONE messages sent as
 * /ws `send` frames, half /im SEND (text). Every minute it prints the server's RSS and V8 heap (read from
 * its own GET /metrics), messages acknowledged, errors; at the end the RSS and heap slope (least squares
 * over the minutes after the first, MiB per minute), and messages lost: acknowledged but never pushed to
 * the receiver's /im connection (which gets both faces' messages). Lost must be 0, and so must duplicates
 * (one event pushed twice to one /im connection).
 *
 * `--cluster N` (N >= 2): the same load on N processes started by deploy/cluster.sh (the documented way)
 * on a scratch PostgreSQL database (BENCH_DATABASE_URL, default the local server) and a nats-server of
 * the run's own, behind HAProxy with deploy/haproxy.cfg: every client connects and logs in through
 * HAProxy's port only (PROXY v2 to the processes), so a sender and its receiver often sit on different
 * processes and the push crosses the bus. Every minute each process's RSS and heap (its own /metrics);
 * at the end each process's slopes, CPU per acknowledged message of the servers, their PostgreSQL
 * backends, NATS, HAProxy and the load generator, and the database read back (every conversation's seqs
 * gap-free, events stored against messages acknowledged).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { dmCid } from '../src/roles/chat/ids.js';
import { CpuMeter, loginToken, numericArgs, startBenchServer } from './bench-server.js';
import { benchIdentity, benchMessage, type BenchIdentity } from './bench-sign.js';
import { clusterCpu, startSoakCluster, type SoakCluster } from './soak-cluster.js';

const num = numericArgs();
const MINUTES = num('minutes', 30);
const RATE = num('rate', 1000);
const SOCKETS = num('sockets', 1000);
const CLUSTER = num('cluster', 1);
const USERS = Math.max(2, Math.floor(SOCKETS / 2) & ~1);
const out = (s: string): void => { process.stdout.write(`${s}\n`); };
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });
type M = Map<unknown, unknown>;

interface User {
  id: BenchIdentity;
  address: string;
  peer: number;
  token: string;
  ws: WebSocket;
  im: WebSocket;
  imSeq: number;
  /** Duplicate check of the pushes on this user's /im connection: every (cid, mid) it was pushed, exactly (a few MiB per 100,000). */
  seen: Map<string, Set<number>>;
}

function open(url: string, onMessage: (data: Buffer) => void): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('message', onMessage);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : Number.NaN;
}

/** A process's /metrics; on a loaded machine a read may meet a closed connection: three tries, then '' (the minute's figures NaN). */
async function metricsText(url: string): Promise<string> {
  for (let attempt = 1; attempt <= 3; attempt++) {
    try {
      return await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(20_000) })).text();
    } catch (e) {
      out(`soak: reading ${url}/metrics failed (${String(e)}${e instanceof Error && e.cause ? `: ${String(e.cause)}` : ''})${attempt < 3 ? '; again' : ''}`);
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
  return '';
}

/** Least squares over the minutes whose reading succeeded (a NaN is a minute without one). */
function slope(all: number[]): number {
  const pts = all.map((y, x) => [x, y] as const).filter(([, y]) => Number.isFinite(y));
  const n = pts.length;
  if (n < 2) return 0;
  const xm = pts.reduce((a, [x]) => a + x, 0) / n;
  const ym = pts.reduce((a, [, y]) => a + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of pts) { num += (x - xm) * (y - ym); den += (x - xm) ** 2; }
  return num / den;
}


/** The cluster started, stopped on any way out (its processes run in a group of their own). */
let activeCluster: SoakCluster | null = null;

/** A login through HAProxy on a loaded machine may meet a reset connection: tried five times, the cause printed. */
async function login(url: string, id: BenchIdentity): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await loginToken(url, id.wallet);
    } catch (e) {
      const cause = e instanceof Error && e.cause ? ` (${String(e.cause)})` : '';
      if (attempt === 5) throw new Error(`login failed 5 times: ${String(e)}${cause}`);
      out(`soak: login attempt ${attempt} failed: ${String(e)}${cause}; again`);
      await new Promise((r) => setTimeout(r, 500 * attempt));
    }
  }
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-soak-'));
  const soakEnv = { CHAIN: 'none', ARCHIVE_ENABLED: 'false', REQUIRE_NAME: 'false', WS_MAX_FRAMES_PER_SEC: '10000' };
  let cluster: SoakCluster | null = null;
  let server: { url: string; pid: number; stop(): void };
  if (CLUSTER >= 2) {
    cluster = await startSoakCluster(CLUSTER, dataDir, soakEnv, out);
    activeCluster = cluster;
    server = { url: cluster.url, pid: 0, stop: () => undefined };
  } else {
    server = await startBenchServer(dataDir, soakEnv, out);
  }
  const wsBase = server.url.replace('http', 'ws');
  out(`soak: ${MINUTES} min at ${RATE} messages/s, ${USERS * 2} sockets (${USERS} on /ws, ${USERS} on /im), ${cluster ? `${CLUSTER} processes behind HAProxy ${server.url}` : `server ${server.url}`} (machine shared: figures are noisy)`);
  let acked = 0;
  let errors = 0;
  let duplicates = 0;
  const errorKinds = new Map<string, number>();
  const fail = (kind: string): void => { errors++; errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1); };
  /** key (R1 id or im text) -> receiver index, for acknowledged messages not yet seen pushed to the receiver's /im socket. */
  const awaiting = new Map<string, number>();
  const pushedEarly = new Set<string>();
  const users: User[] = [];
  const ids = Array.from({ length: USERS }, () => benchIdentity());
  for (let i = 0; i < USERS; i++) {
    const id = ids[i] as BenchIdentity;
    const token = await login(server.url, id);
    const u = { id, address: id.address.toLowerCase(), peer: i ^ 1, token, imSeq: 1, seen: new Map<string, Set<number>>() } as User;
    const onPushKey = (key: string): void => {
      if (awaiting.get(key) === i) awaiting.delete(key);
      else if (!awaiting.has(key)) pushedEarly.add(`${i}:${key}`);
    };
    u.ws = await open(`${wsBase}/ws?token=${token}`, (data) => {
      const f = JSON.parse(data.toString()) as { type: string; result?: { id: string }; error?: { code: string } };
      if (f.type === 'sent' && f.result) {
        acked++;
        const key = f.result.id;
        if (pushedEarly.delete(`${u.peer}:${key}`)) return;
        awaiting.set(key, u.peer);
      } else if (f.type === 'error') fail(`ws ${f.error?.code}`);
    });
    u.im = await open(`${wsBase}/im`, (data) => {
      const env = unpackr.unpack(data) as M;
      const cmd = env.get(1);
      const body = env.get(4) as M | undefined;
      if (cmd === 4 && body) {
        const mid = body.get(3) as number;
        const cid = body.get(1) as string;
        let seen = u.seen.get(cid);
        if (!seen) u.seen.set(cid, (seen = new Set<number>()));
        if (seen.has(mid)) duplicates++;
        else seen.add(mid);
        const text = (body.get(7) as M).get(0) as string;
        onPushKey(body.get(2) === 64 ? (JSON.parse(text) as { id: string }).id : text);
      } else if (cmd === 3 && body) {
        const seq = env.get(2) as number;
        if (seq === 1) return; // not a send
        acked++;
        const key = `im-${i}-${seq}`;
        if (pushedEarly.delete(`${u.peer}:${key}`)) return;
        awaiting.set(key, u.peer);
      } else if (cmd === 0) fail(`im ${String(body?.get(1))}`);
    });
    u.im.send(packr.pack(new Map<unknown, unknown>([[0, 1], [1, 1], [2, 1], [4, new Map([[0, token]])]])));
    for (const ws of [u.ws, u.im]) ws.on('close', (code) => { if (!stopping) fail(`closed ${code}`); });
    users.push(u);
  }
  out(`soak: ${users.length * 2} sockets open${cluster ? ` (per process: ${(await cluster.connections()).join(', ')})` : ''}`);
  let stopping = false;
  let turn = 0;
  const t0 = Date.now();
  // Paced by the clock, not by the timer's ticks (which come late on a loaded machine): each tick sends what is due.
  const ticker = setInterval(() => {
    const due = Math.floor(((Date.now() - t0) / 1000) * RATE) - turn;
    for (let n = 0; n < due; n++) {
      const u = users[turn % users.length] as User;
      const peer = users[u.peer] as User;
      if (turn % 2 === 0) {
        const m = benchMessage(u.id, peer.id.address, `soak-${turn}`);
        u.ws.send(JSON.stringify({ type: 'send', message: m }));
      } else {
        const seq = ++u.imSeq;
        const cid = dmCid(u.address, peer.address);
        u.im.send(packr.pack(new Map<unknown, unknown>([[0, 1], [1, 3], [2, seq], [4, new Map<unknown, unknown>([[1, cid], [2, 1], [7, new Map([[0, `im-${users.indexOf(u)}-${seq}`]])]])]])));
      }
      turn++;
    }
  }, 10);
  const cpu = cluster ? null : new CpuMeter(server.pid);
  const cpuBefore = cluster ? await clusterCpu(cluster) : null;
  const started = Date.now();
  /** The processes whose /metrics are read: the one server, or each of the cluster's. */
  const metricsUrls = cluster ? cluster.processes.map((p) => p.url) : [server.url];
  const names = cluster ? cluster.processes.map((p) => p.name) : ['server'];
  const rss: number[][] = metricsUrls.map(() => []);
  const heap: number[][] = metricsUrls.map(() => []);
  let lastAcked = 0;
  for (let minute = 1; minute <= MINUTES; minute++) {
    await new Promise((r) => setTimeout(r, 60_000));
    const mem: string[] = [];
    for (const [k, url] of metricsUrls.entries()) {
      const text = await metricsText(url);
      const r = sample(text, 'process_resident_memory_bytes') / 1048576;
      const h = sample(text, 'nodejs_heap_size_used_bytes') / 1048576;
      (rss[k] as number[]).push(r);
      (heap[k] as number[]).push(h);
      mem.push(`${cluster ? `${names[k]} ` : ''}RSS ${r.toFixed(1)} MiB, heap used ${h.toFixed(1)} MiB`);
    }
    out(`minute ${minute}: ${mem.join('; ')}; acknowledged ${acked - lastAcked} (${((acked - lastAcked) / 60).toFixed(0)}/s), errors ${errors}, awaiting push ${awaiting.size}, duplicates ${duplicates}`);
    lastAcked = acked;
  }
  clearInterval(ticker);
  const seconds = (Date.now() - started) / 1000;
  // Grace for the pushes still in flight (a loaded machine can be many seconds behind): until none is
  // awaited, or none has arrived for 30 s, at most 5 minutes; what is awaited then is lost.
  const graceStart = Date.now();
  let lastSize = awaiting.size;
  let lastProgress = Date.now();
  while (awaiting.size > 0 && Date.now() - lastProgress < 30_000 && Date.now() - graceStart < 300_000) {
    await new Promise((r) => setTimeout(r, 200));
    if (awaiting.size < lastSize) { lastSize = awaiting.size; lastProgress = Date.now(); }
  }
  out(`after the sends: ${((Date.now() - graceStart) / 1000).toFixed(0)} s for the pushes still in flight${awaiting.size > 0 ? `; never pushed, e.g.: ${[...awaiting].slice(0, 10).map(([k, r]) => `${k} -> user ${r}`).join(', ')}` : ''}`);
  stopping = true;
  const tail = (xs: number[]): number[] => (xs.length > 2 ? xs.slice(1) : xs);
  for (const [k, name] of names.entries()) {
    out(`${cluster ? `${name}: ` : ''}RSS slope ${slope(tail(rss[k] as number[])).toFixed(2)} MiB/min, heap slope ${slope(tail(heap[k] as number[])).toFixed(2)} MiB/min (minutes 2..${MINUTES}; RSS ${Math.min(...(rss[k] as number[]).filter(Number.isFinite)).toFixed(0)}-${Math.max(...(rss[k] as number[]).filter(Number.isFinite)).toFixed(0)} MiB)`);
  }
  out(`acknowledged ${acked} in ${seconds.toFixed(0)} s (${(acked / seconds).toFixed(0)}/s), errors ${errors}${errorKinds.size > 0 ? ` ${JSON.stringify([...errorKinds])}` : ''}, lost ${awaiting.size}, duplicates ${duplicates}`);
  let sound = awaiting.size === 0 && errors === 0 && duplicates === 0;
  if (cluster && cpuBefore) {
    out((await clusterCpu(cluster)).report(cpuBefore, Math.max(1, acked), seconds));
    const db = await cluster.readBack();
    out(`database: ${db.events} events in ${db.conversations} conversations (acknowledged ${acked}), seqs ${db.gapFree ? 'gap-free' : `WITH GAPS in ${db.gapped} conversations`}, stored twice ${db.duplicateIds} (R1 ids)`);
    sound &&= db.gapFree && db.duplicateIds === 0 && db.events >= acked;
    const errorLines = cluster.errorLines();
    out(`server log lines at error level: ${errorLines.length}${errorLines.length > 0 ? `, e.g. ${[...new Set(errorLines.map((l) => l.replace(/"(time|pid|reqId|connId|rid|cid|mid|seq)":[^,}]*,?/g, '')))].slice(0, 5).join(' | ')}` : ''}`);
  } else if (cpu) {
    out(cpu.report(Math.max(1, acked), seconds));
  }
  for (const u of users) { u.ws.close(); u.im.close(); }
  server.stop();
  await cluster?.stop();
  // The servers' logs (the cluster's in cluster/) are kept when something went wrong.
  if (sound) rmSync(dataDir, { recursive: true, force: true });
  else out(`soak: not sound; logs kept in ${dataDir}`);
  process.exit(sound ? 0 : 1);
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => { void (activeCluster?.stop() ?? Promise.resolve()).finally(() => process.exit(130)); });
}

main().catch(async (e: unknown) => {
  process.stderr.write(`soak failed: ${e instanceof Error ? `${e.stack}${e.cause ? ` (cause: ${String(e.cause)})` : ''}` : String(e)}\n`);
  await activeCluster?.stop();
  process.exit(1);
});
