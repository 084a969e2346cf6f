import { hostname } from 'node:os';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { ClusterHub, type BusStatus, type ClusterHubDeps } from './cluster-hub.js';
import { LocalHub, type Hub } from './hub.js';
import { NatsBus } from './nats.js';
import { RedisBus } from './redis.js';

/** The hub the composition root holds: the Hub calls plus a lifecycle and a status for readiness. */
export interface PushHub extends Hub {
  start(): Promise<void>;
  close(): Promise<void>;
  status(): BusStatus;
}

/** BUS=local: today's in-process hub, always ready, nothing to start. */
class LocalPushHub extends LocalHub implements PushHub {
  async start(): Promise<void> {}
  async close(): Promise<void> {}
  status(): BusStatus {
    return { ok: true, kind: 'local', peers: 0, losses: 0 };
  }
}

/** Picks the bus adapter by configuration (BUS); the domain sees only the Hub. */
export function createPushHub(config: Config, log: Logger, deps: Omit<ClusterHubDeps, 'transport' | 'log'>): PushHub {
  if (config.bus === 'local') return new LocalPushHub((err) => log.error({ err }, 'push delivery failed; connection closed'), deps.onFanout, deps.onFanoutWritten);
  const subject = `${config.busPrefix}.push`;
  const connectTimeoutMs = Math.max(2000, config.busDownAfterMs);
  const transport = config.bus === 'nats'
    ? new NatsBus({ url: config.natsUrl, subject, name: `relation-im ${hostname()} ${process.pid}`, connectTimeoutMs })
    : new RedisBus({ url: config.redisUrl, channel: subject, connectTimeoutMs });
  return new ClusterHub({ ...deps, transport, log: log.child({ component: 'bus', bus: config.bus }) }, {
    pingMs: config.busPingMs, deadAfterMs: config.busDownAfterMs, inlineMaxBytes: 16 * 1024, trackMax: 10_000, catchupMs: config.busCatchupMs,
  });
}
