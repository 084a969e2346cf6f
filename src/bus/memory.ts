import type { BusHandlers, BusTransport } from './transport.js';

/**
 * An in-process broker for several ClusterHubs in one process (the bus contract suite, unit tests of gap
 * fill). Messages are delivered asynchronously, in publish order; `down()` makes it drop everything and
 * tell the transports they lost it, `up()` brings it back, as a restarted NATS server would.
 */
export class MemoryBroker {
  private readonly subs = new Set<MemoryTransport>();
  private alive = true;
  /** Messages to drop silently: a doorbell lost without the transport noticing. */
  dropNext = 0;
  /** While set, every message is dropped and nobody is told: a bus gone silent (centrifugo#1189). */
  silent = false;

  transport(): MemoryTransport {
    return new MemoryTransport(this);
  }

  /** @internal */
  attach(t: MemoryTransport): void {
    this.subs.add(t);
  }

  /** @internal */
  detach(t: MemoryTransport): void {
    this.subs.delete(t);
  }

  /** @internal */
  send(data: Uint8Array): void {
    if (!this.alive || this.silent) return;
    if (this.dropNext > 0) {
      this.dropNext--;
      return;
    }
    const copy = Uint8Array.from(data);
    for (const s of this.subs) setImmediate(() => s.receive(copy));
  }

  get isUp(): boolean {
    return this.alive;
  }

  down(): void {
    this.alive = false;
    for (const s of this.subs) s.tell(false, 'memory broker down');
  }

  up(): void {
    this.alive = true;
    for (const s of this.subs) s.tell(true, 'memory broker up');
  }
}

export class MemoryTransport implements BusTransport {
  readonly kind = 'memory';
  private handlers: BusHandlers | null = null;

  constructor(private readonly broker: MemoryBroker) {}

  async start(handlers: BusHandlers): Promise<void> {
    if (!this.broker.isUp) throw new Error('memory broker is down');
    this.handlers = handlers;
    this.broker.attach(this);
  }

  publish(data: Uint8Array): void {
    if (this.handlers) this.broker.send(data);
  }

  /** @internal */
  receive(data: Uint8Array): void {
    this.handlers?.message(data);
  }

  /** @internal */
  tell(connected: boolean, reason: string): void {
    this.handlers?.state(connected, reason);
  }

  async close(): Promise<void> {
    this.broker.detach(this);
    this.handlers = null;
  }
}
