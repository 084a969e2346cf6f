/**
 * The store's group commit alone, in this process (no sockets, no verification): what one durable
 * commit costs at a given offered rate, so the store's part of the cost at moderate load can be
 * measured apart from the rest of the server, and steadily on a shared machine.
 *
 *   npm run build && node dist/scripts/bench-commit.js [--rate 1000] [--seconds 10] [--conversations 250]
 *     [--mix im|ws|soak] [--payload 60] [--prefill 100000] [--page-size 0]
 *
 * Events go through the server's own GroupCommitter and store (SQLite synchronous=FULL on its writer
 * thread, or PostgreSQL), offered evenly in 1 ms ticks over `conversations` direct chats; `--mix ws` are
 * Relation ONE-like events (a 64-hex id, a JSON body of ~payload + 700 bytes), `im` MsgPack-face texts
 * (no id), `soak` half of each. Prints, for the phase: commit latency (append -> durable) p50/p99/max,
 * events per commit, CPU per event of this process (all threads: the writer's included), and bytes this
 * process wrote to storage per event (/proc/self/io write_bytes: WAL, checkpoints and database file).
 * `--rate 0` offers everything at once (saturation) for the same count of events. `--page-size N` makes
 * the database file with N-byte pages first (the store then keeps them), to compare page sizes.
 */
import Database from 'better-sqlite3';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { GroupCommitter } from '../src/roles/chat/committer.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { Face, type NewEvent, type Store } from '../src/store/port.js';
import { numericArgs, threadCpuSeconds, threadCpuLine } from './bench-server.js';

const num = numericArgs();
const RATE = num('rate', 1000);
const SECONDS = num('seconds', 10);
const CONVS = num('conversations', 250);
const PAYLOAD = num('payload', 60);
const PREFILL = num('prefill', 100_000);
const PAGE_SIZE = num('page-size', 0);
const arg = (name: string, fallback: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? String(process.argv[i + 1]) : fallback;
};
const MIX = arg('mix', 'soak');
const log = (s: string): void => { process.stdout.write(`${s}\n`); };

const writeBytes = (): number => Number(/write_bytes:\s*(\d+)/.exec(readFileSync('/proc/self/io', 'utf8'))?.[1] ?? NaN);
const cpu = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

const addr = (): string => `0x${randomBytes(20).toString('hex')}`;
const users = Array.from({ length: CONVS * 2 }, addr);
const cids = Array.from({ length: CONVS }, (_, i) => `dm:${users[2 * i]}:${users[2 * i + 1]}`);
const filler = 'x'.repeat(PAYLOAD);

function event(n: number): NewEvent {
  const c = n % CONVS;
  const ws = MIX === 'ws' || (MIX === 'soak' && n % 2 === 0);
  const now = Date.now();
  const sender = users[2 * c] as string;
  const body = ws
    ? JSON.stringify({ id: randomBytes(32).toString('hex'), from: sender, to: users[2 * c + 1], timestamp: now, content: filler,
      signature: randomBytes(65).toString('hex'), delegation: { key: addr(), expires: now + 1e9, sig: randomBytes(65).toString('hex') } })
    : JSON.stringify({ 0: filler });
  return {
    cid: cids[c] as string, id: ws ? randomBytes(32).toString('hex') : null, face: ws ? Face.RELATION_ONE : Face.IM, kind: ws ? 0 : 1,
    sender, ts: now, receivedAt: now, body, counts: true, onlyFor: null, hides: null, participants: [sender, users[2 * c + 1] as string],
  };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rim-commit-'));
  const file = path.join(dir, 'rim.sqlite');
  if (PAGE_SIZE > 0) {
    const pre = new Database(file);
    pre.pragma(`page_size = ${PAGE_SIZE}`);
    pre.exec('CREATE TABLE page_size_probe (a); DROP TABLE page_size_probe;');
    pre.close();
  }
  const store: Store = new SqliteStore({ file, synchronous: 'FULL' });
  const pageSize = (new Database(file, { readonly: true }).pragma('page_size', { simple: true })) as number;
  let commits = 0;
  const committer = new GroupCommitter(store, 4096, () => { commits++; });
  try {
    let n = 0;
    for (; n < PREFILL; n += 2000) await Promise.all(Array.from({ length: 2000 }, (_, i) => committer.append(event(n + i))));
    await new Promise((r) => setTimeout(r, 1500)); // let the checkpointer catch up with the prefill
    const latencies: number[] = [];
    const total = RATE > 0 ? Math.round(RATE * SECONDS) : Math.max(1, SECONDS) * 10_000;
    const w0 = writeBytes();
    const c0 = cpu();
    const sys0 = process.cpuUsage().system / 1e6;
    const th0 = threadCpuSeconds(process.pid);
    commits = 0;
    const t0 = performance.now();
    let sent = 0;
    const done: Promise<void>[] = [];
    if (RATE <= 0) for (; sent < total; sent++) done.push(committer.append(event(n++)).then(() => undefined));
    else await new Promise<void>((resolve) => {
      const tick = setInterval(() => {
        const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE));
        for (; sent < due; sent++) {
          const at = performance.now();
          done.push(committer.append(event(n++)).then(() => { latencies.push(performance.now() - at); }));
        }
        if (sent >= total) { clearInterval(tick); resolve(); }
      }, 1);
    });
    await Promise.all(done);
    const seconds = (performance.now() - t0) / 1000;
    const written = writeBytes() - w0;
    const cpuUs = ((cpu() - c0) * 1e6) / total;
    const sysUs = ((process.cpuUsage().system / 1e6 - sys0) * 1e6) / total;
    latencies.sort((a, b) => a - b);
    const pct = (q: number): string => (latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN).toFixed(2);
    log(`commit ${MIX} at ${RATE > 0 ? `${RATE}/s offered` : `saturation (${total} at once: ${(total / seconds).toFixed(0)}/s)`} for ${seconds.toFixed(1)} s (${CONVS} conversations, payload ${PAYLOAD}, ${pageSize}-byte pages, ${PREFILL} prefilled): `
      + `latency p50 ${pct(0.5)} ms, p99 ${pct(0.99)} ms, max ${pct(1)} ms; ${(total / Math.max(1, commits)).toFixed(1)} events per commit call`);
    log(`  CPU ${cpuUs.toFixed(0)} µs per event (this process, all threads; ${sysUs.toFixed(0)} µs of it in the kernel); written ${(written / total / 1024).toFixed(2)} KiB per event (${(written / seconds / 1048576).toFixed(1)} MiB/s)`);
    log(`  by thread: ${threadCpuLine(process.pid, th0, threadCpuSeconds(process.pid), total)}`);
  } finally {
    await committer.drain();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

void main();
