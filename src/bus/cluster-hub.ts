import { randomBytes } from 'node:crypto';
import type { CloseName } from '../errors/catalogue.js';
import type { Logger } from '../log/logger.js';
import type { Store, StoredEvent } from '../store/port.js';
import { LocalHub, type Hub, type PushItem, type Subscriber } from './hub.js';
import { SeqTracker } from './seq-tracker.js';
import type { BusTransport } from './transport.js';

/** What travels on the bus (JSON), batched per event-loop turn into one envelope `{p: process, m: [...]}`. */
type Msg =
  /** Doorbell: event `s` of conversation `c` was committed; `m` who of its online recipients muted it; `e` the event if small. */
  | { t: 'e'; c: string; s: number; m?: string[]; e?: StoredEvent }
  /** A push without a stored event (a read marker moved): delivered as is to the users' connections. */
  | { t: 'u'; u: string[]; f?: string; r?: { cid: string; seq: number } }
  /** Close every connection of this token (logout). */
  | { t: 'x'; h: string }
  /** Drop a cache entry (Hub.invalidate). */
  | { t: 'i'; k: string; y: string }
  /** A user's first connection on the sending process opened (true) or its last closed (false). */
  | { t: 'o'; u: string; on: boolean }
  /** Heartbeat and self-ping: `d` digest of the sender's online users, `n` their number. */
  | { t: 'hb'; n: number; d: number }
  /** Part `i` of `n` of the sender's online users (generation `g`), answering a sync. */
  | { t: 'snap'; g: number; i: number; n: number; u: string[] }
  /** Asks `to` (or everyone) for a snapshot of its online users. */
  | { t: 'sync'; to?: string }
  /** The sender is shutting down: forget its users. */
  | { t: 'bye' };

/**
 * `n` counts the sender's envelopes: a receiver that sees one skipped knows it missed something. `h` is 1
 * when the envelope carries a heartbeat: `p` and `h` lead the JSON, so a process recognises its own
 * envelopes (every bus echoes them) from their first bytes and reads only whether its ping came back,
 * instead of parsing every doorbell it rang itself.
 */
interface Envelope { p: string; h: 0 | 1; n: number; m: Msg[] }

interface Peer {
  users: Set<string>;
  digest: number;
  lastSeen: number;
  /** When we last asked it for a snapshot (throttled to one per ping interval). */
  askedAt: number;
  pending: { g: number; next: number; users: Set<string> } | null;
  /** The last envelope number received from it. */
  lastN: number;
}

export interface ClusterHubOptions {
  /** Self-ping (and heartbeat) interval. */
  pingMs: number;
  /** The bus counts as down when our own ping has not come back for this long; a peer silent this long is gone. */
  deadAfterMs: number;
  /** Events whose body is at most this many bytes ride in the doorbell; bigger ones are read from the store. */
  inlineMaxBytes: number;
  /** Conversations whose delivered seqs are remembered (least recently active dropped first). */
  trackMax: number;
  /**
   * A conversation that concerns this process is compared with the store once this long after its last
   * event (a burst's last doorbell, when lost, has no later one to reveal the gap); 0: never.
   */
  catchupMs?: number;
}

export interface ClusterHubDeps {
  transport: BusTransport;
  /** The source of truth that gaps are filled from. */
  store: Pick<Store, 'getEventBySeq' | 'lastSeq' | 'mutedUsers' | 'getToken' | 'listChats'>;
  /** Everyone a stored event is pushed to (the hider alone, both sides of a direct chat, a group's audience). */
  recipients(e: StoredEvent): Promise<readonly string[]>;
  /** Face-specific parts of a push built once per event on the receiving process (the /im frame of a file). */
  render?(e: StoredEvent): Promise<Partial<PushItem>>;
  log: Logger;
  now?: () => number;
  /** Told how many of this process's connections each push reached (metrics). */
  onFanout?: (connections: number) => void;
  /** Told when a fan-out's frame was handed to the kernel on every socket, and how long that took (metrics). */
  onFanoutWritten?: (connections: number, seconds: number) => void;
  /** The push of a user's read marker (both faces' frames); re-sent after a loss, as its bus push may be gone. */
  readPush?: (user: string, cid: string, seq: number) => PushItem;
}

export interface BusStatus {
  ok: boolean;
  kind: string;
  /** Why it is not ok. */
  reason?: string;
  /** Other processes heard from. */
  peers: number;
  /** Times the bus was lost since start. */
  losses: number;
}

const MAX_ENVELOPE_BYTES = 256 * 1024;
const SNAPSHOT_CHUNK = 2000;
const SWEEP_CONCURRENCY = 8;
/** Events of a conversation this process never tracked, read back at most this far when filling after a loss. */
const MAX_UNTRACKED_FILL = 500;
/** Chats per local user looked at after a loss (most recently active first). */
const CHATS_PER_USER = 100;
/** Quiet conversations compared with the store per tick, at most (the rest wait for the next tick). */
const CATCHUP_PER_TICK = 500;

/** 32-bit FNV-1a of a user; XORed over a set it gives an order-free digest that updates in O(1). */
function hashUser(u: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < u.length; i++) {
    h ^= u.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * The push hub of one process among many (BUS=nats|redis): this process's connections (a LocalHub),
 * plus a bus that every process listens to.
 *
 * The bus is a doorbell, not a log (SPEC section 9). A committed event is rung with its `(cid, seq)`;
 * each process remembers which seqs of each conversation it delivered (SeqTracker) and, on a doorbell
 * beyond a gap, reads the missing events from the store. When the bus was lost, the first own ping that
 * comes back proves the subscription live again, and only then are the remembered conversations compared
 * with the store (subscribe before reading the position: synapse#7427), presence re-synchronised, open
 * connections' tokens re-checked and every cache dropped. A lost bus message therefore costs latency,
 * never a message. A bus that went silent without the driver noticing is caught by the self-ping
 * (centrifugo#1189) and reported by readiness.
 */
export class ClusterHub implements Hub {
  readonly id = randomBytes(6).toString('hex');
  private readonly local: LocalHub;
  private readonly tracker: SeqTracker;
  private readonly now: () => number;
  private readonly peers = new Map<string, Peer>();
  /** How many peers hold each remote user. */
  private readonly remoteCount = new Map<string, number>();
  private localDigest = 0;
  private readonly presenceListeners: ((user: string, online: boolean) => void)[] = [];
  private readonly chains = new Map<string, Promise<void>>();
  private outbox: Msg[] = [];
  private outboxBytes = 0;
  private flushScheduled = false;
  /** The first bytes of this process's own envelopes, without and with a heartbeat (see Envelope). */
  private readonly ownPrefix = [0, 1].map((h) => Buffer.from(`{"p":"${this.id}","h":${h},`));
  private outboxHasPing = false;
  /** Doorbells of this turn by `cid\0seq`, so several publish calls of one event ring once. */
  private readonly ringing = new Map<string, Msg & { t: 'e' }>();
  private lastLocal: { cid: string; seq: number; deliver: boolean } | null = null;
  private up = false;
  private connected = false;
  private reason = 'not started';
  private lastOwnPing = 0;
  private losses = 0;
  private snapGen = 0;
  private sent = 0;
  private sweeping: Promise<void> | null = null;
  private sweepAgain = false;
  /** Oldest receivedAt the next sweep must look back to for conversations not tracked (null: tracked ones only). */
  private sweepSince: number | null = null;
  /** When our bus was last proven working before it was lost. */
  private healthyAt = 0;
  private readonly startedAt: number;
  /** When each peer was given up, so its return can be looked back to. */
  private readonly droppedAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  private firstUp: (() => void) | null = null;
  /** Conversations that concern this process, by when their quiet catch-up is due (re-armed by each event). */
  private readonly quiet = new Map<string, number>();

  constructor(private readonly deps: ClusterHubDeps, private readonly opts: ClusterHubOptions) {
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    this.tracker = new SeqTracker(opts.trackMax);
    this.local = new LocalHub((err) => deps.log.error({ err }, 'push delivery failed; connection closed'), deps.onFanout, deps.onFanoutWritten);
    this.local.onPresence((user, online) => this.localPresence(user, online));
  }

  // --- lifecycle

  /** Subscribes, then waits (at most deadAfterMs) for the first own ping; readiness tells the rest. */
  async start(): Promise<void> {
    await this.deps.transport.start({
      message: (data) => this.receive(data),
      state: (connected, reason) => this.transportState(connected, reason),
    });
    this.connected = true;
    this.reason = 'waiting for the first self-ping';
    const first = new Promise<void>((resolve) => { this.firstUp = resolve; });
    this.send({ t: 'sync' });
    this.ping();
    this.timer = setInterval(() => this.tick(), this.opts.pingMs);
    this.timer.unref();
    const wait = setTimeout(() => this.firstUp?.(), this.opts.deadAfterMs);
    await first;
    clearTimeout(wait);
    this.firstUp = null;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    this.send({ t: 'bye' });
    this.flush();
    await this.sweeping;
    await Promise.allSettled([...this.chains.values()]);
    await this.deps.transport.close();
  }

  status(): BusStatus {
    return { ok: this.up, kind: this.deps.transport.kind, ...(this.up ? {} : { reason: this.reason }), peers: this.peers.size, losses: this.losses };
  }

  // --- Hub: connections

  add(sub: Subscriber): void {
    this.local.add(sub);
  }

  remove(sub: Subscriber): void {
    this.local.remove(sub);
  }

  get connections(): number {
    return this.local.connections;
  }

  closeAll(reason: CloseName): void {
    this.local.closeAll(reason);
  }

  closeUser(user: string, reason: CloseName): void {
    this.local.closeUser(user, reason);
  }

  onPresence(listener: (user: string, online: boolean) => void): void {
    this.presenceListeners.push(listener);
  }

  isOnline(user: string): boolean {
    return this.local.isOnline(user) || (this.remoteCount.get(user) ?? 0) > 0;
  }

  // --- Hub: publishing

  publish(users: readonly string[], item: PushItem): void {
    const { event, cid, seq } = item;
    if (event && cid !== undefined && seq !== undefined) {
      // One event may be published in several calls (each side of a direct chat, loud and muted members).
      const last = this.lastLocal;
      let deliver: boolean;
      if (last && last.cid === cid && last.seq === seq) deliver = last.deliver;
      else {
        deliver = this.tracker.claim(cid, seq); // false: a gap fill from the bus got there first
        this.lastLocal = { cid, seq, deliver };
        queueMicrotask(() => { this.lastLocal = null; });
      }
      this.ring(event, users, item.alert !== false);
      if (deliver) this.local.publish(users, item);
      if (this.concerns(cid)) this.armCatchup(cid);
      return;
    }
    this.local.publish(users, item);
    if (users.length > 0 && item.frame !== undefined) {
      this.send({ t: 'u', u: [...users], f: item.frame, ...(item.read ? { r: item.read } : {}) });
    }
  }

  revokeToken(tokenHash: string): void {
    this.local.revokeToken(tokenHash);
    this.send({ t: 'x', h: tokenHash });
  }

  private readonly invalidateListeners: ((kind: string, key: string) => void)[] = [];

  onInvalidate(listener: (kind: string, key: string) => void): void {
    this.invalidateListeners.push(listener);
  }

  invalidate(kind: string, key: string): void {
    this.tellInvalidate(kind, key);
    this.send({ t: 'i', k: kind, y: key });
  }

  private tellInvalidate(kind: string, key: string): void {
    for (const l of this.invalidateListeners) {
      try {
        l(kind, key);
      } catch (err) {
        this.deps.log.error({ err, kind, key }, 'invalidate listener failed');
      }
    }
  }

  private ring(e: StoredEvent, users: readonly string[], loud: boolean): void {
    const key = `${e.cid}\0${e.seq}`;
    let bell = this.ringing.get(key);
    if (!bell) {
      bell = { t: 'e', c: e.cid, s: e.seq };
      this.ringing.set(key, bell);
      this.send(bell);
    }
    // The event rides along only when a recipient is known online on another process: every process
    // parses every envelope, and one that has nobody to push to needs only the (cid, seq). A process
    // whose user connected after our presence view was taken still delivers it, read from the store.
    if (bell.e === undefined && e.body.length <= this.opts.inlineMaxBytes && users.some((u) => (this.remoteCount.get(u) ?? 0) > 0)) {
      bell.e = e;
      this.outboxBytes += e.body.length + 200;
    }
    // Who muted is known only when the publisher looked (it does when someone is online).
    if (users.length > 0) {
      bell.m ??= [];
      if (!loud) bell.m.push(...users);
    }
  }

  // --- the wire

  private send(m: Msg): void {
    if (this.closed && m.t !== 'bye') return;
    // While the driver says it is disconnected, nothing is queued: doorbells are re-derived from the
    // store when it is back, and an unbounded client-side buffer would be the worse failure.
    if (!this.connected) {
      // Counted as an envelope of its own, so the next envelope that does go out shows the peers a gap:
      // they read from the store what this process rang while its driver was reconnecting.
      if (m.t !== 'hb') this.sent++;
      return;
    }
    this.outbox.push(m);
    if (m.t === 'hb') this.outboxHasPing = true;
    this.outboxBytes += 120;
    if (this.outboxBytes >= MAX_ENVELOPE_BYTES) this.flush();
    else if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    this.ringing.clear();
    if (this.outbox.length === 0) return;
    const env: Envelope = { p: this.id, h: this.outboxHasPing ? 1 : 0, n: ++this.sent, m: this.outbox };
    this.outbox = [];
    this.outboxHasPing = false;
    this.outboxBytes = 0;
    this.deps.transport.publish(Buffer.from(JSON.stringify(env)));
  }

  private receive(data: Uint8Array): void {
    const own = this.ownEnvelope(data);
    if (own !== null) {
      if (own) this.ownPing();
      return;
    }
    let env: Envelope;
    try {
      env = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as Envelope;
      if (typeof env.p !== 'string' || !Array.isArray(env.m)) throw new Error('not an envelope');
    } catch (err) {
      this.deps.log.warn({ err }, 'bus: unreadable message dropped');
      return;
    }
    if (env.p === this.id) {
      if (env.m.some((m) => m.t === 'hb')) this.ownPing();
      return;
    }
    const known = this.peers.get(env.p);
    const heardAt = known?.lastSeen;
    const peer = this.peer(env.p);
    // A peer whose envelope numbers skipped, or one heard for the first time that has sent before (it
    // ran before we did, or returns after it was given up): its doorbells may have been lost, so the
    // conversations are checked against the store, back to when we last heard it.
    if (typeof env.n === 'number') {
      if (known && env.n !== known.lastN + 1) this.requestSweep(heardAt ?? this.startedAt);
      else if (!known && env.n > 1) this.requestSweep(this.droppedAt.get(env.p) ?? this.startedAt);
      this.droppedAt.delete(env.p);
      peer.lastN = env.n;
    }
    for (const m of env.m) {
      try {
        this.handle(env.p, peer, m);
      } catch (err) {
        this.deps.log.error({ err, type: m.t }, 'bus: message handling failed');
      }
    }
  }

  /** Null: not one of ours; otherwise whether it carries our heartbeat. */
  private ownEnvelope(data: Uint8Array): boolean | null {
    const [quiet, ping] = this.ownPrefix as [Buffer, Buffer];
    if (data.byteLength < quiet.length) return null;
    const head = Buffer.from(data.buffer, data.byteOffset, quiet.length);
    if (head.equals(ping)) return true;
    return head.equals(quiet) ? false : null;
  }

  private handle(from: string, peer: Peer, m: Msg): void {
    switch (m.t) {
      case 'e':
        this.enqueue(m.c, () => this.doorbell(m.c, m.s, m.m, m.e));
        return;
      case 'u':
        this.local.publish(m.u, { ...(m.f !== undefined ? { frame: m.f } : {}), ...(m.r ? { read: m.r } : {}) });
        return;
      case 'x':
        this.local.revokeToken(m.h);
        return;
      case 'i':
        this.tellInvalidate(m.k, m.y);
        return;
      case 'o':
        this.peerPresence(peer, m.u, m.on);
        return;
      case 'hb':
        if (m.d !== peer.digest || m.n !== peer.users.size) this.askSnapshot(from, peer);
        return;
      case 'snap':
        this.snapshotPart(peer, m);
        return;
      case 'sync':
        if (m.to === undefined || m.to === this.id) this.sendSnapshot();
        return;
      case 'bye':
        this.dropPeer(from);
        return;
    }
  }

  // --- doorbells and gap fill

  /** Runs one conversation's doorbell work in order, whatever awaits inside. */
  private enqueue(cid: string, fn: () => Promise<void>): void {
    const prev = this.chains.get(cid) ?? Promise.resolve();
    const next = prev.then(fn).catch((err: unknown) => {
      this.deps.log.error({ err, cid }, 'bus: gap fill failed; tried again shortly');
      // What was not claimed is still missing: a later sweep reads it again.
      const t = setTimeout(() => { if (!this.closed) this.requestSweep(); }, this.opts.pingMs);
      t.unref();
    });
    this.chains.set(cid, next);
    void next.then(() => { if (this.chains.get(cid) === next) this.chains.delete(cid); });
  }

  /** `arm`: a quiet catch-up follows (not for the catch-up's own fill, which would re-arm itself forever). */
  private async doorbell(cid: string, seq: number, muted: string[] | undefined, inline: StoredEvent | undefined, arm = true): Promise<void> {
    const todo = this.tracker.missing(cid, seq);
    if (todo.length === 0) return;
    if (!this.concerns(cid)) {
      for (const s of todo) this.tracker.claim(cid, s);
      return;
    }
    if (arm) this.armCatchup(cid);
    for (const s of todo) {
      const e = s === seq && inline ? inline : await this.deps.store.getEventBySeq(cid, s);
      if (!e) {
        if (this.tracker.claim(cid, s)) this.deps.log.warn({ cid, seq: s }, 'bus: rung event not in the store');
        continue;
      }
      const send = await this.prepare(e, s === seq ? muted : undefined);
      if (!this.tracker.claim(cid, s)) continue; // delivered meanwhile by this process's own commit
      send();
    }
  }

  /** Whether any of this process's users can be a recipient in `cid` (cheap for direct chats). */
  private concerns(cid: string): boolean {
    const m = /^dm:(0x[0-9a-f]{40}):(0x[0-9a-f]{40})$/.exec(cid);
    if (!m) return this.local.connections > 0;
    return this.local.isOnline(m[1] as string) || this.local.isOnline(m[2] as string);
  }

  /**
   * Reads what delivering `e` needs (recipients, who muted the chat, the /im rendering of a file) and
   * returns the delivery itself, synchronous. The caller claims the seq between the two: a read that
   * fails (STORE_UNAVAILABLE on a pool timeout) must leave the seq unclaimed, so that the sweep the
   * failure requests fills it; claimed first, it was marked delivered and lost (issue 19, cluster soak).
   */
  private async prepare(e: StoredEvent, muted: string[] | undefined): Promise<() => void> {
    const users = (await this.deps.recipients(e)).filter((u) => this.local.isOnline(u));
    if (users.length === 0) return () => {};
    const quiet = new Set(muted ?? (await this.deps.store.mutedUsers(e.cid)));
    const extra = this.deps.render ? await this.deps.render(e) : {};
    return () => {
      const loud = users.filter((u) => !quiet.has(u));
      const hushed = users.filter((u) => quiet.has(u));
      if (loud.length > 0) this.local.publish(loud, { ...extra, event: e, cid: e.cid, seq: e.seq, alert: true });
      if (hushed.length > 0) this.local.publish(hushed, { ...extra, event: e, cid: e.cid, seq: e.seq, alert: false });
    };
  }

  // --- health: self-ping, loss and recovery

  private ping(): void {
    this.send({ t: 'hb', n: this.local.userCount, d: this.localDigest });
  }

  private tick(): void {
    if (this.closed) return;
    const now = this.now();
    if (this.up && now - this.lastOwnPing > this.opts.deadAfterMs) this.setDown(`no self-ping for ${now - this.lastOwnPing} ms`);
    if (this.up) {
      for (const [id, p] of this.peers) {
        if (now - p.lastSeen <= this.opts.deadAfterMs) continue;
        // Gone without a goodbye (kill -9): what it committed last may have been answered before its
        // doorbell left, and no later envelope of its will show the gap.
        this.dropPeer(id);
        this.requestSweep(p.lastSeen);
      }
      this.catchup(now);
    }
    this.ping();
  }

  private armCatchup(cid: string): void {
    const ms = this.opts.catchupMs ?? 0;
    if (ms <= 0 || this.closed) return;
    this.quiet.delete(cid);
    this.quiet.set(cid, this.now() + ms);
    // Bounded like the tracker: the least recently active are dropped first.
    if (this.quiet.size > this.opts.trackMax) this.quiet.delete(this.quiet.keys().next().value as string);
  }

  /** Compares the conversations quiet since their catch-up was armed with the store, and fills what is missing. */
  private catchup(now: number): void {
    let n = 0;
    for (const [cid, due] of this.quiet) {
      // Insertion order is arming order and every entry waits the same time: the first not due ends it.
      if (due > now || n >= CATCHUP_PER_TICK) break;
      this.quiet.delete(cid);
      n++;
      this.enqueue(cid, async () => {
        const last = await this.deps.store.lastSeq(cid);
        if (this.tracker.last(cid) !== undefined && this.tracker.missing(cid, last).length > 0) {
          this.deps.log.info({ cid, seq: last }, 'bus: a quiet conversation was behind the store; filled');
          await this.doorbell(cid, last, undefined, undefined, false);
        }
      });
    }
  }

  private transportState(connected: boolean, reason: string): void {
    this.deps.log.info({ bus: this.deps.transport.kind, connected, reason }, 'bus connection');
    this.connected = connected;
    if (!connected) this.setDown(reason);
    else this.ping(); // recovery is declared when this ping comes back, not before
  }

  private setDown(reason: string): void {
    this.reason = reason;
    if (!this.up) return;
    this.up = false;
    this.losses++;
    this.healthyAt = this.lastOwnPing;
    this.deps.log.warn({ bus: this.deps.transport.kind, reason }, 'bus down: pushes to other processes wait; sends still commit');
  }

  private ownPing(): void {
    this.lastOwnPing = this.now();
    if (this.up) return;
    const recovered = this.losses > 0;
    this.up = true;
    this.reason = '';
    this.firstUp?.();
    if (recovered) {
      this.deps.log.info({ bus: this.deps.transport.kind }, 'bus back: filling gaps from the store');
      this.recover();
    }
  }

  /** The subscription is proven live again: now compare with the store, resync presence, recheck tokens, drop caches. */
  private recover(): void {
    const now = this.now();
    for (const p of this.peers.values()) p.lastSeen = now;
    this.send({ t: 'sync' });
    this.sendSnapshot();
    this.tellInvalidate('*', '*');
    this.requestSweep(this.healthyAt);
    void this.recheckTokens();
  }

  /**
   * Runs a sweep now, or once more after the one under way (which may have read positions too early).
   * `since`: doorbells may have been lost from about then on, so conversations not tracked are looked at too.
   */
  private requestSweep(since?: number): void {
    if (since !== undefined) {
      // Doorbells go out just after their commit; receivedAt is set just before it, on another host's clock.
      const from = since - this.opts.deadAfterMs - 5000;
      this.sweepSince = this.sweepSince === null ? from : Math.min(this.sweepSince, from);
    }
    if (this.tracker.size === 0 && this.sweepSince === null) return;
    if (this.sweeping) {
      this.sweepAgain = true;
      return;
    }
    this.sweeping = this.sweep().finally(() => {
      this.sweeping = null;
      if (this.sweepAgain) {
        this.sweepAgain = false;
        this.requestSweep();
      }
    });
  }

  /**
   * Compares every remembered conversation with the store and fills what this process missed. After a
   * loss (`sweepSince`), also the recent chats of every user connected here that this process does not
   * track (a conversation that began while the bus was away): their events since then are delivered.
   */
  private async sweep(): Promise<void> {
    const since = this.sweepSince;
    this.sweepSince = null;
    const cids = this.tracker.conversations();
    await this.parallel(cids, async (cid) => {
      const last = await this.deps.store.lastSeq(cid);
      // Not `last > highest delivered`: a local commit may have been delivered above a lost seq.
      if (this.tracker.last(cid) !== undefined && this.tracker.missing(cid, last).length > 0) this.enqueue(cid, () => this.doorbell(cid, last, undefined, undefined));
    });
    if (since === null) return;
    const seen = new Set(cids);
    await this.parallel([...this.local.users()], async (user) => {
      for (const chat of await this.deps.store.listChats(user, CHATS_PER_USER, 0)) {
        // A read marker's push rides the bus with nothing in the store to ring it again: the marker in
        // force is told once more (the same marker twice changes nothing on a client).
        if (chat.lastReadSeq > 0 && this.deps.readPush) this.local.publish([user], this.deps.readPush(user, chat.cid, chat.lastReadSeq));
        if (chat.lastPostAt < since || seen.has(chat.cid)) continue;
        seen.add(chat.cid);
        const { cid, lastSeq } = chat;
        if (this.tracker.last(cid) !== undefined) this.enqueue(cid, () => this.doorbell(cid, lastSeq, undefined, undefined));
        else this.enqueue(cid, () => this.fillSince(cid, lastSeq, since));
      }
    });
  }

  private async parallel<T>(items: readonly T[], fn: (item: T) => Promise<void>): Promise<void> {
    let i = 0;
    const worker = async (): Promise<void> => {
      while (i < items.length) {
        const item = items[i++] as T;
        try {
          await fn(item);
        } catch (err) {
          this.deps.log.warn({ err }, 'bus: gap check failed');
        }
      }
    };
    await Promise.all(Array.from({ length: SWEEP_CONCURRENCY }, worker));
  }

  /** A conversation never tracked here: delivers its events received since `since` (newest `MAX_UNTRACKED_FILL`). */
  private async fillSince(cid: string, last: number, since: number): Promise<void> {
    if (this.tracker.last(cid) !== undefined) return this.doorbell(cid, last, undefined, undefined);
    const events: StoredEvent[] = [];
    for (let s = last; s >= 1 && events.length < MAX_UNTRACKED_FILL; s--) {
      const e = await this.deps.store.getEventBySeq(cid, s);
      if (!e || e.receivedAt < since) break;
      events.push(e);
    }
    for (const e of events.reverse()) {
      const send = await this.prepare(e, undefined);
      if (this.tracker.claim(cid, e.seq)) send();
    }
  }

  private async recheckTokens(): Promise<void> {
    const hashes = new Set(this.local.subscribers().map((s) => s.tokenHash));
    const now = this.now();
    for (const h of hashes) {
      try {
        const t = await this.deps.store.getToken(h);
        if (!t || t.revoked || t.expiresAt <= now) this.local.revokeToken(h);
      } catch (err) {
        this.deps.log.warn({ err }, 'bus: token recheck failed');
      }
    }
  }

  // --- presence across processes

  private peer(id: string): Peer {
    let p = this.peers.get(id);
    if (!p) {
      p = { users: new Set(), digest: 0, lastSeen: this.now(), askedAt: 0, pending: null, lastN: 0 };
      this.peers.set(id, p);
    }
    p.lastSeen = this.now();
    return p;
  }

  private localPresence(user: string, online: boolean): void {
    this.localDigest ^= hashUser(user);
    this.send({ t: 'o', u: user, on: online });
    if ((this.remoteCount.get(user) ?? 0) === 0) this.tellPresence(user, online);
  }

  private peerPresence(peer: Peer, user: string, online: boolean): void {
    if (online === peer.users.has(user)) return;
    const before = this.isOnline(user);
    if (online) {
      peer.users.add(user);
      this.remoteCount.set(user, (this.remoteCount.get(user) ?? 0) + 1);
    } else {
      peer.users.delete(user);
      const n = (this.remoteCount.get(user) ?? 1) - 1;
      if (n > 0) this.remoteCount.set(user, n);
      else this.remoteCount.delete(user);
    }
    peer.digest ^= hashUser(user);
    const after = this.isOnline(user);
    if (before !== after) this.tellPresence(user, after);
  }

  private tellPresence(user: string, online: boolean): void {
    for (const l of this.presenceListeners) {
      try {
        l(user, online);
      } catch (err) {
        this.deps.log.error({ err }, 'presence listener failed');
      }
    }
  }

  private askSnapshot(id: string, peer: Peer): void {
    const now = this.now();
    if (now - peer.askedAt < this.opts.pingMs) return;
    peer.askedAt = now;
    this.send({ t: 'sync', to: id });
  }

  private sendSnapshot(): void {
    const users = [...this.local.users()];
    const g = ++this.snapGen;
    const n = Math.max(1, Math.ceil(users.length / SNAPSHOT_CHUNK));
    for (let i = 0; i < n; i++) this.send({ t: 'snap', g, i, n, u: users.slice(i * SNAPSHOT_CHUNK, (i + 1) * SNAPSHOT_CHUNK) });
  }

  private snapshotPart(peer: Peer, m: Msg & { t: 'snap' }): void {
    if (m.i === 0) peer.pending = { g: m.g, next: 0, users: new Set() };
    const p = peer.pending;
    if (!p || p.g !== m.g || p.next !== m.i) {
      peer.pending = null; // a part went missing: the next heartbeat's digest asks again
      return;
    }
    for (const u of m.u) p.users.add(u);
    p.next++;
    if (p.next < m.n) return;
    peer.pending = null;
    for (const u of [...peer.users]) if (!p.users.has(u)) this.peerPresence(peer, u, false);
    for (const u of p.users) this.peerPresence(peer, u, true);
  }

  private dropPeer(id: string): void {
    const peer = this.peers.get(id);
    if (!peer) return;
    for (const u of [...peer.users]) this.peerPresence(peer, u, false);
    this.peers.delete(id);
    this.droppedAt.set(id, peer.lastSeen);
    if (this.droppedAt.size > 1000) this.droppedAt.delete(this.droppedAt.keys().next().value as string);
  }
}
