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
  /** The /im PUSH frame of `event`, encoded once for every MsgPack connection (set by the publisher or the first connection). */
  imFrame?: Buffer;
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
   */
  constructor(private readonly onError: (err: unknown) => void = () => undefined, private readonly onFanout?: (connections: number) => void) {}

  publish(users: readonly string[], item: PushItem): void {
    let delivered = 0;
    for (const user of users) {
      const set = this.byUser.get(user);
      if (!set) continue;
      for (const sub of set) {
        if (sub === item.origin) continue;
        delivered++;
        try {
          sub.deliver(item);
        } catch (err) {
          this.onError(err);
          sub.close('GOING_AWAY');
        }
      }
    }
    this.onFanout?.(delivered);
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
