/**
 * Benchmark: one 100 MB bundle through the archiver against a local arlocal gateway, and what it does to
 * the main event loop meanwhile (issue 18: "no stall from the archive").
 *
 *   npm run bench:archive [-- --mb 100 --payload-kb 0.5 --rate 10000 --load-mb 100 --upload-seconds 0]
 *
 * Fills a fresh SQLite store (synchronous=FULL, its writer thread) with messages until the pending data
 * reaches the size trigger, then runs the archiver once (the size trigger cuts the bundle) while
 *  - a load appends `--rate` messages/s through the store's writer thread (as the send path's commits
 *    would), for `--load-mb` MB of new messages (at 10,000 msg/s the next 100 MB arrive in ~10 s: the
 *    load covers the cut, the signing and the start of the upload), and
 *  - the main event loop's delay is sampled: perf_hooks.monitorEventLoopDelay (1 ms resolution) and the
 *    lag of a 1 ms setInterval (how late each tick fired), each reset at every step.
 * Prints per step: its time, the loop delay p50/p99/max, the main thread's CPU and the whole process's
 * CPU (all threads: the archive's worker, the store's writer, libuv), and the proxy's peak RSS.
 * `--upload-seconds N` stops the archiver N s into the upload (the upload state is saved, as on any stop):
 * the local gateway stores chunks slowly (~130 s per 100 MB on a quiet machine), and the loop delay
 * while chunks go up is the same from the first to the last one.
 * arlocal runs in a child process, so the figures are the proxy's own.
 *
 * The first 200 messages are really signed; the rest reuse their bodies with a fresh id each (the archive
 * neither parses nor verifies bodies: it moves bytes), so filling 100 MB of 1 KB messages takes seconds.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Archiver, type ArchiverStep } from '../src/archive/archiver.js';
import { arweaveFor } from '../src/archive/arweave/client.js';
import { ArweaveUplink } from '../src/archive/arweave/uplink.js';
import { bundleBytes } from '../src/archive/format.js';
import { SqliteArchiveStore } from '../src/archive/sqlite/archive-store.js';
import { canonicalJson } from '../src/protocol/message.js';
import type { NewEvent } from '../src/store/port.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { makeSigner, signMessage } from '../test/support/archive-messages.js';

const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '100' },
    'payload-kb': { type: 'string', default: '0.5' },
    rate: { type: 'string', default: '10000' },
    'load-mb': { type: 'string', default: '100' },
    'upload-seconds': { type: 'string', default: '0' },
  },
});
const trigger = Math.round(Number(values.mb) * 1024 * 1024);
const payloadBytes = Math.round(Number(values['payload-kb']) * 1024);
const rate = Number(values.rate);
const loadBytes = Number(values['load-mb']) * 1024 * 1024;
const uploadSeconds = Number(values['upload-seconds']);
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

const TICKS = 100; // USER_HZ on Linux
function cpuOf(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS;
}
/** CPU seconds of the main thread (its tid is the pid) and of the whole process. */
function cpu(): { main: number; all: number } {
  return { main: cpuOf(readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8')), all: cpuOf(readFileSync('/proc/self/stat', 'utf8')) };
}

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'bench-archive-'));
const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'arlocal.ts'), path.join(dir, 'arlocal')], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (line) => {
    if (line.startsWith('http://')) resolve(line.trim());
  });
  child.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
});

const arweave = arweaveFor(url);
const jwk = await arweave.wallets.generate();
const uplink = new ArweaveUplink(arweave, jwk, {
  afterAccepted: async () => void (await fetch(`${url}/mine`)).arrayBuffer(),
});
await (await fetch(`${url}/mint/${await uplink.owner()}/1000000000000000000`)).arrayBuffer();

const file = path.join(dir, 'relation-im.sqlite');
const store = new SqliteStore({ file, synchronous: 'FULL' });
// As the server does: the archive's state is read and written on the store's writer thread.
const archive = new SqliteArchiveStore(file, { writer: store.writerClient() });
const alice = makeSigner();
const bob = makeSigner();
const cid = `dm:${[alice.address, bob.address].map((a) => a.toLowerCase()).sort().join(':')}`;
const sender = alice.address.toLowerCase();

// 200 really signed bodies; every event after them reuses one with a fresh 32-byte id in place of the first.
const templates: { id: string; body: string; ts: number }[] = [];
let t = alice.createdAt + 1000;
for (let i = 0; i < 200; i++) {
  const m = signMessage(alice, { receiver: bob.address, timestamp: (t += 10), payload: Buffer.alloc(Math.floor(payloadBytes * 3 / 4), i % 251).toString('base64') });
  templates.push({ id: m.id, body: canonicalJson(m), ts: m.timestamp });
}
let made = 0;
const nextEvent = (): NewEvent => {
  const tpl = templates[made % templates.length] as { id: string; body: string; ts: number };
  const id = made < templates.length ? tpl.id : `0x${randomBytes(32).toString('hex')}`;
  made += 1;
  const ts = alice.createdAt + 1000 + made * 10;
  return { cid, id, face: 0, kind: 0, sender, ts, receivedAt: ts, body: tpl.body.replace(tpl.id, id), counts: true, onlyFor: null, hides: null, participants: null };
};

process.stdout.write(`filling the store with ${mb(trigger)} of messages (${values['payload-kb']} KB payloads)…\n`);
let count = 0;
let bodyBytes = 0;
while (bundleBytes(count, bodyBytes) < trigger) {
  const batch: NewEvent[] = [];
  for (let i = 0; i < 1000 && bundleBytes(count, bodyBytes) < trigger; i++) {
    const e = nextEvent();
    bodyBytes += Buffer.byteLength(e.body);
    count += 1;
    batch.push(e);
  }
  await store.appendEvents(batch);
}
process.stdout.write(`${count} messages, bundle of ${mb(bundleBytes(count, bodyBytes))}; load average ${load()}\n`);

global.gc?.();
let peak = process.memoryUsage().rss;
const baseline = peak;

// The main event loop's delay, two ways, reset at every step.
const histogram = monitorEventLoopDelay({ resolution: 1 });
let lagMax = 0;
let lastTick = performance.now();
let ticks = 0;
const lagTimer = setInterval(() => {
  const now = performance.now();
  lagMax = Math.max(lagMax, now - lastTick - 1);
  lastTick = now;
  if (++ticks % 20 === 0) peak = Math.max(peak, process.memoryUsage().rss); // every ~20 ms: the reading costs CPU
}, 1);

interface Phase { step: string; ms: number; p50: number; p99: number; max: number; lag: number; cpuMain: number; cpuAll: number; peak: number; load: string }
const phases: Phase[] = [];
let phaseStart = performance.now();
let phaseCpu = cpu();
const startPhase = (): void => {
  histogram.reset();
  lagMax = 0;
  lastTick = performance.now();
  phaseStart = performance.now();
  phaseCpu = cpu();
  peak = process.memoryUsage().rss;
};
const endPhase = (step: string): void => {
  const c = cpu();
  const ms = (ns: number): number => ns / 1e6;
  phases.push({
    step, ms: performance.now() - phaseStart, p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max), lag: lagMax,
    cpuMain: c.main - phaseCpu.main, cpuAll: c.all - phaseCpu.all, peak: Math.max(peak, process.memoryUsage().rss), load: load(),
  });
  startPhase();
};

// The load: `rate` messages/s through the writer thread, in 10 ms batches, until `loadBytes` were added.
let loaded = 0;
let loadedCount = 0;
let loadTimer: NodeJS.Timeout | null = null;
const loadStart = performance.now();
if (rate > 0 && loadBytes > 0) {
  loadTimer = setInterval(() => {
    const due = Math.floor(((performance.now() - loadStart) / 1000) * rate) - loadedCount;
    if (due <= 0) return;
    const batch: NewEvent[] = [];
    for (let i = 0; i < due; i++) {
      const e = nextEvent();
      loaded += e.body.length;
      batch.push(e);
    }
    loadedCount += due;
    void store.appendEvents(batch);
    if (loaded >= loadBytes && loadTimer) {
      clearInterval(loadTimer);
      loadTimer = null;
      loadEndedAt = performance.now();
    }
  }, 10);
}
let loadEndedAt = 0;

const clock = { now: () => Date.now() };
let stoppedEarly = false;
let stopping: Promise<void> | null = null;
let lastChunk = 0;
const archiver = new Archiver(archive, uplink, clock, pino({ level: 'silent' }), {
  dataDir: dir, cron: '0 */12 * * *', sizeTriggerBytes: trigger, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000, leaseMs: 600_000,
}, (st: ArchiverStep) => {
  if (st.step === 'signed' && uploadSeconds > 0) {
    setTimeout(() => {
      stoppedEarly = true;
      stopping = archiver.stop();
    }, uploadSeconds * 1000);
  }
  if (st.step === 'upload-progress') {
    lastChunk = (JSON.parse(st.state) as { chunkIndex: number }).chunkIndex;
    if (loadEndedAt > 0 && !phases.some((p) => p.step === 'upload (while the load ran)')) endPhase('upload (while the load ran)');
    return;
  }
  if (st.step === 'uploaded') endPhase(phases.some((p) => p.step.startsWith('upload')) ? 'upload (the rest)' : 'upload');
  else if (st.step === 'confirmed') stopping = archiver.stop(); // one bundle: the load has made the next one due meanwhile
  else if (st.step === 'cut') endPhase('cut (plan, stream to file, record)');
  else if (st.step === 'signed') endPhase('sign (read file, chunk, merkle, RSA)');
});
histogram.enable();
startPhase();
const t0 = performance.now();
const cpu0 = cpu();
const result = await archiver.runOnce(clock.now(), 'poll');
endPhase(stoppedEarly ? `upload (stopped after ${uploadSeconds} s, at chunk ${lastChunk})` : 'pending + confirmed (mine a block, head)');
const total = { ms: performance.now() - t0, cpu: cpu() };
clearInterval(lagTimer);
if (loadTimer) clearInterval(loadTimer);
histogram.disable();
if (!stoppedEarly && result.confirmed.length !== 1) throw new Error(`expected one bundle, got ${JSON.stringify(result)}`);
const head = await archive.latestBundle();
const st0 = performance.now();
const status = await archiver.status();
const statusMs = performance.now() - st0;

const f1 = (x: number): string => x.toFixed(1);
process.stdout.write(`\nbundle 1: ${head?.count} messages, ${mb(head?.bytes ?? 0)}, tx ${head?.txid}, ${head?.status}\n`);
process.stdout.write(`load during the run: ${rate > 0 ? `${rate} msg/s through the store's writer thread, ${loadedCount} messages (${mb(loaded)})` : 'none'}\n`);
process.stdout.write(`archive work ran on: ${JSON.stringify((status as { work?: unknown }).work ?? 'the main thread')}\n`);
process.stdout.write(`/archive/status after the run (sums the ${loadedCount} messages that arrived meanwhile, on the archive worker when there is one): ${statusMs.toFixed(1)} ms\n`);
process.stdout.write(`proxy RSS before: ${mb(baseline)}\n\n`);
process.stdout.write('| step | time | main loop delay p50 / p99 / max (ms) | max lag of a 1 ms timer (ms) | CPU main thread / all threads (s) | peak RSS | load average after |\n| --- | --- | --- | --- | --- | --- | --- |\n');
for (const p of phases) {
  process.stdout.write(`| ${p.step} | ${s(p.ms)} | ${f1(p.p50)} / ${f1(p.p99)} / ${f1(p.max)} | ${f1(p.lag)} | ${p.cpuMain.toFixed(2)} / ${p.cpuAll.toFixed(2)} | ${mb(p.peak)} | ${p.load} |\n`);
}
process.stdout.write(`| total | ${s(total.ms)} | | ${f1(Math.max(...phases.map((p) => p.lag)))} | ${(total.cpu.main - cpu0.main).toFixed(2)} / ${(total.cpu.all - cpu0.all).toFixed(2)} | ${mb(Math.max(...phases.map((p) => p.peak)))} | |\n`);

await (stopping ?? archiver.stop());
await archive.close();
await store.close();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
rmSync(dir, { recursive: true, force: true });
