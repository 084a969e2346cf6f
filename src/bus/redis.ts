import { Redis } from 'ioredis';
import type { BusHandlers, BusTransport } from './transport.js';

export interface RedisBusOptions {
  url: string;
  channel: string;
  connectTimeoutMs: number;
}

/**
 * The bus over Redis pub/sub: one connection subscribed to the channel (ioredis re-subscribes after a
 * reconnect), one to publish. Publishing fails fast while disconnected instead of queueing without
 * bound; the hub re-derives what was missed from the store.
 */
export class RedisBus implements BusTransport {
  readonly kind = 'redis';
  private sub: Redis | null = null;
  private pub: Redis | null = null;

  constructor(private readonly opts: RedisBusOptions) {}

  async start(handlers: BusHandlers): Promise<void> {
    const common = {
      lazyConnect: true,
      connectTimeout: this.opts.connectTimeoutMs,
      maxRetriesPerRequest: 0,
      retryStrategy: (times: number) => Math.min(250 * times, 2000),
    };
    const sub = new Redis(this.opts.url, { ...common, autoResubscribe: true });
    const pub = new Redis(this.opts.url, { ...common, enableOfflineQueue: false });
    this.sub = sub;
    this.pub = pub;
    sub.on('error', () => undefined); // reported through 'close' / 'ready'
    pub.on('error', () => undefined);
    try {
      await Promise.all([sub.connect(), pub.connect()]);
    } catch (e) {
      sub.disconnect();
      pub.disconnect();
      throw e;
    }
    sub.on('messageBuffer', (_channel: Buffer, message: Buffer) => handlers.message(message));
    await sub.subscribe(this.opts.channel);
    sub.on('close', () => handlers.state(false, 'redis subscriber connection closed'));
    pub.on('close', () => handlers.state(false, 'redis publisher connection closed'));
    // 'ready' fires after ioredis re-subscribed on the subscriber connection.
    sub.on('ready', () => { if (pub.status === 'ready') handlers.state(true, 'redis reconnected'); });
    pub.on('ready', () => { if (sub.status === 'ready') handlers.state(true, 'redis reconnected'); });
  }

  publish(data: Uint8Array): void {
    const pub = this.pub;
    if (!pub || pub.status !== 'ready') return;
    pub.publish(this.opts.channel, Buffer.from(data.buffer, data.byteOffset, data.byteLength)).catch(() => undefined);
  }

  async close(): Promise<void> {
    const { sub, pub } = this;
    this.sub = null;
    this.pub = null;
    sub?.removeAllListeners('close');
    pub?.removeAllListeners('close');
    await Promise.allSettled([sub?.quit(), pub?.quit()]);
  }
}
