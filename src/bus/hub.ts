import type { CloseName } from '../errors/catalogue.js';
import type { StoredEvent } from '../store/port.js';

/**
 * One push. `frame` is a ready JSON frame for /ws (face-specific pushes such as read markers, or a
 * message rendered for one recipient); `event` is the stored event itself, face-neutral, so each
 * connection encodes its own frame (/ws JSON, /im MsgPack). `cid`/`seq` let a resuming connection drop
 * what its replay already sent.
 */
export interface PushItem {
  frame?: string;
  /**
   * `frame` as UTF-8, filled in by the first JSON connection that sends it: a group push goes to
   * thousands of connections, and encoding the same string once instead of per socket matters there.
   */
  frameBytes?: Buffer;
  /** `frameBytes` as one complete WebSocket text frame, built once for every /ws connection (src/transport/ws/prepared.ts). */
  frameWire?: Buffer;
  /** The /im PUSH frame of `event`, encoded once for every MsgPack connection (set by the publisher or the first connection). */
  imFrame?: Buffer;
  /** `imFrame` as one complete WebSocket binary frame, built once for every /im connection. */
  imWire?: Buffer;
  /**
   * Set by the hub while a fan-out delivers: a connection that writes the push calls it for its write
   * callback, so the hub knows when the push was handed to the kernel on every socket (metrics).
   */
  written?: () => () => void;
  /**
   * Set by the hub while a fan-out to more than BULK_FANOUT connections delivers: each connection writes
   * the frame at once instead of corking its socket for the turn (one frame per socket: nothing to
   * coalesce, and the first member's frame leaves before the last member's is written).
   */
  bulk?: boolean;
  event?: StoredEvent;
  /** False when the recipient muted the chat (JSON face: no alert). */
  alert?: boolean;
  cid?: string;
  seq?: number;
  /** A read marker moved: /ws sends `frame`, /im its own READ_PUSH. */
  read?: { cid: string; seq: number };
  /** The connection whose request caused this push (an /im ACK): it is not told of its own change. */
  origin?: object;
}

/** A live connection of one user (one device), as the hub sees it. */
export interface Subscriber {
  readonly user: string;
  readonly tokenHash: string;
  deliver(item: PushItem): void;
  close(reason: CloseName): void;
}

/**
 * Where the domain publishes pushes. The in-process hub is the embedded default; a bus adapter (several
 * gateway processes) relays the same calls to every process, each delivering to its own connections.
 */
export interface PushBus {
  publish(users: readonly string[], item: PushItem): void;
  /** Closes every connection authenticated with this token, on every process. */
  revokeToken(tokenHash: string): void;
  /** Whether the user has at least one live connection on any process (the local hub knows its own). */
  isOnline(user: string): boolean;
}

/**
 * What the connection layers (both WebSocket faces) and the composition root hold: the bus plus the
 * registry of this process's connections. `LocalHub` is the one-process implementation (BUS=local);
 * `ClusterHub` (cluster-hub.ts) carries the same calls to every process through a bus adapter.
 */
export interface Hub extends PushBus {
  add(sub: Subscriber): void;
  remove(sub: Subscriber): void;
  /** Told when a user's first connection opens (true) or their last one closes (false), on any process. */
  onPresence(listener: (user: string, online: boolean) => void): void;
  /**
   * A cache entry went stale (`kind` names the cache, e.g. 'access', `key` the entry; '*' means all):
   * told to every listener on every process, this one included. A process that lost the bus for a
   * while is told `('*', '*')` when it is back, since it may have missed some.
   */
  invalidate(kind: string, key: string): void;
  onInvalidate(listener: (kind: string, key: string) => void): void;
  /** This process's connections. */
  readonly connections: number;
  closeAll(reason: CloseName): void;
  /** Closes every connection of this user on this process (an operator ban; other processes hear of it through `invalidate('ban', …)`). */
  closeUser(user: string, reason: CloseName): void;
}

/** Registry of this process's connections by user. Cleaned on every close, so it never grows unbounded. */
export class LocalHub implements Hub {
  private readonly byUser = new Map<string, Set<Subscriber>>();
  private count = 0;

  add(sub: Subscriber): void {
    let set = this.byUser.get(sub.user);
    const first = !set;
    if (!set) this.byUser.set(sub.user, (set = new Set()));
    if (!set.has(sub)) {
      set.add(sub);
      this.count++;
    }
    if (first) this.presenceChanged(sub.user, true);
  }

  remove(sub: Subscriber): void {
    const set = this.byUser.get(sub.user);
    if (set?.delete(sub)) {
      this.count--;
      if (set.size === 0) {
        this.byUser.delete(sub.user);
        this.presenceChanged(sub.user, false);
      }
    }
  }

  private readonly presenceListeners: ((user: string, online: boolean) => void)[] = [];

  /** Told when a user's first connection on this process opens (true) or their last one closes (false). */
  onPresence(listener: (user: string, online: boolean) => void): void {
    this.presenceListeners.push(listener);
  }

  private presenceChanged(user: string, online: boolean): void {
    for (const l of this.presenceListeners) {
      try {
        l(user, online);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  /**
   * @param onError told of a connection whose delivery threw; the others still get the push.
   * @param onFanout told, per publish, how many connections it was delivered to (metrics).
   * @param onFanoutWritten told, per publish to at least one connection, the seconds from the publish
   *   until the push was handed to the kernel on every socket it was written to (metrics: the server's
   *   own part of a fan-out, without the receivers' reading).
   */
  constructor(
    private readonly onError: (err: unknown) => void = () => undefined,
    private readonly onFanout?: (connections: number) => void,
    private readonly onFanoutWritten?: (connections: number, seconds: number) => void,
  ) {}

  /** Fan-outs not yet delivered to every connection, oldest first (delivered in publish order). */
  private readonly queue: Fanout[] = [];
  private draining = false;

  /**
   * Delivers a push to every live connection of these users (the ones open now). The deliveries go out
   * in publish order, at most FANOUT_CHUNK per event-loop turn: a push to a 10,000-member group yields
   * between chunks, so each chunk's frames leave (and the loop answers other work) before the next chunk
   * is written, and every later push, to anyone, queues behind it, so no connection is sent two pushes
   * in another order than they were published. A small push with nothing queued is delivered at once.
   */
  publish(users: readonly string[], item: PushItem): void {
    const subs: Subscriber[] = [];
    for (const user of users) {
      const set = this.byUser.get(user);
      if (!set) continue;
      for (const sub of set) if (sub !== item.origin) subs.push(sub);
    }
    this.onFanout?.(subs.length);
    if (subs.length === 0) return;
    this.queue.push(new Fanout(subs, item, this.onFanoutWritten));
    if (!this.draining) this.drain();
  }

  /** Pushes published but not yet delivered to every connection (0 when idle). */
  get queued(): number {
    return this.queue.length;
  }

  private readonly drainLater = (): void => this.drain();

  private drain(): void {
    this.draining = true;
    let budget = FANOUT_CHUNK;
    while (this.queue.length > 0) {
      const job = this.queue[0] as Fanout;
      budget = job.deliver(budget, this.onError);
      if (!job.complete) break;
      this.queue.shift();
      job.finished();
      if (budget === 0) break;
    }
    if (this.queue.length > 0) setImmediate(this.drainLater);
    else this.draining = false;
  }

  revokeToken(tokenHash: string): void {
    for (const set of this.byUser.values()) {
      for (const sub of set) if (sub.tokenHash === tokenHash) sub.close('TOKEN_EXPIRED');
    }
  }

  isOnline(user: string): boolean {
    return this.byUser.has(user);
  }

  /** Closes every connection of this user on this process (an operator ban). */
  closeUser(user: string, reason: CloseName): void {
    for (const sub of [...(this.byUser.get(user) ?? [])]) sub.close(reason);
  }

  /** How many users have at least one connection on this process. */
  get userCount(): number {
    return this.byUser.size;
  }

  /** Users with at least one connection on this process. */
  users(): IterableIterator<string> {
    return this.byUser.keys();
  }

  /** Every connection on this process (a copy, safe to close while iterating). */
  subscribers(): Subscriber[] {
    const out: Subscriber[] = [];
    for (const set of this.byUser.values()) for (const sub of set) out.push(sub);
    return out;
  }

  private readonly invalidateListeners: ((kind: string, key: string) => void)[] = [];

  onInvalidate(listener: (kind: string, key: string) => void): void {
    this.invalidateListeners.push(listener);
  }

  invalidate(kind: string, key: string): void {
    for (const l of this.invalidateListeners) {
      try {
        l(kind, key);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  get connections(): number {
    return this.count;
  }

  closeAll(reason: CloseName): void {
    for (const set of [...this.byUser.values()]) for (const sub of [...set]) sub.close(reason);
  }
}

/** Deliveries per event-loop turn of a fan-out. */
export const FANOUT_CHUNK = 512;
/** A fan-out to more connections than this writes without corking (PushItem.bulk). */
export const BULK_FANOUT = 64;

/** One publish on its way to its connections. */
class Fanout {
  private next = 0;
  private readonly started = performance.now();
  /** Writes handed a callback and not yet called back, plus one until every delivery was made. */
  private pending = 1;

  constructor(private readonly subs: Subscriber[], private readonly item: PushItem, private readonly onWritten?: (connections: number, seconds: number) => void) {}

  get complete(): boolean {
    return this.next >= this.subs.length;
  }

  private readonly done = (): void => {
    if (--this.pending === 0) this.onWritten?.(this.subs.length, (performance.now() - this.started) / 1000);
  };

  /** A connection that writes this push takes its write callback (counted until it is called). */
  private readonly take = (): (() => void) => {
    this.pending++;
    return this.done;
  };

  /** Delivers to at most `budget` more connections; returns what is left of the budget. */
  deliver(budget: number, onError: (err: unknown) => void): number {
    const { subs, item } = this;
    const from = this.next;
    const end = Math.min(subs.length, from + budget);
    // The write callback is on the item only while this fan-out delivers (a bus may hand the item on).
    const before = item.written;
    const wasBulk = item.bulk;
    if (this.onWritten) item.written = this.take;
    if (subs.length > BULK_FANOUT) item.bulk = true;
    try {
      for (; this.next < end; this.next++) {
        const sub = subs[this.next] as Subscriber;
        try {
          sub.deliver(item);
        } catch (err) {
          onError(err);
          sub.close('GOING_AWAY');
        }
      }
    } finally {
      item.written = before;
      item.bulk = wasBulk;
    }
    return budget - (end - from);
  }

  /** Every delivery was made: what is left to wait for is the writes still in flight. */
  finished(): void {
    this.done();
  }
}
