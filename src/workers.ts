import cluster, { type Worker } from 'node:cluster';
import type { Config } from './config/config.js';
import type { Logger } from './log/logger.js';

/**
 * WORKERS=N: this (primary) process only forks N server processes and keeps them running; each worker
 * builds the whole app and listens on the one PORT (node:cluster hands connections out round-robin).
 * The workers share nothing but the store and the bus, exactly as N processes behind a load balancer
 * would, so a worker that dies costs its connections a reconnect, not a message.
 */
export function runPrimary(config: Config, log: Logger): void {
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let stopping = false;
  const started = new Map<number, number>();
  const fork = (): void => {
    const w = cluster.fork();
    started.set(w.id, Date.now());
  };
  for (let i = 0; i < config.workers; i++) fork();
  cluster.on('exit', (w: Worker, code, signal) => {
    const lived = Date.now() - (started.get(w.id) ?? 0);
    started.delete(w.id);
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    log.error({ worker: w.process.pid, code, signal }, 'worker exited; starting another');
    // One that dies at once (bad config, store or bus unreachable) is restarted slowly, not in a loop.
    setTimeout(fork, lived < 5000 ? 5000 : 100).unref();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping workers');
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill(signal);
    setTimeout(() => process.exit(1), 15_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  log.info({ workers: config.workers, port: config.port }, 'primary: workers forked');
}

export const isPrimaryOfMany = (config: Config): boolean => config.workers > 1 && cluster.isPrimary;
