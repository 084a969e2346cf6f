/**
 * Several server processes for a benchmark (`--processes N`): one store (PostgreSQL), one bus (NATS at
 * BENCH_NATS_URL, default the local server, on a subject of this run's own), the load spread over all.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startBenchServer, type BenchServer } from './bench-server.js';

export interface BenchCluster {
  servers: BenchServer[];
  stop(): Promise<void>;
}

/** Starts `n` servers with `env`; with more than one, they share a NATS bus (the first migrates the store). */
export async function startBenchCluster(n: number, env: Record<string, string>, log: (s: string) => void): Promise<BenchCluster> {
  if (n > 1 && env['STORE'] !== 'postgres') throw new Error('--processes above 1 needs --store postgres: the processes must share one store');
  const bus: Record<string, string> = n > 1 ? { BUS: 'nats', NATS_URL: process.env['BENCH_NATS_URL'] ?? 'nats://127.0.0.1:4222', BUS_PREFIX: `rim-bench-${randomBytes(6).toString('hex')}` } : {};
  const dirs: string[] = [];
  const start = (): Promise<BenchServer> => {
    const dir = mkdtempSync(path.join(tmpdir(), 'rim-bench-'));
    dirs.push(dir);
    return startBenchServer(dir, { ...env, ...bus }, log);
  };
  const first = await start();
  const rest = await Promise.all(Array.from({ length: n - 1 }, start));
  if (n > 1) log(`cluster: ${n} server processes on one PostgreSQL and NATS (${bus['NATS_URL']})`);
  return {
    servers: [first, ...rest],
    async stop() {
      for (const s of [first, ...rest]) s.stop();
      await new Promise((r) => setTimeout(r, 500));
      // A server still finishing its last writes can make a removal fail once; try again a little later.
      for (const d of dirs) {
        for (let i = 0; i < 50; i++) {
          try { rmSync(d, { recursive: true, force: true }); break; } catch { await new Promise((r) => setTimeout(r, 100)); }
        }
      }
    },
  };
}

export interface SendResult { sentAt: Float64Array; statuses: [number, number][]; elapsedMs: number }

/**
 * Sends `bodies` spread over the servers (body i through server i mod n), each share with its part of
 * the concurrency and rate, and returns the send times in the order of `bodies`.
 */
export async function sendAcross(
  servers: readonly BenchServer[], bodies: readonly string[], concurrency: number, ratePerSec: number,
  run: (url: string, bodies: string[], concurrency: number, ratePerSec: number) => Promise<SendResult>,
): Promise<SendResult> {
  const n = servers.length;
  const shares = servers.map((_, k) => bodies.filter((_, i) => i % n === k));
  const results = await Promise.all(servers.map((s, k) => run(s.url, shares[k] as string[], Math.max(1, Math.ceil(concurrency / n)), ratePerSec / n)));
  const sentAt = new Float64Array(bodies.length);
  results.forEach((r, k) => r.sentAt.forEach((t, j) => { sentAt[j * n + k] = t; }));
  const statuses = new Map<number, number>();
  for (const r of results) for (const [code, count] of r.statuses) statuses.set(code, (statuses.get(code) ?? 0) + count);
  return { sentAt, statuses: [...statuses], elapsedMs: Math.max(...results.map((r) => r.elapsedMs)) };
}
