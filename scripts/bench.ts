/**
 * End-to-end benchmark of the Relation ONE face: the real server (dist build, its own process, SQLite
 * with synchronous=FULL) driven over HTTP and WebSocket on this machine.
 *
 *   npm run bench -- [--messages 30000] [--receivers 1000] [--senders 50] [--concurrency 2048 on /ws, 512 on REST]
 *                    [--rate 1000] [--latency-seconds 10] [--store sqlite|postgres|both] [--processes 1]
 *                    [--transport ws|rest|both] [--runs 3] [--sockets 128] [--payload 200]
 *
 * `--transport ws` sends every message as a `/ws` `send` frame over `--sockets` authenticated
 * WebSockets (the concurrency spread over them), `rest` as `POST /message/send` over keep-alive HTTP;
 * `both` (the default) measures each in turn on the same server. Every phase runs `--runs` times and
 * the median is printed beside the runs.
 *
 * `--store postgres` runs the server with STORE=postgres on a scratch database of the local PostgreSQL
 * (BENCH_DATABASE_URL to use another), `both` runs SQLite and then PostgreSQL in the same run.
 * `--processes 2` runs two server processes on that PostgreSQL and a NATS bus (BENCH_NATS_URL, default
 * the local server): receivers and sends alternate between them, so about half the pushes cross the bus.
 *
 * Prints, from one run: the machine's signature-recovery ceiling (native and pure JS), verified messages
 * per second end to end (send -> verified -> durable -> pushed to the receiver's socket), and p50/p99
 * send-to-push latency at a fixed offered rate. Both phases print the server's CPU and the bytes it wrote
 * to storage per message (/proc/<pid>/io write_bytes), and the latency phase their ratio to the
 * throughput phase's (saturated) figures. `--payload` is the length of each message's content (base64
 * text; the default 200 is a short chat line, 1500 about what end-to-end encryption produces).
 */
import { backendCpuBetween, benchStore, bucketPct, buckets, diskFsyncLatency, eventLoopDelay, loginToken, median, numericArgs, processCpuSeconds, processWriteBytes, storeKinds, threadCpuLine, threadCpuSeconds, type BenchServer, type StoreKind } from './bench-server.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { getBytes, Wallet } from 'ethers';
import WebSocket from 'ws';
import { recoverWith, personalDigest, splitSignature } from '../src/roles/identity/recover-core.js';
import { benchIdentity, benchMessage, type BenchIdentity } from './bench-sign.js';
import { sendAcross, startBenchCluster } from './bench-cluster.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const num = numericArgs();
const MESSAGES = num('messages', 30_000);
const RECEIVERS = num('receivers', 1000);
const SENDERS = num('senders', 50);
/**
 * Sends in flight during the throughput phase. At saturation a send waits in the server's queues, so
 * throughput = in flight / time per send (Little's law): 10,000/s at ~200 ms each is ~2,000 in flight,
 * what 2,000 clients each waiting for their answer would hold. Defaults: 2,048 on /ws (16 per socket),
 * 512 on REST (one per keep-alive connection); --concurrency sets both.
 */
const concurrencyArg = process.argv.includes('--concurrency') ? num('concurrency', 0) : 0;
const CONCURRENCY = { ws: concurrencyArg || 2048, rest: concurrencyArg || 512 };
const RATE = num('rate', 1000);
const LATENCY_SECONDS = num('latency-seconds', 10);
const PROCESSES = num('processes', 1);
const RUNS = num('runs', 3);
const SOCKETS = num('sockets', 128);
const PAYLOAD = num('payload', 200);
type Transport = 'rest' | 'ws';
const TRANSPORTS: Transport[] = ((): Transport[] => {
  const i = process.argv.indexOf('--transport');
  const v = i >= 0 ? process.argv[i + 1] : 'both';
  if (v === 'both') return ['ws', 'rest'];
  if (v === 'ws' || v === 'rest') return [v];
  throw new Error('--transport is ws, rest or both');
})();
const now = (): number => performance.timeOrigin + performance.now();
const log = (s: string): void => { process.stdout.write(`${s}\n`); };

function ceiling(): { nativePerSec: number; jsMsPerRecovery: number } {
  const w = Wallet.createRandom();
  const samples = Array.from({ length: 64 }, (_, i) => {
    const msg = getBytes(Wallet.createRandom().privateKey);
    void i;
    const split = splitSignature(w.signMessageSync(msg));
    if (!split) throw new Error('bad sample');
    return { digest: personalDigest(msg), split };
  });
  const native = recoverWith('native');
  const js = recoverWith('js');
  let n = 0;
  const t0 = now();
  while (now() - t0 < 1500) for (const s of samples) { native(s.digest, s.split); n++; }
  const nativePerSec = n / ((now() - t0) / 1000);
  let m = 0;
  const t1 = now();
  while (now() - t1 < 1500) for (const s of samples.slice(0, 8)) { js(s.digest, s.split); m++; }
  return { nativePerSec, jsMsPerRecovery: (now() - t1) / m };
}

/** CPU seconds (user + system, all threads) a process has used so far, NaN where /proc cannot tell. */
const cpuSeconds = (pid: number): number => processCpuSeconds(pid) ?? NaN;

/** Every push lands here: message id -> time received. */
const received = new Map<string, number>();
let onPush: (() => void) | null = null;
const ID_AT = Buffer.from('"message":{"id":"');
const READY = Buffer.from('"ready"');

function openReceiver(wsUrl: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsUrl}?token=${token}`, { perMessageDeflate: false });
    ws.on('message', (data: Buffer) => {
      // Read as bytes: decoding every pushed frame to a string would be the load generator's largest cost.
      const i = data.indexOf(ID_AT);
      if (i >= 0) {
        received.set(data.toString('latin1', i + ID_AT.length, i + ID_AT.length + 66), now());
        onPush?.();
      } else if (data.indexOf(READY) >= 0) resolve(ws);
    });
    ws.on('error', reject);
  });
}

function runSenderOn(url: string, bodies: string[], concurrency: number, ratePerSec: number, transport: Transport, tokens: string[]): Promise<{ sentAt: Float64Array; statuses: [number, number][]; elapsedMs: number }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(path.join(here, 'bench-sender.js'), { workerData: { url, bodies, concurrency, ratePerSec, transport, tokens } });
    w.once('message', resolve);
    w.once('error', reject);
  });
}

function waitForPushes(ids: string[], timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    const check = (): boolean => ids.every((id) => received.has(id));
    const timer = setTimeout(() => { onPush = null; resolve(); }, timeoutMs);
    let pending = ids.filter((id) => !received.has(id)).length;
    onPush = () => {
      pending--;
      if (pending <= 0 && check()) { clearTimeout(timer); onPush = null; resolve(); }
    };
    if (check()) { clearTimeout(timer); onPush = null; resolve(); }
  });
}

let lastMetrics: string[] = [];
/** The servers' event-loop delay since the last scrape (p99 and max), and their group commits' durations. */
async function loopLag(servers: readonly BenchServer[]): Promise<string[]> {
  const before = lastMetrics;
  lastMetrics = await Promise.all(servers.map(async (s) => (await fetch(`${s.url}/metrics`)).text()));
  return servers.map((_, k) => {
    const text = lastMetrics[k] as string;
    const c0 = buckets(before[k] ?? '', 'rim_commit_seconds');
    const c1 = buckets(text, 'rim_commit_seconds');
    const lag = eventLoopDelay(text);
    return `p99 ${lag.p99.toFixed(1)} ms, max ${lag.max.toFixed(1)} ms;`
      + ` group commits (posted -> durable) p50 ${bucketPct(c0, c1, 50)}, p99 ${bucketPct(c0, c1, 99)}, max ${bucketPct(c0, c1, 100)};`
      + ` archive backlog now ${(Number(/^rim_archive_backlog_bytes (\S+)$/m.exec(text)?.[1] ?? NaN) / 1048576).toFixed(1)} MiB (a bundle is cut at 100 MB)`;
  });
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  log(`machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? 'unknown'}), node ${process.version}`);
  const c = ceiling();
  const cores = availableParallelism();
  log(`ceiling: native secp256k1 recovery ${c.nativePerSec.toFixed(0)}/s on one core (${(1e6 / c.nativePerSec).toFixed(0)} us), `
    + `so at most ~${(c.nativePerSec * cores).toFixed(0)} recoveries/s on ${cores} cores with nothing else running; ethers pure JS ${c.jsMsPerRecovery.toFixed(2)} ms per recovery`);

  // Each transport on a fresh server and store: the store then holds the same when each is measured (a
  // long run on one store also crosses the archive's 100 MB trigger, and the bundle cut shares the cores).
  for (const kind of storeKinds()) for (const t of TRANSPORTS) await runOn(kind, c, cores, t);
  log('summary:');
  for (const line of summary) log(`  ${line}`);
}

const summary: string[] = [];

async function runOn(kind: StoreKind, c: { nativePerSec: number }, cores: number, transport: Transport): Promise<void> {
  const store = await benchStore(kind);
  log(`--- store: ${kind}, transport ${transport}${kind === 'postgres' ? ' (PostgreSQL 15 on this machine, same cores; archiver off)' : ` (SQLite synchronous=${process.env['SQLITE_SYNCHRONOUS'] ?? 'FULL'})`}`);
  const cluster = await startBenchCluster(kind === 'postgres' ? PROCESSES : 1, { CHAIN: process.env['CHAIN'] ?? 'none', SQLITE_SYNCHRONOUS: process.env['SQLITE_SYNCHRONOUS'] ?? 'FULL', WS_MAX_FRAMES_PER_SEC: '100000', ...store.env }, log);
  const { servers } = cluster;
  const serverCpu = (): number => servers.reduce((t, s) => t + cpuSeconds(s.pid), 0);
  const serverWritten = (): number => servers.reduce((t, s) => t + (processWriteBytes(s.pid) ?? NaN), 0);
  try {
    const receivers = Array.from({ length: RECEIVERS }, () => new Wallet(Wallet.createRandom().privateKey));
    const sockets: WebSocket[] = [];
    for (let i = 0; i < receivers.length; i += 50) {
      const batch = receivers.slice(i, i + 50);
      // Receiver i connects to process i mod n.
      const at = (j: number): BenchServer => servers[(i + j) % servers.length] as BenchServer;
      const tokens = await Promise.all(batch.map((r, j) => loginToken(at(j).url, r)));
      sockets.push(...(await Promise.all(tokens.map((t, j) => openReceiver(at(j).url.replace('http', 'ws') + '/ws', t)))));
    }
    log(`setup: ${sockets.length} receivers connected over /ws`);
    // The /ws transport's sending sockets: their own users (a send frame's message is authenticated by its signatures, not by the socket).
    const senderTokens = new Map<string, string[]>();
    for (const s of servers) senderTokens.set(s.url, await Promise.all(Array.from({ length: Math.max(1, Math.ceil(SOCKETS / servers.length)) }, () => loginToken(s.url, new Wallet(Wallet.createRandom().privateKey)))));
    const senders: BenchIdentity[] = Array.from({ length: SENDERS }, benchIdentity);
    // Base64 text of PAYLOAD characters, as an encrypted payload would be (the default: 150 bytes encoded).
    const payload = Buffer.from('x'.repeat(Math.ceil((PAYLOAD * 3) / 4))).toString('base64').slice(0, PAYLOAD);
    const make = (n: number): { ids: string[]; bodies: string[] } => {
      const ids: string[] = [];
      const bodies: string[] = [];
      for (let i = 0; i < n; i++) {
        const m = benchMessage(senders[i % SENDERS] as BenchIdentity, (receivers[i % RECEIVERS] as Wallet).address, payload);
        ids.push(m.id);
        bodies.push(JSON.stringify(m));
      }
      return { ids, bodies };
    };
    const sendVia = (t: Transport) => (bodies: string[], concurrency: number, rate: number): ReturnType<typeof sendAcross> =>
      sendAcross(servers, bodies, concurrency, rate, (url, b, cc, r) => runSenderOn(url, b, cc, r, t, senderTokens.get(url) ?? []));

    // Warm-up (JIT, caches, delegation cache per sender), on both transports.
    for (const t of [transport]) {
      const warm = make(2000);
      await sendVia(t)(warm.bodies, CONCURRENCY[t], 0);
      await waitForPushes(warm.ids, 30_000);
    }

    for (const t of [transport]) {
      const send = sendVia(t);
      const label = t === 'ws' ? `/ws send frames over ${SOCKETS} sockets` : 'REST POST /message/send, keep-alive HTTP';
      const rates: number[] = [];
      const p99s: number[] = [];
      const p50s: number[] = [];
      const disks: number[] = [];
      const atRates: number[] = [];
      const atWrites: number[] = [];
      for (let run = 1; run <= RUNS; run++) {
        const load = make(MESSAGES);
        log(`[${t} run ${run}/${RUNS}] throughput: ${MESSAGES} messages as ${label}, ${SENDERS} senders -> ${RECEIVERS} receivers, ${CONCURRENCY[t]} in flight; load average ${loadavg()[0]?.toFixed(2)}`);
        const cpu0 = { server: serverCpu(), bench: cpuSeconds(process.pid), db: await store.backendCpu(), threads: servers.map((s) => threadCpuSeconds(s.pid)), written: serverWritten() };
        const sent = await send(load.bodies, CONCURRENCY[t], 0);
        await waitForPushes(load.ids, 60_000);
        const cpu1 = { server: serverCpu(), bench: cpuSeconds(process.pid), db: await store.backendCpu(), threads: servers.map((s) => threadCpuSeconds(s.pid)), written: serverWritten() };
        const first = Math.min(...Array.from(sent.sentAt));
        const pushed = load.ids.map((id) => received.get(id)).filter((x): x is number => x !== undefined);
        const last = Math.max(...pushed);
        const rate = pushed.length / ((last - first) / 1000);
        rates.push(rate);
        log(`  answers: ${JSON.stringify(Object.fromEntries(sent.statuses))}`);
        log(`  delivered ${pushed.length}/${MESSAGES} in ${((last - first) / 1000).toFixed(2)} s: ${rate.toFixed(0)} verified messages/s end to end `
          + `(${((rate / (c.nativePerSec * cores)) * 100).toFixed(0)}% of the ${cores}-core recovery ceiling)`);
        const perMsg = (x: number): string => ((x / pushed.length) * 1e6).toFixed(0);
        log(`  CPU per message: server${servers.length > 1 ? `s (${servers.length} processes)` : ''} ${perMsg(cpu1.server - cpu0.server)} us (all threads), load generator ${perMsg(cpu1.bench - cpu0.bench)} us; `
          + `${((cpu1.server - cpu0.server + cpu1.bench - cpu0.bench) / ((last - first) / 1000)).toFixed(2)} of ${cores} cores busy; `
          + `server wrote ${((cpu1.written - cpu0.written) / pushed.length / 1024).toFixed(1)} KiB to storage per message (payload ${PAYLOAD} characters)`);
        const saturated = { cpu: (cpu1.server - cpu0.server) / pushed.length, written: (cpu1.written - cpu0.written) / pushed.length };
        servers.forEach((s, k) => log(`  server${servers.length > 1 ? ` ${k + 1}` : ''} per message: ${threadCpuLine(s.pid, cpu0.threads[k] as Map<number, number>, cpu1.threads[k] as Map<number, number>, pushed.length)}`));
        if (kind === 'postgres') {
          log(`  CPU per message: PostgreSQL backends of this store ${perMsg(backendCpuBetween(cpu0.db, cpu1.db))} us (WAL writer, checkpointer and other shared processes not counted)`);
        }

        const lat = make(RATE * LATENCY_SECONDS);
        log(`[${t} run ${run}/${RUNS}] latency: ${lat.ids.length} messages offered at ${RATE}/s`);
        await loopLag(servers); // prom-client resets its event-loop histogram at every scrape
        const ownLag = monitorEventLoopDelay({ resolution: 1 });
        ownLag.enable();
        const l0 = { server: serverCpu(), written: serverWritten(), db: await store.backendCpu(), threads: servers.map((s) => threadCpuSeconds(s.pid)) };
        const sentL = await send(lat.bodies, 64, RATE);
        ownLag.disable();
        await waitForPushes(lat.ids, 30_000);
        const l1 = { server: serverCpu(), written: serverWritten(), db: await store.backendCpu(), threads: servers.map((s) => threadCpuSeconds(s.pid)) };
        const delays = lat.ids.map((id, i) => (received.get(id) ?? NaN) - (sentL.sentAt[i] ?? NaN)).filter((d) => Number.isFinite(d)).sort((a, b) => a - b);
        log(`  answers: ${JSON.stringify(Object.fromEntries(sentL.statuses))}; delivered ${delays.length}/${lat.ids.length}`);
        log(`  send-to-push latency p50 ${pct(delays, 50).toFixed(1)} ms, p99 ${pct(delays, 99).toFixed(1)} ms, max ${pct(delays, 100).toFixed(1)} ms`);
        const atRate = { cpu: (l1.server - l0.server) / lat.ids.length, written: (l1.written - l0.written) / lat.ids.length };
        log(`  at ${RATE}/s: server CPU ${(atRate.cpu * 1e6).toFixed(0)} us per message (${(atRate.cpu / saturated.cpu).toFixed(2)}x the throughput phase's ${(saturated.cpu * 1e6).toFixed(0)} us), `
          + `wrote ${(atRate.written / 1024).toFixed(1)} KiB to storage per message (throughput phase ${(saturated.written / 1024).toFixed(1)} KiB)`
          + `${kind === 'postgres' ? `; PostgreSQL backends ${((backendCpuBetween(l0.db, l1.db) / lat.ids.length) * 1e6).toFixed(0)} us per message` : ''}; load average ${loadavg()[0]?.toFixed(2)}`);
        servers.forEach((s, k) => log(`  server${servers.length > 1 ? ` ${k + 1}` : ''} per message at ${RATE}/s: ${threadCpuLine(s.pid, l0.threads[k] as Map<number, number>, l1.threads[k] as Map<number, number>, lat.ids.length)}`));
        atRates.push(atRate.cpu / saturated.cpu);
        atWrites.push(atRate.written);
        log(`  load generator's own receiving thread during the phase: event-loop delay p99 ${(ownLag.percentile(99) / 1e6 - 1).toFixed(1)} ms, max ${(ownLag.max / 1e6 - 1).toFixed(1)} ms (a push it reads late counts as late)`);
        log(`  server during the phase: event-loop delay (prom-client, its 10 ms sampling interval subtracted): ${(await loopLag(servers)).join('; ')}`);
        p50s.push(pct(delays, 50));
        p99s.push(pct(delays, 99));
        // the same file system as the servers' data directories (bench-cluster makes them under tmpdir())
        const probeDir = mkdtempSync(path.join(tmpdir(), 'rim-fsync-'));
        const disk = diskFsyncLatency(probeDir);
        rmSync(probeDir, { recursive: true, force: true });
        disks.push(disk.p99);
        log(`  the disk's own fsync (16 KiB append + fsync, 200 in the data directory, right after): p50 ${disk.p50.toFixed(1)} ms, p99 ${disk.p99.toFixed(1)} ms, max ${disk.max.toFixed(1)} ms`);
      }
      const aim = Math.max(10, median(disks) + 3);
      const list = (xs: number[], d = 0): string => xs.map((x) => x.toFixed(d)).join(' / ');
      summary.push(`${kind} ${t}: ${median(rates).toFixed(0)} verified messages/s end to end, median of ${RUNS} (${list(rates)}); `
        + `${((median(rates) / (c.nativePerSec * cores)) * 100).toFixed(0)}% of the ${cores}-core recovery ceiling (${(c.nativePerSec * cores).toFixed(0)}/s)`);
      summary.push(`${kind} ${t}: send-to-push at ${RATE}/s with ${RECEIVERS} receivers: p50 ${median(p50s).toFixed(1)} ms, p99 ${median(p99s).toFixed(1)} ms median (${list(p99s, 1)}); `
        + `disk fsync p99 ${median(disks).toFixed(1)} ms -> target ${aim.toFixed(1)} ms: ${median(p99s) <= aim ? 'met' : 'missed'}`);
      summary.push(`${kind} ${t}: at ${RATE}/s the server's CPU per message is ${median(atRates).toFixed(2)}x its saturated figure (target <= 1.5x), `
        + `${(median(atWrites) / 1024).toFixed(1)} KiB written per message (target <= 4 KiB), medians of ${RUNS} (${list(atRates, 2)})`);
    }
    for (const s of sockets) s.terminate();
  } finally {
    await cluster.stop();
    await store.drop();
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
