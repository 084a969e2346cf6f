/**
 * What every benchmark needs from the server: the dist build started in its own process, run as
 * `npm start` runs it, and SIWE logins for the load generator's wallets.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, closeSync, fsyncSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Wallet } from 'ethers';
import { SiweMessage } from 'siwe';

const here = path.dirname(fileURLToPath(import.meta.url));
/** USER_HZ of /proc's tick counts: 100 on every Linux build this runs on (getconf CLK_TCK). */
const CLOCK_TICKS = 100;

export interface BenchServer {
  url: string;
  pid: number;
  stop(): void;
}

/** Bucket counts of a histogram in a /metrics text: upper bound (seconds) -> cumulative count. */
export function buckets(text: string, name: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm'))) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  return out;
}

/** The bucket bound under which p% of a histogram's observations between two scrapes fell ("<= 5 ms"). */
export function bucketPct(before: Map<number, number>, after: Map<number, number>, p: number, unit: 'ms' | '' = 'ms'): string {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  if (total <= 0) return 'none';
  for (const b of bounds) if ((after.get(b) ?? 0) - (before.get(b) ?? 0) >= (p / 100) * total) return b === Infinity ? 'above the last bucket' : unit === 'ms' ? `<= ${(b * 1000).toFixed(1)} ms` : `<= ${b}`;
  return '?';
}

/** The group commits between two /metrics texts: batch size p50 and mean, durations p50 / p99 / max (bucket bounds). */
export function commitLine(before: string, after: string): string {
  const s0 = buckets(before, 'rim_commit_batch_size');
  const s1 = buckets(after, 'rim_commit_batch_size');
  const sum = (t: string, name: string): number => Number(new RegExp(`^${name}_sum (\\S+)$`, 'm').exec(t)?.[1] ?? 0);
  const count = (s1.get(Infinity) ?? 0) - (s0.get(Infinity) ?? 0);
  const events = sum(after, 'rim_commit_batch_size') - sum(before, 'rim_commit_batch_size');
  const c0 = buckets(before, 'rim_commit_seconds');
  const c1 = buckets(after, 'rim_commit_seconds');
  return `group commits: ${count} (${count > 0 ? (events / count).toFixed(1) : '-'} events each on average, p50 ${bucketPct(s0, s1, 50, '')});`
    + ` posted -> durable p50 ${bucketPct(c0, c1, 50)}, p99 ${bucketPct(c0, c1, 99)}, max ${bucketPct(c0, c1, 100)}`;
}

/**
 * prom-client's event-loop delay in a /metrics text (it resets it at each scrape), in ms, with its 10 ms
 * sampling interval subtracted: p99 and max.
 */
export function eventLoopDelay(text: string): { p99: number; max: number } {
  const read = (name: string): number => Math.max(0, Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) * 1000 - 10);
  return { p99: read('nodejs_eventloop_lag_p99_seconds'), max: read('nodejs_eventloop_lag_max_seconds') };
}

/**
 * Starts `dist/src/main.js` on a free loopback port with its store in `dataDir`, with the same V8 flag
 * as `npm start` and then BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). Server error
 * logs and the recovery backend line are printed through `log`; BENCH_SERVER_LOG=<file> keeps all of
 * the server's output (e.g. with BENCH_NODE_ARGS=--trace-gc).
 */
export function startBenchServer(dataDir: string, env: Record<string, string>, log: (s: string) => void): Promise<BenchServer> {
  const nodeArgs = ['--max-semi-space-size=64', ...(process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean)];
  const child = spawn(process.execPath, [...nodeArgs, path.join(here, '../src/main.js')], {
    cwd: dataDir, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', SQLITE_SYNCHRONOUS: 'FULL',
      // The load comes from loopback: a benchmark measures the server, not its abuse limits (the default exempts nothing).
      RATE_LIMIT_EXEMPT: '127.0.0.1,::1', ...env },
  });
  let stopping = false;
  return new Promise((resolve, reject) => {
    const tee = process.env['BENCH_SERVER_LOG'];
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      if (tee) appendFileSync(tee, `${line}\n`);
      const m = /"port":(\d+)/.exec(line);
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}`, pid: child.pid ?? 0, stop: () => { stopping = true; child.kill('SIGTERM'); } });
      if (/"level":(50|60)/.test(line)) log(`server error: ${line.slice(0, 2000)}`);
      const b = /"backend":"(\w+)","keccak":"(\w+)","verifyThreads":(\d+)/.exec(line);
      if (b) log(`server: recovery ${b[1]}, keccak ${b[2]}, ${b[3]} verify threads`);
    });
    child.once('exit', (code, signal) => {
      // After the start a rejection goes nowhere: a server that dies under load must still be seen.
      if (!stopping) log(`server exited unexpectedly: code ${code}, signal ${signal} (its stderr is above; BENCH_SERVER_LOG keeps its log lines)`);
      reject(new Error(`server exited with ${code ?? signal}`));
    });
  });
}

/** SIWE login with the wallet itself; returns the bearer token. */
export async function loginToken(url: string, who: Wallet): Promise<string> {
  const { nonce } = (await (await fetch(`${url}/auth/nonce`)).json()) as { nonce: string };
  const message = new SiweMessage({ domain: new URL(url).host, address: who.address, uri: url, version: '1', chainId: 1, nonce, issuedAt: new Date().toISOString() }).prepareMessage();
  const res = await fetch(`${url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message, signature: who.signMessageSync(message) }) });
  return ((await res.json()) as { token: string }).token;
}

/** CPU seconds a process has used so far, all its threads (Linux /proc; null elsewhere). */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS; // utime, stime
  } catch {
    return null;
  }
}

/** The median of some runs' figures (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? (s[(s.length - 1) / 2] as number) : ((s[s.length / 2 - 1] as number) + (s[s.length / 2] as number)) / 2;
}

/** CPU seconds of each thread of a process so far, by thread id (Linux /proc; empty elsewhere). */
export function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        out.set(Number(tid), (Number(f[11]) + Number(f[12])) / CLOCK_TICKS);
      } catch {
        // the thread ended
      }
    }
  } catch {
    // no /proc
  }
  return out;
}

/**
 * Where a process's CPU went between two readings, per thread, in microseconds per item, busiest first:
 * "main 120, 38, 37, 30, ..." (the main thread named; Node 20 does not name its worker threads, so the
 * others are verify workers, the store's writer, the checkpointer, GC helpers and libuv's pool).
 */
export function threadCpuLine(pid: number, before: Map<number, number>, after: Map<number, number>, items: number): string {
  const per = (s: number): number => (s / items) * 1e6;
  const main = per((after.get(pid) ?? 0) - (before.get(pid) ?? 0));
  const others = [...after].filter(([tid]) => tid !== pid).map(([tid, s]) => per(s - (before.get(tid) ?? 0))).filter((x) => x >= 1).sort((a, b) => b - a);
  return `main thread ${main.toFixed(0)} us; other threads ${others.map((x) => x.toFixed(0)).join(', ') || 'none'} us`;
}

/** Bytes a process has caused to be written to storage so far (Linux /proc; null elsewhere). */
export function processWriteBytes(pid: number): number | null {
  try {
    const m = /^write_bytes: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/** Machine-wide CPU seconds so far: busy (all non-idle), and stolen by the hypervisor (Linux /proc). */
export function machineCpuSeconds(): { busy: number; steal: number } | null {
  try {
    const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
    const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
    return { busy: (user + nice + system + irq + softirq) / CLOCK_TICKS, steal: steal / CLOCK_TICKS };
  } catch {
    return null;
  }
}

/**
 * What a measured phase cost: CPU per event of the server, of this load generator and of the machine,
 * hypervisor steal, and the server's writes to storage (WAL, checkpoints) per event.
 */
export class CpuMeter {
  private readonly server0: number | null;
  private readonly self0 = process.cpuUsage();
  private readonly machine0 = machineCpuSeconds();
  private readonly written0: number | null;
  private readonly threads0: Map<number, number>;

  constructor(private readonly serverPid: number) {
    this.threads0 = threadCpuSeconds(serverPid);
    this.server0 = processCpuSeconds(serverPid);
    this.written0 = processWriteBytes(serverPid);
  }

  /** A line for the benchmark's output, `events` being what the phase completed. */
  report(events: number, seconds: number): string {
    const us = (s: number | null): string => (s === null ? '?' : `${Math.round((s * 1e6) / events)} µs`);
    const server1 = processCpuSeconds(this.serverPid);
    const self = process.cpuUsage(this.self0);
    const machine1 = machineCpuSeconds();
    const server = server1 !== null && this.server0 !== null ? server1 - this.server0 : null;
    const machine = machine1 && this.machine0 ? machine1.busy - this.machine0.busy : null;
    const steal = machine1 && this.machine0 ? machine1.steal - this.machine0.steal : null;
    const written1 = processWriteBytes(this.serverPid);
    const written = written1 !== null && this.written0 !== null ? written1 - this.written0 : null;
    return `CPU per event: server ${us(server)}, load generator ${us((self.user + self.system) / 1e6)}, whole machine ${us(machine)}`
      + ` (machine busy ${machine === null ? '?' : ((machine / seconds) * 100).toFixed(0)}% of one core x ${cpus().length},`
      + ` hypervisor steal ${steal === null ? '?' : ((steal / seconds) * 100).toFixed(1)}% of one core);`
      + ` server disk writes ${written === null ? '?' : `${(written / events / 1024).toFixed(1)} KiB per event, ${(written / seconds / 1048576).toFixed(0)} MiB/s`}`
      + `\n  server CPU per event by thread: ${threadCpuLine(this.serverPid, this.threads0, threadCpuSeconds(this.serverPid), events)}`;
  }
}

/**
 * The benchmark's `--name value` options as numbers: `num('events', 100000)`. A value that is not a
 * finite number stops the script rather than running with NaN.
 */
export function numericArgs(argv: readonly string[] = process.argv.slice(2)): (name: string, fallback: number) => number {
  const args = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) args.set(String(argv[i]).replace(/^--/, ''), String(argv[i + 1]));
  return (name, fallback) => {
    const raw = args.get(name);
    if (raw === undefined) return fallback;
    const v = Number(raw);
    if (!Number.isFinite(v)) throw new Error(`--${name} must be a number, got ${raw}`);
    return v;
  };
}

export type StoreKind = 'sqlite' | 'postgres';

/**
 * Which stores a benchmark runs on, one after the other in the same run: `--store sqlite|postgres|both`
 * (or BENCH_STORE); default sqlite.
 */
export function storeKinds(argv: readonly string[] = process.argv.slice(2)): StoreKind[] {
  const i = argv.indexOf('--store');
  const v = i >= 0 ? argv[i + 1] : process.env['BENCH_STORE'] ?? 'sqlite';
  if (v === 'both') return ['sqlite', 'postgres'];
  if (v === 'sqlite' || v === 'postgres') return [v];
  throw new Error(`--store must be sqlite, postgres or both, got ${v}`);
}

/** The store a benchmark's server runs on: its environment, and for PostgreSQL the CPU of its backends. */
export interface BenchStore {
  kind: StoreKind;
  env: Record<string, string>;
  /** CPU seconds so far of every PostgreSQL backend serving this store, by pid (empty for SQLite). */
  backendCpu(): Promise<Map<number, number>>;
  drop(): Promise<void>;
}

/**
 * SQLite: the server's own file in its DATA_DIR, as `npm start` runs it. PostgreSQL: a scratch database
 * on BENCH_DATABASE_URL (default the local server, postgres://postgres@127.0.0.1:5432/postgres), dropped
 * after; the archiver is off there (it does not run on PostgreSQL yet).
 */
export async function benchStore(kind: StoreKind): Promise<BenchStore> {
  if (kind === 'sqlite') return { kind, env: {}, backendCpu: async () => new Map(), drop: async () => {} };
  const pg = (await import('pg')).default;
  const admin = new pg.Client({ connectionString: process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres' });
  await admin.connect();
  const name = `rim_bench_${Math.random().toString(16).slice(2, 10)}`;
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(process.env['BENCH_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  url.pathname = `/${name}`;
  return {
    kind,
    env: { STORE: 'postgres', DATABASE_URL: url.toString(), ARCHIVE_ENABLED: 'false' },
    backendCpu: async () => {
      const r = await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [name]);
      const out = new Map<number, number>();
      for (const { pid } of r.rows) {
        const s = processCpuSeconds(pid);
        if (s !== null) out.set(pid, s);
      }
      return out;
    },
    drop: async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}

/** CPU the store's PostgreSQL backends used between two backendCpu() readings (backends opened meanwhile count whole). */
export function backendCpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let s = 0;
  for (const [pid, cpu] of after) s += cpu - (before.get(pid) ?? 0);
  return s;
}

/**
 * The disk's own fsync latency, measured in `dir` (the server's data directory, so the same file system):
 * `count` appends of `bytes` (about one small group commit's WAL frames) each followed by fsync, as
 * SQLite's commit does with synchronous=FULL. Run when the benchmark's load is over, so that it measures
 * the disk and not the queue behind the server's own commits.
 */
export function diskFsyncLatency(dir: string, count = 200, bytes = 16 * 1024): { p50: number; p99: number; max: number } {
  const file = path.join(dir, `fsync-probe-${process.pid}`);
  const fd = openSync(file, 'w');
  const block = Buffer.alloc(bytes, 0x5a);
  const times: number[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const t0 = performance.now();
      writeSync(fd, block);
      fsyncSync(fd);
      times.push(performance.now() - t0);
    }
  } finally {
    closeSync(fd);
    rmSync(file, { force: true });
  }
  times.sort((a, b) => a - b);
  const at = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}
