import { connect, Events, DebugEvents, type NatsConnection, type Subscription } from 'nats';
import type { BusHandlers, BusTransport } from './transport.js';

export interface NatsBusOptions {
  /** Comma-separated server URLs (nats://host:port). */
  url: string;
  /** The subject every process publishes and subscribes to. */
  subject: string;
  /** Client name shown in the server's monitoring. */
  name: string;
  /** Give up connecting at start after this long. */
  connectTimeoutMs: number;
}

/**
 * The bus over core NATS (at-most-once pub/sub on one subject; no JetStream: the store is the log, the
 * bus only rings). The client reconnects forever and re-subscribes by itself; the hub does not trust
 * that and checks with its own pings.
 */
export class NatsBus implements BusTransport {
  readonly kind = 'nats';
  private nc: NatsConnection | null = null;
  private sub: Subscription | null = null;

  constructor(private readonly opts: NatsBusOptions) {}

  async start(handlers: BusHandlers): Promise<void> {
    const nc = await connect({
      servers: this.opts.url.split(',').map((s) => s.trim()).filter((s) => s.length > 0),
      name: this.opts.name,
      timeout: this.opts.connectTimeoutMs,
      reconnect: true,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 250,
      // The server is asked every second whether it still hears us; two unanswered asks mean a reconnect.
      pingInterval: 1000,
      maxPingOut: 2,
    });
    this.nc = nc;
    this.sub = nc.subscribe(this.opts.subject, {
      callback: (err, msg) => {
        if (!err) handlers.message(msg.data);
      },
    });
    // The SUB is in place at the server once a round trip after it returns.
    await nc.flush();
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === Events.Disconnect) handlers.state(false, `nats disconnected from ${String(s.data)}`);
        else if (s.type === DebugEvents.StaleConnection) handlers.state(false, 'nats connection stale (pings unanswered)');
        else if (s.type === Events.Reconnect) handlers.state(true, `nats reconnected to ${String(s.data)}`);
      }
    })();
  }

  publish(data: Uint8Array): void {
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    try {
      nc.publish(this.opts.subject, data);
    } catch {
      // too large, or closing: a doorbell may be lost
    }
  }

  async close(): Promise<void> {
    const nc = this.nc;
    this.nc = null;
    this.sub?.unsubscribe();
    if (nc && !nc.isClosed()) await nc.close();
  }
}
