import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { LiveSocket } from '../ws/live-socket.js';
import { preparedFrame } from '../ws/prepared.js';
import { AppError, toAppError } from '../../errors/app-error.js';
import { ERROR_CATALOGUE } from '../../errors/catalogue.js';
import type { Session } from '../../roles/auth/auth-service.js';
import type { Logger } from '../../log/logger.js';
import { requestId } from '../../log/request-id.js';
import type { SocketMeter } from '../../metrics/metrics.js';
import { decodeEnvelope, EnvelopeError, encodeEnvelope, mp, optArr, reqStr, type MpMap, type MpValue } from '../../protocol/msgpack/codec.js';
import type { MsgpackLimits } from '../../protocol/msgpack/scan.js';
import type { Hub, PushItem, Subscriber } from '../../bus/hub.js';
import type { SeaKing } from '../../roles/seaking/seaking.js';
import { BEFORE_AUTH, Cmd } from '../../roles/im/commands.js';
import type { ImWire } from '../../roles/im/events.js';
import type { ImHandlers, ImSession } from '../../roles/im/handlers.js';
import type { ImService } from '../../roles/im/im-service.js';
import type { AccessCache } from './access-cache.js';
import { StaggeredHeartbeat } from '../ws/heartbeat.js';
import { PresenceWatch, type PresenceWatcher } from './presence-watch.js';
import { requestAddress } from '../edge/address.js';
import type { RateLimits } from '../edge/rate-limits.js';

export interface ImGatewayOptions {
  maxFrameBytes: number;
  limits: MsgpackLimits;
  heartbeatMs: number;
  authTimeoutMs: number;
  maxBufferedBytes: number;
  maxFramesPerSec: number;
  resumeMaxPerChat: number;
  /** Requests of one connection being processed at once; beyond it a request is answered OVERLOADED. */
  maxInflight: number;
  /** Users one connection may watch for presence pushes (PRESENCE with watch); default 1000. */
  maxWatchedUsers?: number;
  slowConsumerGraceMs?: number;
  onAuthenticated?: (socket: Duplex | undefined) => void;
  /** Told of server-side closes (metrics). */
  meter?: SocketMeter;
}

export interface ImGatewayDeps {
  seaking: SeaKing;
  access: AccessCache;
  handlers: ImHandlers;
  im: ImService;
  wire: ImWire;
  hub: Hub;
  log: Logger;
  /** The store's epoch (Store.epoch), known before the server listens; announced in AUTH and RESUME answers. */
  epoch: () => string;
  /** Send limits per client address and per user (risk control). */
  limits?: RateLimits;
  /** The operator's ban list. */
  bans?: { isBanned(address: string): boolean };
}

const MAX_CURSORS = 1000;
const CID = /^(0x[0-9a-f]{40}|dm:0x[0-9a-f]{40}:0x[0-9a-f]{40})$/;

/** One /im connection: binary MsgPack frames in, one answer per request, pushes out; lifecycle rules are LiveSocket's. */
class ImConnection extends LiveSocket implements Subscriber, ImSession, PresenceWatcher {
  private authStarted = false;
  private inflight = 0;
  /** This connection's logger (`conn`, then `user` once authenticated). */
  private log: Logger;

  constructor(ws: WebSocket, private readonly gw: ImGateway, id: string) {
    super(ws, gw.opts, true, id);
    this.log = gw.deps.log.child({ conn: id });
    this.log.debug('connection opened');
  }

  protected onFrame(data: RawData, isBinary: boolean): void {
    if (!isBinary) {
      this.answerError(undefined, new AppError('BAD_MSGPACK', 'text frames are refused: /im takes binary MsgPack frames'));
      return;
    }
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    let env;
    try {
      env = decodeEnvelope(buf, this.gw.opts.limits);
    } catch (e) {
      this.answerError(e instanceof EnvelopeError ? e.seq : undefined, toAppError(e));
      return;
    }
    const { cmd, seq, body } = env;
    if (this.inflight >= this.gw.opts.maxInflight) {
      this.answerError(seq, new AppError('OVERLOADED', 'too many requests of this connection under way'));
      return;
    }
    this.inflight++;
    this.handle(cmd, body, seq)
      .then((result) => { if (result) this.send(encodeEnvelope(cmd, seq, result)); })
      .catch((e: unknown) => this.answerError(seq, toAppError(e)))
      .finally(() => { this.inflight--; });
  }

  /** Returns the answer body, or null when the answer was already sent (resume). */
  private async handle(cmd: number, body: MpMap, seq: number | undefined): Promise<MpMap | null> {
    if (!this.session) {
      if (!BEFORE_AUTH.has(cmd)) throw new AppError('UNAUTHENTICATED', 'send auth (cmd 1) first');
      if (cmd === Cmd.PING) return mp({ 0: Date.now() });
      if (this.authStarted) throw new AppError('UNAUTHENTICATED', 'an auth is already under way');
      this.authStarted = true;
      return this.authenticate(reqStr(body, 0, 'body', 512));
    }
    if (cmd === Cmd.AUTH) throw new AppError('FORBIDDEN', 'this connection is authenticated already');
    if (cmd === Cmd.RESUME) {
      await this.resume(body, seq);
      return null;
    }
    if (cmd === Cmd.SEND) {
      const { limits, bans } = this.gw.deps;
      if (bans?.isBanned(this.user)) throw new AppError('BANNED');
      if (limits) {
        await limits.take('send', this.address, this.address);
        await limits.take('userSend', this.user, this.address);
      }
    }
    return this.gw.deps.handlers.run(cmd, this, body);
  }

  private async authenticate(token: string): Promise<MpMap> {
    let s: Session;
    try {
      s = await this.gw.deps.seaking.authenticate(token);
    } catch (e) {
      const err = toAppError(e);
      // The answer goes out first; the close follows once it is written.
      setImmediate(() => this.close(err.code === 'TOKEN_EXPIRED' ? 'TOKEN_EXPIRED' : err.code === 'BANNED' ? 'BANNED' : 'UNAUTHENTICATED'));
      throw err;
    }
    if (this.closed) throw new AppError('UNAUTHENTICATED');
    this.establish(s);
    this.log = this.log.child({ user: s.address });
    this.log.debug('authenticated');
    this.gw.deps.hub.add(this);
    return mp({ 0: s.address, 1: s.expiresAt, 2: this.gw.deps.epoch() });
  }

  /**
   * Replays every conversation's events after the client's mid as PUSH frames, answers with the last mid
   * replayed per conversation, then releases the live pushes held meanwhile (dropping those replayed).
   */
  private async resume(body: MpMap, seq: number | undefined): Promise<void> {
    const cursors = (optArr(body, 0, 'body', MAX_CURSORS) ?? []).map((c, i): [string, number] => {
      const [cid, after] = Array.isArray(c) ? c : [];
      if (typeof cid !== 'string' || !CID.test(cid) || typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) {
        throw new AppError('INVALID_FIELD', `body.0[${i}] must be [cid, afterMid]`, { field: 'body.0' });
      }
      return [cid, after];
    });
    if (this.resuming) throw new AppError('INVALID_FIELD', 'a resume is already running');
    for (const [cid] of cursors) await this.gw.deps.access.get(this.user, cid);
    this.holdPushes();
    const replayed = new Map<string, number>();
    const result: MpValue[] = [];
    try {
      for (const [cid, after] of cursors) {
        const limit = this.gw.opts.resumeMaxPerChat;
        const events = await this.gw.deps.im.query(this.user, { cid, fromSeq: after + 1, limit: limit + 1 });
        let last = after;
        for (const e of events.slice(0, limit)) {
          this.send(encodeEnvelope(Cmd.PUSH, undefined, await this.gw.deps.wire.encode(e)));
          last = e.seq;
        }
        replayed.set(cid, last);
        result.push([cid, last, events.length > limit]);
      }
      this.send(encodeEnvelope(Cmd.RESUME, seq, mp({ 0: result, 1: this.gw.deps.epoch() })));
    } finally {
      this.releasePushes(replayed);
    }
  }

  deliver(item: PushItem): void {
    if (item.read) {
      this.push(encodeEnvelope(Cmd.READ_PUSH, undefined, mp({ 0: item.read.cid, 1: item.read.seq })));
      return;
    }
    const e = item.event;
    if (!e || (e.onlyFor !== null && e.onlyFor !== this.user)) return;
    const payload = this.gw.deps.wire.pushFrame(item as PushItem & { event: typeof e });
    this.pushPrepared(payload, (item.imWire ??= preparedFrame(payload, true)), item.cid, item.seq, item.written, item.bulk === true);
  }

  notifyPresence(user: string, online: boolean): void {
    this.push(encodeEnvelope(Cmd.PRESENCE_PUSH, undefined, mp({ 0: user, 1: online, 2: Date.now() })));
  }

  watchPresence(users: readonly string[], on: boolean): void {
    if (this.closed) return;
    if (on) this.gw.presence.watch(this, users);
    else this.gw.presence.unwatch(this, users);
  }

  private answerError(seq: number | undefined, err: AppError): void {
    if (err.code === 'INTERNAL') this.log.error({ err }, 'im request failed');
    const c = ERROR_CATALOGUE[err.code];
    const retryAfterMs = err.retryAfterMs;
    const body = retryAfterMs === undefined ? { 0: c.num, 1: err.code, 2: err.message, 3: c.temporary } : { 0: c.num, 1: err.code, 2: err.message, 3: c.temporary, 4: retryAfterMs };
    this.send(encodeEnvelope(Cmd.ERROR, seq, mp(body)));
  }

  protected unregister(): void {
    this.log.debug('connection closed');
    this.gw.presence.unwatchAll(this);
    this.gw.deps.hub.remove(this);
    this.gw.connections.delete(this);
  }
}

/**
 * The Gateway role for the MsgPack face at /im (seed section 8): connections, token auth, delivery of a
 * conversation's events to the online devices of its participants (the hub routes user -> devices),
 * short-TTL caches of access decisions; no durable state of its own.
 */
export class ImGateway {
  readonly wss: WebSocketServer;
  readonly connections = new Set<ImConnection>();
  /** Presence watches of this gateway's connections; told by the hub when a user comes online or goes offline. */
  readonly presence: PresenceWatch;
  private readonly heartbeat: StaggeredHeartbeat<ImConnection>;

  constructor(readonly deps: ImGatewayDeps, readonly opts: ImGatewayOptions) {
    this.presence = new PresenceWatch(opts.maxWatchedUsers ?? 1000);
    deps.hub.onPresence((user, online) => this.presence.changed(user, online));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxFrameBytes, perMessageDeflate: false,
      // ws's own cut of a peer that does not answer a close (ws >= 8.18; not in @types/ws yet): no earlier than the slow-consumer grace.
      ...({ closeTimeout: Math.max(opts.slowConsumerGraceMs ?? 0, 2000) } as object) });
    // Each connection is pinged once per interval, in slices over the interval (not all in one callback).
    this.heartbeat = new StaggeredHeartbeat(this.connections, opts.heartbeatMs, (c) => c.heartbeat());
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new ImConnection(ws, this, requestId(req.headers['x-request-id']));
      conn.address = requestAddress(req);
      this.connections.add(conn);
    });
  }

  close(): void {
    this.heartbeat.stop();
    // Sockets already closing (a slow consumer in its grace, a peer that has not answered a close) do
    // not hold the shutdown up; the live ones get 1001.
    for (const w of this.wss.clients) if (w.readyState === w.CLOSING) w.terminate();
    for (const c of [...this.connections]) c.close('GOING_AWAY');
    this.wss.close();
  }
}
