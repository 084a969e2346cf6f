/**
 * Benchmark of the MsgPack face: the real server (dist build, its own process, SQLite synchronous=FULL)
 * driven over /im by many WebSocket connections on this machine.
 *
 *   npm run build && node dist/scripts/bench-im.js [--connections 1000] [--events 100000] [--window 8]
 *     [--rate 10000] [--rate-seconds 5] [--store sqlite|postgres|both] [--processes 1] [--payload 53]
 *
 * `--store postgres` runs the server with STORE=postgres on a scratch database of the local PostgreSQL
 * (BENCH_DATABASE_URL to use another), `both` runs SQLite and then PostgreSQL in the same run.
 * `--processes 2` (PostgreSQL only) runs two server processes on one NATS bus (BENCH_NATS_URL, default the
 * local server); each sender and its receiver sit on different processes, so every push crosses the bus.
 *
 * Half the connections are senders, each paired with a receiver in its own direct chat. Every sender
 * keeps `window` text events in flight. Prints events/s acknowledged (answer with mid and t, after the
 * durable commit), p50/p99 ack latency, pushes received, and bytes per event on the wire against the
 * JSON face (signed Relation ONE message + /ws push for the same text). Then a latency phase: the same
 * senders offer `rate` events/s in all, spread evenly, for `rate-seconds`, and the ack latency at that
 * load (not at saturation, where it is only queueing) is printed, with the server's CPU and bytes written
 * per event beside the saturated phase's. `--payload` is the text's length in characters (default 53; an
 * end-to-end encrypted payload is 1-2 KB, so 1500 measures that).
 */
import { backendCpuBetween, benchStore, commitLine, CpuMeter, eventLoopDelay, loginToken, numericArgs, processCpuSeconds, processWriteBytes, storeKinds, type BenchServer, type BenchStore, type StoreKind } from './bench-server.js';
import { startBenchCluster } from './bench-cluster.js';
import { cpus, loadavg } from 'node:os';
import { Packr, Unpackr } from 'msgpackr';
import { Wallet } from 'ethers';
import WebSocket from 'ws';
import { dmCid } from '../src/roles/chat/ids.js';
import { sendCorked } from '../src/gateway/ws/cork.js';
import { messageFrame } from '../src/roles/chat/render.js';
import { Face } from '../src/store/port.js';
import { benchIdentity, benchMessage } from './bench-sign.js';

const num = numericArgs();
const CONNECTIONS = num('connections', 1000);
const EVENTS = num('events', 100_000);
const WINDOW = num('window', 8);
const RATE = num('rate', 10_000);
const RATE_SECONDS = num('rate-seconds', 5);
const PROCESSES = num('processes', 1);
const PAYLOAD = num('payload', 53);
const TEXT = 'hello, this is a benchmark message of moderate length '.repeat(Math.ceil(PAYLOAD / 54)).slice(0, PAYLOAD);
const now = (): number => performance.timeOrigin + performance.now();
const log = (s: string): void => { process.stdout.write(`${s}\n`); };
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });


interface Conn { ws: WebSocket; bytesIn: number; pushes: number; pending: Map<number, number>; onAnswer: ((seq: number, cmd: number, code?: string) => void) | null }

async function open(imUrl: string, token: string): Promise<Conn> {
  const ws = new WebSocket(imUrl, { perMessageDeflate: false });
  const c: Conn = { ws, bytesIn: 0, pushes: 0, pending: new Map(), onAnswer: null };
  await new Promise<void>((resolve, reject) => { ws.once('open', () => resolve()); ws.once('error', reject); });
  ws.on('message', (data: Buffer) => {
    c.bytesIn += data.length;
    const env = unpackr.unpack(data) as Map<number, unknown>;
    const cmd = env.get(1) as number;
    if (cmd === 4) c.pushes++;
    else c.onAnswer?.(env.get(2) as number, cmd, cmd === 0 ? String((env.get(4) as Map<number, unknown> | undefined)?.get(1)) : undefined);
  });
  await new Promise<void>((resolve, reject) => {
    c.onAnswer = (_s, cmd) => (cmd === 1 ? resolve() : reject(new Error('auth failed')));
    ws.send(packr.pack(new Map<number, unknown>([[0, 1], [1, 1], [2, 0], [4, new Map([[0, token]])]])));
  });
  return c;
}

/** Every server's /metrics text, for the group commits between two readings. */
const scrape = (servers: readonly BenchServer[]): Promise<string[]> => Promise.all(servers.map(async (s) => (await fetch(`${s.url}/metrics`)).text()));
/** The group commits and the event-loop delay of each server between two scrapes. */
const commitLines = (before: string[], after: string[]): string => after.map((a, k) => {
  const lag = eventLoopDelay(a);
  return `${commitLine(before[k] ?? '', a)}; server event-loop delay p99 ${lag.p99.toFixed(1)} ms, max ${lag.max.toFixed(1)} ms`;
}).join('\n  ');

/** Offers RATE events/s, spread over the senders in 5 ms ticks, for RATE_SECONDS; returns the ack latency line. */
async function ratePhase(conns: Conn[], wallets: Wallet[], pairs: number, servers: readonly BenchServer[], store: BenchStore, saturated: PerEvent): Promise<string> {
  const serverPids = servers.map((s) => s.pid);
  const latencies: number[] = [];
  let errors = 0;
  const codes = new Map<string, number>();
  let sent = 0;
  let answered = 0;
  const seqs = new Array<number>(pairs).fill(1_000_000_000);
  for (let p = 0; p < pairs; p++) {
    const sender = conns[2 * p] as Conn;
    sender.onAnswer = (seq, cmd, code) => {
      const at = sender.pending.get(seq);
      if (at === undefined) return;
      sender.pending.delete(seq);
      latencies.push(now() - at);
      if (cmd !== 3) {
        errors++;
        codes.set(code ?? '?', (codes.get(code ?? '?') ?? 0) + 1);
      }
      answered++;
    };
  }
  const cids = Array.from({ length: pairs }, (_, p) => dmCid(wallets[2 * p]?.address ?? '', wallets[2 * p + 1]?.address ?? ''));
  const total = RATE * RATE_SECONDS;
  const t0 = now();
  const metrics0 = await scrape(servers);
  const meter = meterOf(serverPids);
  const db0 = await store.backendCpu();
  const cost0 = costOf(serverPids);
  let next = 0;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const due = Math.min(total, Math.floor(((now() - t0) / 1000) * RATE));
      for (; sent < due; sent++) {
        const p = next;
        next = (next + 1) % pairs;
        const sender = conns[2 * p] as Conn;
        const seq = ++(seqs[p] as number);
        sender.pending.set(seq, now());
        sendCorked(sender.ws, packr.pack(new Map<number, unknown>([[0, 1], [1, 3], [2, seq], [4, new Map<number, unknown>([[1, cids[p]], [2, 1], [7, new Map([[0, TEXT]])]])]])), true);
      }
      if (sent >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 5);
  });
  const deadline = now() + 10_000;
  while (answered < total && now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const cpuLine = meter.report(answered, (now() - t0) / 1000) + (await pgLine(store, db0, answered));
  const cost = perEvent(cost0, costOf(serverPids), answered);
  const commits = commitLines(metrics0, await scrape(servers));
  latencies.sort((x, y) => x - y);
  const pct = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  return `ack latency at ${RATE} events/s offered for ${RATE_SECONDS} s: p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms,`
    + ` max ${pct(1).toFixed(1)} ms (${answered}/${total} answered, ${errors} errors${errors ? ` ${JSON.stringify(Object.fromEntries(codes))}` : ''})\n  ${cpuLine}`
    + `\n  at ${RATE}/s: server CPU ${(cost.cpu * 1e6).toFixed(0)} us per event = ${(cost.cpu / saturated.cpu).toFixed(2)}x the saturated ${(saturated.cpu * 1e6).toFixed(0)} us (target <= 1.2x);`
    + ` ${(cost.written / 1024).toFixed(1)} KiB written per event (saturated ${(saturated.written / 1024).toFixed(1)} KiB); payload ${PAYLOAD} characters; load average ${loadavg()[0]?.toFixed(2)}`
    + `\n  ${commits}`;
}

interface PerEvent { cpu: number; written: number }
/** CPU seconds and bytes written to storage so far, all server processes together. */
const costOf = (pids: number[]): PerEvent => ({
  cpu: pids.reduce((t, p) => t + (processCpuSeconds(p) ?? NaN), 0),
  written: pids.reduce((t, p) => t + (processWriteBytes(p) ?? NaN), 0),
});
const perEvent = (a: PerEvent, b: PerEvent, n: number): PerEvent => ({ cpu: (b.cpu - a.cpu) / n, written: (b.written - a.written) / n });

/** CPU meters of every server process; their report has one line per process when there are several. */
function meterOf(pids: number[]): { report(events: number, seconds: number): string } {
  const meters = pids.map((pid) => new CpuMeter(pid));
  return {
    report: (events, seconds) => (meters.length === 1
      ? (meters[0] as CpuMeter).report(events, seconds)
      : meters.map((m, k) => `process ${k + 1}: ${m.report(events, seconds)}`).join('\n  ')),
  };
}

/** For PostgreSQL: the CPU its backends spent per event since `before`. */
async function pgLine(store: BenchStore, before: Map<number, number>, events: number): Promise<string> {
  if (store.kind !== 'postgres') return '';
  const s = backendCpuBetween(before, await store.backendCpu());
  return `; PostgreSQL backends of this store ${Math.round((s * 1e6) / events)} µs per event (shared WAL writer etc. not counted)`;
}

async function main(): Promise<void> {
  for (const kind of storeKinds()) await runOn(kind);
  process.exit(0);
}

async function runOn(kind: StoreKind): Promise<void> {
  const store = await benchStore(kind);
  log(`--- store: ${kind}${kind === 'postgres' ? ' (PostgreSQL 15 on this machine, same cores; archiver off)' : ' (SQLite synchronous=FULL)'}`);
  const cluster = await startBenchCluster(kind === 'postgres' ? PROCESSES : 1, { WS_MAX_FRAMES_PER_SEC: '100000', REQUIRE_NAME: 'false', ...store.env }, log);
  const { servers } = cluster;
  const pids = servers.map((s) => s.pid);
  // Connection i on process (i + floor(i / 2)) mod n: with two, each sender (even i) and its receiver differ.
  const serverOf = (i: number): BenchServer => servers[(i + Math.floor(i / 2)) % servers.length] as BenchServer;
  log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? '?'}), shared with other work; ${servers.length > 1 ? `${servers.length} server processes` : 'server in its own process'}`);
  try {
    const wallets = Array.from({ length: CONNECTIONS }, () => new Wallet(Wallet.createRandom().privateKey));
    const tokens: string[] = [];
    for (let i = 0; i < wallets.length; i += 50) tokens.push(...(await Promise.all(wallets.slice(i, i + 50).map((w, j) => loginToken(serverOf(i + j).url, w)))));
    const conns: Conn[] = [];
    for (let i = 0; i < tokens.length; i += 100) conns.push(...(await Promise.all(tokens.slice(i, i + 100).map((t, j) => open(serverOf(i + j).url.replace('http', 'ws') + '/im', t)))));
    log(`${conns.length} /im connections authenticated`);
    const pairs = Math.floor(conns.length / 2);
    const perSender = Math.ceil(EVENTS / pairs);
    const latencies: number[] = [];
    let acked = 0;
    let errors = 0;
    const errorCodes = new Map<string, number>();
    let bytesOut = 0;
    const metrics0 = await scrape(servers);
    const t0 = now();
    const meter = meterOf(pids);
    const db0 = await store.backendCpu();
    const cost0 = costOf(pids);
    await Promise.all(Array.from({ length: pairs }, (_, p) => new Promise<void>((resolve) => {
      const sender = conns[2 * p] as Conn;
      const cid = dmCid(wallets[2 * p]?.address ?? '', wallets[2 * p + 1]?.address ?? '');
      let sent = 0;
      let done = 0;
      const sendOne = (): void => {
        const seq = ++sent;
        const frame = packr.pack(new Map<number, unknown>([[0, 1], [1, 3], [2, seq], [4, new Map<number, unknown>([[1, cid], [2, 1], [7, new Map([[0, TEXT]])]])]]));
        bytesOut += frame.length;
        sender.pending.set(seq, now());
        // A sender answered several times in one turn sends its next frames in one write, as the server does.
        sendCorked(sender.ws, frame, true);
      };
      sender.onAnswer = (seq, cmd, code) => {
        const at = sender.pending.get(seq);
        if (at === undefined) return;
        sender.pending.delete(seq);
        latencies.push(now() - at);
        if (cmd === 3) acked++;
        else {
          errors++;
          errorCodes.set(code ?? '?', (errorCodes.get(code ?? '?') ?? 0) + 1);
        }
        done++;
        if (done === perSender) resolve();
        else if (sent < perSender) sendOne();
      };
      for (let i = 0; i < Math.min(WINDOW, perSender); i++) sendOne();
    })));
    const elapsed = (now() - t0) / 1000;
    const cpuLine = meter.report(acked + errors, elapsed) + (await pgLine(store, db0, acked + errors));
    const saturated = perEvent(cost0, costOf(pids), acked + errors);
    await new Promise((r) => setTimeout(r, 500));
    const pushes = conns.reduce((n, c, i) => n + (i % 2 === 1 ? c.pushes : 0), 0);
    const bytesIn = conns.reduce((n, c) => n + c.bytesIn, 0);
    latencies.sort((x, y) => x - y);
    const pct = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
    log(`acknowledged: ${acked} events in ${elapsed.toFixed(2)} s = ${Math.round(acked / elapsed)} events/s (${errors} errors${errors ? ` ${JSON.stringify(Object.fromEntries(errorCodes))}` : ''})`);
    log(`ack latency: p50 ${pct(0.5).toFixed(1)} ms, p99 ${pct(0.99).toFixed(1)} ms (window ${WINDOW} per sender, ${pairs} senders)`);
    log(cpuLine);
    log(`  ${commitLines(metrics0, await scrape(servers))}`);
    log(`pushes received by the receivers: ${pushes} (senders' own devices get a copy too)`);
    const perEventIm = (bytesOut + bytesIn) / acked / 1; // request + ack + pushes (to both participants)
    log(`/im bytes per event on the wire (send + ack + 2 pushes, WebSocket payload): ${perEventIm.toFixed(0)}`);
    if (RATE > 0 && RATE_SECONDS > 0) log(await ratePhase(conns, wallets, pairs, servers, store, saturated));
    // The same text on the JSON face: the signed message POSTed, its answer, and the /ws push to both sides.
    const from = benchIdentity();
    const to = benchIdentity();
    const msg = benchMessage(from, to.address, TEXT);
    const body = JSON.stringify(msg);
    const stored = { pos: 1, cid: dmCid(from.address, to.address), seq: 1, id: msg.id, face: Face.RELATION_ONE, kind: 0, sender: from.address.toLowerCase(), ts: msg.timestamp, receivedAt: Date.now(), body, counts: true, onlyFor: null };
    const push = messageFrame(to.address.toLowerCase(), stored, true).length;
    const answer = JSON.stringify({ id: msg.id, chatId: to.address.toLowerCase(), seq: 1, receivedAt: Date.now(), duplicate: false }).length;
    log(`JSON face bytes per event (POST body + answer body + 2 /ws pushes, no HTTP headers): ${body.length + answer + 2 * push}`);
    for (const cn of conns) cn.ws.terminate();
  } finally {
    await cluster.stop();
    await store.drop();
  }
}

void main();
