/**
 * The cluster under `scripts/soak.ts --cluster N`: deploy/cluster.sh as an operator runs it (N processes
 * of the dist build on one PostgreSQL database and one NATS, behind HAProxy with deploy/haproxy.cfg),
 * here on a scratch database (BENCH_DATABASE_URL, default the local server; dropped after) and a
 * nats-server of the run's own on a free port (so that its CPU is this run's alone).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { backendCpuBetween, benchStore, machineCpuSeconds, processCpuSeconds, type BenchStore } from './bench-server.js';

/** The repository: scripts/.. when run through tsx, dist/scripts/../.. when built. */
const up = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const root = path.basename(up) === 'dist' ? path.dirname(up) : up;

export interface SoakProcess { name: string; url: string; pid: number }

export interface SoakCluster {
  /** HAProxy's address: the only one the clients use. */
  url: string;
  processes: SoakProcess[];
  haproxyPid: number;
  natsPid: number;
  store: BenchStore;
  /** Connections each process holds (GET /health), in process order. */
  connections(): Promise<number[]>;
  /** The store read back: events, conversations, whether every conversation's seqs are 1..n, R1 ids stored twice. */
  readBack(): Promise<{ events: number; conversations: number; gapFree: boolean; gapped: number; duplicateIds: number }>;
  /** Lines the processes logged at error level or above so far (each cut at 600 characters). */
  errorLines(): string[];
  stop(): Promise<void>;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freePorts(count: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    let all = true;
    for (let p = base; p < base + count && all; p++) all = await canListen(p);
    if (all) return base;
  }
  throw new Error(`no ${count} consecutive free ports in 20000-32767`);
}

async function until(what: string, ms: number, ok: () => Promise<boolean>): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`soak cluster: ${what} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const isReady = (url: string): Promise<boolean> => fetch(`${url}/ready`).then((r) => r.status === 200, () => false);

/** Children of `ppid` (Linux /proc), with their command line. */
function childrenOf(ppid: number): { pid: number; cmd: string }[] {
  const out: { pid: number; cmd: string }[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== ppid) continue;
      out.push({ pid: Number(d), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export async function startSoakCluster(n: number, dir: string, env: Record<string, string>, log: (s: string) => void): Promise<SoakCluster> {
  const store = await benchStore('postgres');
  const natsPort = await freePorts(1);
  const nats: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(natsPort)], { stdio: 'ignore' });
  await until('nats-server listening', 15_000, () => new Promise((resolve) => {
    const c = connect(natsPort, '127.0.0.1');
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  }));
  const base = await freePorts(n + 1);
  const clusterDir = path.join(dir, 'cluster');
  const script = spawn('bash', [path.join(root, 'deploy/cluster.sh'), String(n)], {
    cwd: root, stdio: ['ignore', 'pipe', 'inherit'], detached: true,
    env: {
      ...process.env, ...store.env, ...env, NATS_URL: `nats://127.0.0.1:${natsPort}`, BUS_PREFIX: `rim-soak-${randomBytes(6).toString('hex')}`,
      BASE_PORT: String(base), LB_PORT: String(base), CLUSTER_DIR: clusterDir, LOG_LEVEL: 'info',
      RUN: `${process.execPath} --max-semi-space-size=64 dist/src/main.js`,
      // The load comes from loopback through HAProxy (PROXY v2 names 127.0.0.1): the soak measures the
      // servers, not their abuse limits, as the one-process soak does.
      RATE_LIMIT_EXEMPT: '127.0.0.1,::1',
    },
  });
  script.stdout?.on('data', (d: Buffer) => log(`cluster.sh: ${d.toString().trim()}`));
  const url = `http://127.0.0.1:${base}`;
  const urls = Array.from({ length: n }, (_, i) => `http://127.0.0.1:${base + i + 1}`);
  const stopAll = async (): Promise<void> => {
    if (script.exitCode === null && script.signalCode === null) {
      const gone = new Promise((r) => script.once('exit', r));
      try { process.kill(-(script.pid as number), 'SIGTERM'); } catch { /* gone */ }
      await Promise.race([gone, new Promise((r) => setTimeout(r, 15_000))]);
    }
    nats.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    await store.drop().catch((e: unknown) => log(`soak cluster: dropping the scratch database failed: ${String(e)}`));
  };
  try {
    await until('every process ready', 120_000, async () => {
      if (script.exitCode !== null) throw new Error(`deploy/cluster.sh exited with ${script.exitCode}`);
      return (await Promise.all(urls.map(isReady))).every(Boolean);
    });
    await until('HAProxy ready', 30_000, () => isReady(url));
    // HAProxy's health checks (inter 1s, rise 2) put a process in only after two good ones: wait for
    // every process to be in before the sockets open, or leastconn gives the first ones everything.
    await new Promise((r) => setTimeout(r, 4_000));
  } catch (e) {
    await stopAll();
    throw e;
  }
  const kids = childrenOf(script.pid as number);
  const byPort = (port: number): number => {
    for (const k of kids) {
      try {
        if (new RegExp(`(^|\\0)PORT=${port}(\\0|$)`).test(readFileSync(`/proc/${k.pid}/environ`, 'utf8'))) return k.pid;
      } catch {
        // not ours to read, or gone
      }
    }
    throw new Error(`soak cluster: no process found listening on ${port}`);
  };
  const processes = urls.map((u, i) => ({ name: `p${i + 1}`, url: u, pid: byPort(base + i + 1) }));
  const haproxyPid = kids.find((k) => k.cmd.startsWith('haproxy'))?.pid ?? 0;
  log(`cluster: ${n} processes (pids ${processes.map((p) => p.pid).join(', ')}) on PostgreSQL + NATS (${`nats://127.0.0.1:${natsPort}`}), HAProxy pid ${haproxyPid} at ${url}; logs in ${clusterDir}`);
  return {
    url, processes, haproxyPid, natsPid: nats.pid ?? 0, store,
    connections: () => Promise.all(urls.map(async (u) => ((await (await fetch(`${u}/health`)).json()) as { connections: number }).connections)),
    async readBack() {
      const c = new pg.Client({ connectionString: store.env['DATABASE_URL'] });
      await c.connect();
      try {
        const per = (await c.query<{ n: string; lo: string; hi: string }>('SELECT count(*) AS n, min(seq) AS lo, max(seq) AS hi FROM events GROUP BY cid')).rows;
        const gapped = per.filter((r) => Number(r.lo) !== 1 || Number(r.hi) !== Number(r.n)).length;
        const dup = (await c.query<{ d: string }>('SELECT count(id) - count(DISTINCT id) AS d FROM events')).rows[0]?.d ?? '0';
        return { events: per.reduce((a, r) => a + Number(r.n), 0), conversations: per.length, gapFree: gapped === 0, gapped, duplicateIds: Number(dup) };
      } finally {
        await c.end();
      }
    },
    errorLines() {
      const lines: string[] = [];
      for (let i = 1; i <= n; i++) {
        try {
          for (const l of readFileSync(path.join(clusterDir, `p${i}.log`), 'utf8').split('\n')) if (/"level":(50|60)/.test(l)) lines.push(`p${i} ${l.slice(0, 600)}`);
        } catch {
          // no log
        }
      }
      return lines;
    },
    stop: stopAll,
  };
}

export interface ClusterCpu {
  /** The line for the soak's output: CPU per acknowledged message of each tier since `before`. */
  report(before: ClusterCpu, events: number, seconds: number): string;
  servers: (number | null)[];
  backends: Map<number, number>;
  haproxy: number | null;
  nats: number | null;
  self: NodeJS.CpuUsage;
  machine: { busy: number; steal: number } | null;
}

/** A reading of every tier's CPU so far (Linux /proc). */
export async function clusterCpu(c: SoakCluster): Promise<ClusterCpu> {
  const reading: ClusterCpu = {
    servers: c.processes.map((p) => processCpuSeconds(p.pid)),
    backends: await c.store.backendCpu(),
    haproxy: processCpuSeconds(c.haproxyPid),
    nats: processCpuSeconds(c.natsPid),
    self: process.cpuUsage(),
    machine: machineCpuSeconds(),
    report(before, events, seconds) {
      const us = (s: number): string => `${Math.round((s * 1e6) / events)} µs`;
      const diff = (a: number | null, b: number | null): number => (a !== null && b !== null ? a - b : Number.NaN);
      const servers = reading.servers.map((s, i) => diff(s, before.servers[i] ?? null));
      const serversAll = servers.reduce((a, b) => a + b, 0);
      const backends = backendCpuBetween(before.backends, reading.backends);
      const haproxy = diff(reading.haproxy, before.haproxy);
      const nats = diff(reading.nats, before.nats);
      const self = (reading.self.user - before.self.user + reading.self.system - before.self.system) / 1e6;
      const machine = reading.machine && before.machine ? reading.machine.busy - before.machine.busy : Number.NaN;
      const steal = reading.machine && before.machine ? reading.machine.steal - before.machine.steal : Number.NaN;
      return `CPU per acknowledged message: servers ${us(serversAll)} (${servers.map((s, i) => `${c.processes[i]?.name} ${us(s)}`).join(', ')}),`
        + ` PostgreSQL backends ${us(backends)} (${reading.backends.size} backends), servers + backends ${us(serversAll + backends)};`
        + ` NATS ${us(nats)}, HAProxy ${us(haproxy)}, load generator ${us(self)}, whole machine ${us(machine)}`
        + ` (machine busy ${((machine / seconds) * 100).toFixed(0)}% of one core x ${cpus().length}, hypervisor steal ${((steal / seconds) * 100).toFixed(1)}% of one core)`;
    },
  };
  return reading;
}
