import type { IncomingMessage } from 'node:http';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { AppError, toAppError } from '../../errors/app-error.js';
import type { AuthService } from '../../roles/auth/auth-service.js';
import { LiveSocket } from './live-socket.js';
import { preparedFrame } from './prepared.js';
import type { ChatService } from '../../roles/chat/chat-service.js';
import type { MessageService } from '../../roles/chat/message-service.js';
import { chatIdFor, isDmCid } from '../../roles/chat/ids.js';
import { messageFrame } from '../../roles/chat/render.js';
import type { Logger } from '../../log/logger.js';
import { requestId } from '../../log/request-id.js';
import type { SendMeter, SocketMeter } from '../../metrics/metrics.js';
import type { Hub, PushItem, Subscriber } from '../../bus/hub.js';
import { sendAnswer } from '../http/fast-send.js';
import { CHAT_ID } from '../http/query.js';
import { requestAddress } from '../edge/address.js';
import type { RateLimits } from '../edge/rate-limits.js';
import { Face } from '../../store/port.js';
import { StaggeredHeartbeat } from './heartbeat.js';

export interface JsonWsOptions {
  maxFrameBytes: number;
  heartbeatMs: number;
  authTimeoutMs: number;
  maxBufferedBytes: number;
  maxFramesPerSec: number;
  resumeMaxPerChat: number;
  slowConsumerGraceMs?: number;
  onAuthenticated?: (socket: import('node:stream').Duplex | undefined) => void;
  /** Told of server-side closes (metrics). */
  meter?: SocketMeter;
}

export interface JsonWsDeps {
  auth: AuthService;
  chats: ChatService;
  messages: MessageService;
  hub: Hub;
  log: Logger;
  /** The store's epoch (Store.epoch), known before the server listens; announced in `ready` and `resumed`. */
  epoch: () => string;
  /** Per-address send limit of the `send` frame (the per-user one is MessageService's). */
  limits?: RateLimits;
  /** Counts `send` frames accepted and refused (metrics). */
  sends?: SendMeter;
}

const MAX_CURSORS = 1000;
const MAX_REF = 64;

/** One /ws connection: JSON frames in, pushes out; the lifecycle rules are LiveSocket's. */
class JsonConnection extends LiveSocket implements Subscriber {
  /** Set once a token was presented (query or first frame); a second auth frame is refused. */
  authStarted = false;
  /** This connection's logger (`conn`, then `user` once authenticated). */
  private log: Logger;

  constructor(ws: WebSocket, private readonly gw: JsonWsGateway, id: string) {
    super(ws, gw.opts, false, id);
    this.log = gw.deps.log.child({ conn: id });
    this.log.debug('connection opened');
  }

  async authenticate(token: string | undefined): Promise<void> {
    try {
      const s = await this.gw.deps.auth.authenticate(token);
      if (this.closed) return;
      this.establish(s);
      this.log = this.log.child({ user: s.address });
      this.log.debug('authenticated');
      this.gw.deps.hub.add(this);
      this.send(JSON.stringify({ type: 'ready', address: s.address, expiresAt: s.expiresAt, epoch: this.gw.deps.epoch() }));
    } catch (e) {
      const err = toAppError(e);
      this.sendError(undefined, err);
      this.close(err.code === 'TOKEN_EXPIRED' ? 'TOKEN_EXPIRED' : err.code === 'BANNED' ? 'BANNED' : 'UNAUTHENTICATED');
    }
  }

  protected onFrame(data: RawData, isBinary: boolean): void {
    if (isBinary) {
      this.close('BAD_FRAME');
      return;
    }
    let frame: unknown;
    try {
      frame = JSON.parse(data.toString());
    } catch {
      this.sendError(undefined, new AppError('BAD_JSON'));
      return;
    }
    this.handle(frame).catch((e: unknown) => this.sendError(refOf(frame), toAppError(e)));
  }

  private async handle(frame: unknown): Promise<void> {
    if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) throw new AppError('INVALID_FIELD', 'a frame is a JSON object');
    const f = frame as Record<string, unknown>;
    const ref = refOf(f);
    if (!this.session) {
      if (f['type'] !== 'auth' || this.authStarted) {
        this.sendError(ref, new AppError('UNAUTHENTICATED', 'send {"type":"auth","token":…} first'));
        this.close('UNAUTHENTICATED');
        return;
      }
      this.authStarted = true;
      await this.authenticate(typeof f['token'] === 'string' ? f['token'] : undefined);
      return;
    }
    switch (f['type']) {
      case 'ping':
        this.send(JSON.stringify({ type: 'pong', ref: ref ?? null, time: Date.now() }));
        return;
      case 'send': {
        let r;
        try {
          await this.gw.deps.limits?.take('send', this.address, this.address);
          r = await this.gw.deps.messages.submit(f['message'], { clientAddress: this.address });
        } catch (e) {
          this.gw.sends?.refused(toAppError(e).code);
          throw e;
        }
        this.gw.sends?.accepted();
        this.send(`{"type":"sent","ref":${JSON.stringify(ref ?? null)},"result":${sendAnswer(r)}}`);
        return;
      }
      case 'resume':
        await this.resume(f['cursors'], ref);
        return;
      default:
        throw new AppError('INVALID_FIELD', 'unknown frame type', { field: 'type' });
    }
  }

  /** Replays every chat's messages after the client's cursor, then releases the live pushes held meanwhile. */
  private async resume(cursors: unknown, ref: string | undefined): Promise<void> {
    if (typeof cursors !== 'object' || cursors === null || Array.isArray(cursors)) throw new AppError('INVALID_FIELD', 'cursors must map chatId to afterSeq', { field: 'cursors' });
    const entries = Object.entries(cursors);
    if (entries.length > MAX_CURSORS) throw new AppError('INVALID_FIELD', `at most ${MAX_CURSORS} cursors`, { field: 'cursors' });
    for (const [chatId, seq] of entries) {
      if (!CHAT_ID.test(chatId) || typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq < 0) {
        throw new AppError('INVALID_FIELD', 'cursors must map chatId to a non-negative integer', { field: 'cursors' });
      }
    }
    if (this.resuming) throw new AppError('INVALID_FIELD', 'a resume is already running');
    // Every chat is checked before anything is replayed: a refused resume answers one error, not a
    // `resumed` frame followed by an error (as /im checks access first).
    const cids = new Map<string, string>();
    for (const [chatId] of entries) cids.set(chatId, (await this.gw.deps.chats.resolve(this.user, chatId)).cid);
    this.holdPushes();
    const replayed = new Map<string, number>();
    const chats: Record<string, { lastSeq: number; more: boolean }> = {};
    try {
      for (const [chatId, afterSeq] of entries as [string, number][]) {
        const cid = cids.get(chatId) as string;
        const limit = this.gw.opts.resumeMaxPerChat;
        const events = await this.gw.deps.chats.list(this.user, { chatId, afterSeq, limit: limit + 1, offset: 0 });
        const more = events.length > limit;
        let last = afterSeq;
        for (const e of events.slice(0, limit)) {
          this.send(messageFrame(chatId, e, true));
          last = e.seq;
        }
        replayed.set(cid, last);
        chats[chatId] = { lastSeq: last, more };
      }
    } finally {
      this.send(JSON.stringify({ type: 'resumed', ref: ref ?? null, chats, epoch: this.gw.deps.epoch() }));
      this.releasePushes(replayed);
    }
  }

  /**
   * The JSON frame of a push: the ready frame, or a chat message of the other face rendered for this
   * user (chat messages only: control events of the MsgPack face, such as revokes, are not JSON pushes).
   */
  private frameOf(item: PushItem): string | null {
    if (item.frame !== undefined) return item.frame;
    const e = item.event;
    // A signed message of this face (a hide too: it goes to the hider alone), or a chat message of the other.
    if (!e || (e.onlyFor !== null && e.onlyFor !== this.user) || (!e.counts && e.face !== Face.RELATION_ONE)) return null;
    return messageFrame(isDmCid(e.cid) ? chatIdFor(e.cid, this.user) : e.cid, e, !(item.alert ?? true));
  }

  deliver(item: PushItem): void {
    if (item.frame !== undefined) {
      // The same frame for every recipient (a group message): its bytes and its WebSocket frame are built once.
      const bytes = (item.frameBytes ??= Buffer.from(item.frame, 'utf8'));
      this.pushPrepared(bytes, (item.frameWire ??= preparedFrame(bytes, false)), item.cid, item.seq, item.written, item.bulk === true);
      return;
    }
    const frame = this.frameOf(item);
    if (frame !== null) this.push(frame, item.cid, item.seq);
  }

  /** An error frame; `ref` is null when the frame had none (or none usable): the key is always there. */
  private sendError(ref: string | undefined, err: AppError): void {
    if (err.code === 'INTERNAL') this.log.error({ err }, 'ws frame failed');
    this.send(JSON.stringify({ type: 'error', ref: ref ?? null, error: err.toJSON() }));
  }

  protected unregister(): void {
    this.log.debug('connection closed');
    this.gw.deps.hub.remove(this);
    this.gw.connections.delete(this);
  }
}

function refOf(f: unknown): string | undefined {
  if (typeof f !== 'object' || f === null) return undefined;
  const ref = (f as Record<string, unknown>)['ref'];
  return typeof ref === 'string' && ref.length <= MAX_REF ? ref : undefined;
}

/** The JSON WebSocket push face at /ws (SPEC section 5). */
export class JsonWsGateway {
  readonly wss: WebSocketServer;
  readonly connections = new Set<JsonConnection>();
  private readonly heartbeat: StaggeredHeartbeat<JsonConnection>;

  get sends(): SendMeter | undefined {
    return this.deps.sends;
  }

  constructor(readonly deps: JsonWsDeps, readonly opts: JsonWsOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxFrameBytes, perMessageDeflate: false,
      // ws's own cut of a peer that does not answer a close (ws >= 8.18; not in @types/ws yet): no earlier than the slow-consumer grace.
      ...({ closeTimeout: Math.max(opts.slowConsumerGraceMs ?? 0, 2000) } as object) });
    // Each connection is pinged once per interval, in slices over the interval (not all in one callback).
    this.heartbeat = new StaggeredHeartbeat(this.connections, opts.heartbeatMs, (c) => c.heartbeat());
  }

  handleUpgrade(req: IncomingMessage, socket: import('node:stream').Duplex, head: Buffer): void {
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const conn = new JsonConnection(ws, this, requestId(req.headers['x-request-id']));
      conn.address = requestAddress(req);
      this.connections.add(conn);
      let token: string | null = null;
      try {
        token = new URL(req.url ?? '/', 'http://x').searchParams.get('token');
      } catch {
        // an unreadable URL carries no token: the client may still send an auth frame
      }
      if (token) {
        conn.authStarted = true;
        void conn.authenticate(token);
      }
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
