import type { Auth } from './auth.js';
import { CursorStore, SeenSet } from './cursors.js';
import { AsyncQueue } from './emitter.js';
import { fromServer, ImError } from './errors.js';
import { LiveSocket, type LiveEvents, type LiveOptions, type WebSocketLike } from './live.js';
import type { RelationMessage, ServedItem } from './message.js';
import type { RestClient, SendResult } from './rest.js';

/** A chat message delivered to the application (each (chatId, seq) once). */
export interface IncomingMessage {
  chatId: string;
  message: ServedItem;
  /** false for muted chats and for messages recovered after a reconnect. */
  alert: boolean;
  /** Came from a resume (replay or paging) rather than a live push. */
  recovered: boolean;
}

export interface ChatResume {
  chatId: string;
  /** The cursor the resume started from (null: a chat this client had no cursor for). */
  fromSeq: number | null;
  lastSeq: number;
  /** Messages delivered by this resume for the chat (new to the client). */
  recovered: number;
  /** Pages fetched over REST because the server said `more`. */
  pages: number;
  /** True when not everything could be fetched (an error while paging); the cursor stays so the next resume continues. */
  gap: boolean;
}

/** What one reconnect recovered (centrifuge-js#325: a client must be able to tell). */
export interface ResumeReport {
  recovered: number;
  gap: boolean;
  /** The store epoch changed: the cursors were dropped and the client resynchronised (nothing to resume from). */
  epochReset: boolean;
  /** First sync of this client (no cursors yet): cursors were set from the chat list, nothing replayed. */
  initial: boolean;
  chats: ChatResume[];
  errors: ImError[];
}

/** A message this device cannot open (docs/e2ee.md section 7): reported, never dropped silently. */
export interface UndecryptableInfo {
  chatId: string;
  seq: number;
  id: string;
  reason: string;
  detail: string;
}

export interface ConnectionEvents extends LiveEvents {
  message: IncomingMessage;
  undecryptable: UndecryptableInfo;
  /** The server says this device's KeyPackages run low (`mls.keyPackagesLow`). */
  keyPackagesLow: { deviceId: string | null; available: number };
  read: { chatId: string; lastReadSeq: number };
  resumed: ResumeReport;
}

export interface ConnectionOptions extends LiveOptions {
  auth: Auth;
  rest: RestClient;
  cursors: CursorStore;
  /** Messages per REST page when the resume says `more` (default 50, the server's LIST_MAX_LIMIT default). */
  pageSize?: number;
  /**
   * Sees every message of a chat in seq order before delivery (the MLS encryptor processes handshakes and
   * opens application messages here); `false`: consumed (a handshake), not delivered to the application.
   */
  inspect?: (m: IncomingMessage) => Promise<boolean>;
}

type Frame = Record<string, unknown>;

/** A list answer announced another store epoch than the socket: the resume is abandoned and the socket reopened. */
class StoreChanged extends ImError {
  constructor() {
    super('BAD_RESPONSE', 'the store epoch changed during the resume; reconnecting');
  }
}
const CHUNK = 1000;
/** Codes that mean the chat is no longer readable: its cursor is dropped rather than retried forever. */
const LOST_ACCESS = new Set(['FORBIDDEN', 'NOT_MEMBER', 'NOT_A_GROUP', 'MESSAGE_NOT_FOUND']);

/**
 * The live `/ws` connection of the Relation ONE face. After every (re)connect it resumes each chat from
 * its persisted cursor, pages the rest over REST when the server says `more`, picks up chats that
 * appeared meanwhile from the chat list, and only then releases live pushes (sorted, de-duplicated by
 * (chatId, seq)), so nothing is skipped between sync and stream (libxmtp#2440) and no second-resolution
 * `since` can drop anything (seq cursors, not times).
 */
export class Connection extends LiveSocket<ConnectionEvents> {
  private readonly seen = new SeenSet();
  private syncing = false;
  private held: IncomingMessage[] = [];
  private refs = 0;
  private readonly waiting = new Map<string, { resolve: (f: Frame) => void; reject: (e: ImError) => void }>();
  private iterators = new Set<AsyncQueue<IncomingMessage>>();
  /** When start() was first called: every message the server received after it is delivered (issue 17). */
  private startedAt: number | null = null;

  constructor(private readonly opts: ConnectionOptions) {
    super(opts);
  }

  override start(): void {
    this.startedAt ??= Date.now();
    super.start();
  }

  /** Emits an `undecryptable` report (the encryptor calls this). */
  reportUndecryptable(u: UndecryptableInfo): void {
    this.emitEvent('undecryptable', u);
  }

  /** Emits an `error` (work the client does beside the connection failed: it is retried on the next one). */
  reportError(e: unknown): void {
    this.emitEvent('error', e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e)));
  }

  protected token(): Promise<string> { return this.opts.auth.token(); }
  protected dropToken(token: string): Promise<void> { return this.opts.auth.invalidate(token); }
  protected socketUrl(token: string): string { return `${this.opts.url}?token=${encodeURIComponent(token)}`; }
  protected onOpen(): void { /* token in the query: the server answers ready */ }
  protected ping(): void { this.ws?.send(JSON.stringify({ type: 'ping', ref: this.ref() })); }

  protected onSocketEnd(): void {
    for (const [, w] of this.waiting) w.reject(new ImError('NETWORK', 'the connection closed before the answer'));
    this.waiting.clear();
    // Held pushes are not lost: the next resume starts from the cursors, which they did not advance.
    this.held = [];
    this.syncing = false;
  }

  private ref(): string {
    return `c${++this.refs}`;
  }

  protected onData(data: unknown): void {
    if (typeof data !== 'string') throw new ImError('BAD_RESPONSE', 'binary frame on /ws');
    const f = JSON.parse(data) as Frame;
    const ref = typeof f['ref'] === 'string' ? f['ref'] : null;
    switch (f['type']) {
      case 'ready':
        void this.onReady(String(f['address'] ?? ''), typeof f['epoch'] === 'string' ? f['epoch'] : null);
        return;
      case 'message': {
        const m: IncomingMessage = { chatId: String(f['chatId']).toLowerCase(), message: f['message'] as ServedItem, alert: f['alert'] !== false, recovered: false };
        if (this.syncing) this.held.push(m);
        else this.pushLive(m);
        return;
      }
      case 'mls.keyPackagesLow':
        this.emitEvent('keyPackagesLow', { deviceId: typeof f['deviceId'] === 'string' ? f['deviceId'] : null, available: Number(f['available'] ?? 0) });
        return;
      case 'read':
        this.emitEvent('read', { chatId: String(f['chatId']).toLowerCase(), lastReadSeq: Number(f['lastReadSeq']) });
        return;
      default:
        if (ref && this.waiting.has(ref)) {
          const w = this.waiting.get(ref)!;
          this.waiting.delete(ref);
          if (f['type'] === 'error') {
            const e = f['error'] as { code?: unknown; message?: unknown } | undefined;
            w.reject(fromServer(e?.code, e?.message));
          } else w.resolve(f);
        } else if (f['type'] === 'error') {
          const e = f['error'] as { code?: unknown; message?: unknown } | undefined;
          this.emitEvent('error', fromServer(e?.code, e?.message));
        }
    }
  }

  /** One request frame, answered by the frame with the same ref. */
  private call(frame: Frame, timeoutMs = 30_000): Promise<Frame> {
    const ws = this.ws;
    if (!ws) return Promise.reject(new ImError('NETWORK', 'not connected'));
    const ref = this.ref();
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(ref);
        reject(new ImError('TIMEOUT', `${String(frame['type'])} not answered in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(ref, {
        resolve: (f) => { clearTimeout(timer); resolve(f); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      ws.send(JSON.stringify({ ...frame, ref }));
    });
  }

  /** Sends over the socket (`send` frame); the Outbox uses this when connected. */
  async sendFrame(message: RelationMessage): Promise<SendResult> {
    const f = await this.call({ type: 'send', message });
    return f['result'] as SendResult;
  }

  /**
   * A live push: delivered after the ones before it in its chat, and after whatever the cursor says is
   * missing before it. A seq gap between the cursor and a push is asked for over REST first: a push the
   * server or the network lost must not be skipped for good by the cursor moving past it (a seq the
   * viewer may not see, a hide of someone else's, is simply absent from the answer). If that cannot be
   * fetched, the socket is dropped without delivering: the next resume starts from the cursor.
   */
  private pushLive(m: IncomingMessage): void {
    const ws = this.ws;
    const chain = (this.liveChains.get(m.chatId) ?? Promise.resolve()).then(() => this.deliverLive(m, ws));
    this.liveChains.set(m.chatId, chain);
    void chain.then(() => {
      if (this.liveChains.get(m.chatId) === chain) this.liveChains.delete(m.chatId);
    });
  }

  private readonly liveChains = new Map<string, Promise<void>>();

  private async deliverLive(m: IncomingMessage, ws: WebSocketLike | null): Promise<void> {
    // The socket it came on is gone: the resume of the next one replays it (the cursor did not pass it).
    if (this.ws !== ws || ws === null) return;
    const seq = m.message.seq;
    const cursor = this.opts.cursors.get(m.chatId);
    if (typeof seq === 'number' && cursor !== undefined && seq > cursor + 1) {
      try {
        await this.fillGap(m, cursor, seq);
      } catch (e) {
        this.emitEvent('error', e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e)));
        if (this.ws === ws) this.kill(ws, 4000, 'could not fetch the messages missing before a push');
        return;
      }
      if (this.ws !== ws) return;
    }
    await this.deliver(m);
  }

  /** Delivers the chat's messages after `after` and before `before` (seq), read over REST. */
  private async fillGap(m: IncomingMessage, after: number, before: number): Promise<void> {
    const limit = this.opts.pageSize ?? 50;
    let from = after;
    for (;;) {
      const items = await this.opts.rest.list({ chatId: m.chatId, afterSeq: from, limit });
      for (const it of items) {
        if (it.seq >= before) return;
        await this.deliver({ chatId: m.chatId, message: it, alert: m.alert, recovered: true });
        from = it.seq;
      }
      if (items.length < limit) return;
    }
  }

  private async deliver(m: IncomingMessage): Promise<boolean> {
    const seq = m.message.seq;
    if (typeof seq !== 'number') return false;
    if (!this.seen.add(m.chatId, seq)) return false;
    let show = true;
    if (this.opts.inspect) {
      try {
        show = await this.opts.inspect(m);
      } catch (e) {
        // The encryptor failed (a network error while joining …): a handshake is still not a chat message.
        show = !('type' in m.message) || m.message.type !== 'MLS';
        this.emitEvent('error', e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e)));
      }
    }
    await this.opts.cursors.advance(m.chatId, seq);
    if (!show) return false;
    this.emitEvent('message', m);
    for (const q of this.iterators) q.push(m);
    return true;
  }

  private async onReady(address: string, epoch: string | null): Promise<void> {
    const ws = this.ws;
    this.syncing = true;
    this.markConnected(address, epoch);
    const report: ResumeReport = { recovered: 0, gap: false, epochReset: false, initial: false, chats: [], errors: [] };
    try {
      await this.opts.cursors.load();
      report.epochReset = await this.opts.cursors.applyEpoch(epoch);
      const byChat = new Map<string, ChatResume>();
      const cursors = this.opts.cursors.all();
      const entries = Object.entries(cursors);
      for (let i = 0; i < entries.length; i += CHUNK) {
        const chunk = Object.fromEntries(entries.slice(i, i + CHUNK));
        let answer: Frame;
        try {
          answer = await this.call({ type: 'resume', cursors: chunk }, 60_000);
        } catch (e) {
          // A refusal that retrying cannot fix (a chat one may no longer read): resume chat by chat over REST.
          if (!(e instanceof ImError) || e.temporary || this.ws !== ws) throw e;
          report.errors.push(e);
          for (const [chatId, after] of Object.entries(chunk)) {
            const cr: ChatResume = { chatId, fromSeq: after, lastSeq: after, recovered: 0, pages: 0, gap: false };
            byChat.set(chatId, cr);
            await this.page(cr, after, report);
          }
          continue;
        }
        if (this.ws !== ws) return;
        if (typeof answer['epoch'] === 'string' && (await this.opts.cursors.applyEpoch(answer['epoch']))) report.epochReset = true;
        const chats = (answer['chats'] ?? {}) as Record<string, { lastSeq: number; more: boolean }>;
        for (const [chatId, r] of Object.entries(chats)) {
          const id = chatId.toLowerCase();
          const cr: ChatResume = { chatId: id, fromSeq: cursors[id] ?? cursors[chatId] ?? null, lastSeq: r.lastSeq, recovered: 0, pages: 0, gap: false };
          byChat.set(id, cr);
          // Replayed frames arrived before `resumed` and sit in `held`.
          if (r.more) await this.page(cr, r.lastSeq, report);
        }
      }
      // Chats this client has no cursor for (new since the last run, or everything on a first sync).
      const initial = !this.opts.cursors.initialized;
      report.initial = initial;
      for (const chat of await this.allChats()) {
        const id = chat.id.toLowerCase();
        if (this.opts.cursors.get(id) !== undefined || byChat.has(id)) continue;
        if (initial) {
          // The chat list counts as history, except what the server received after start() was called:
          // those messages are delivered (issue 17: a message sent right after start() was lost).
          await this.opts.cursors.advance(id, chat.lastSeq);
          await this.sinceStart(id, chat.lastSeq, report);
          continue;
        }
        const cr: ChatResume = { chatId: id, fromSeq: null, lastSeq: 0, recovered: 0, pages: 0, gap: false };
        byChat.set(id, cr);
        await this.page(cr, 0, report);
      }
      await this.opts.cursors.markInitialized();
      if (this.ws !== ws) return;
      // Release: replays, pages and live pushes held meanwhile, per chat in seq order, each once.
      const held = this.held.sort((a, b) => (a.chatId < b.chatId ? -1 : a.chatId > b.chatId ? 1 : a.message.seq - b.message.seq));
      this.held = [];
      this.syncing = false;
      for (const m of held) {
        const cr = byChat.get(m.chatId);
        const from = cr?.fromSeq ?? (initial ? this.opts.cursors.get(m.chatId) ?? -1 : -1);
        const recovered = m.recovered || (cr !== undefined && m.message.seq <= cr.lastSeq);
        // A live push during the first sync is new by definition (it arrived after the socket was ready).
        if (m.message.seq <= from && !m.recovered && !(initial && cr === undefined)) continue;
        const fresh = await this.deliver(recovered ? { ...m, alert: false, recovered: true } : m);
        if (fresh && recovered && cr) {
          cr.recovered++;
          report.recovered++;
        }
      }
      report.chats = [...byChat.values()];
      report.gap = report.chats.some((c) => c.gap);
      this.markHealthy();
      this.emitEvent('resumed', report);
    } catch (e) {
      // The resume could not finish (socket gone, server error): drop this socket; the next one resumes from the cursors.
      this.syncing = false;
      this.held = [];
      if (this.ws === ws && ws) this.kill(ws, 4000, 'resume failed');
      const err = e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e));
      this.emitEvent('error', err);
    }
  }

  /** Pages `GET /message/list?chatId&afterSeq` until the chat is exhausted; pages go into `held` as recovered. */
  private async page(cr: ChatResume, afterSeq: number, report: ResumeReport): Promise<void> {
    const limit = this.opts.pageSize ?? 50;
    let after = afterSeq;
    try {
      for (;;) {
        const items = await this.opts.rest.list({ chatId: cr.chatId, afterSeq: after, limit });
        const epoch = this.opts.rest.epoch;
        if (epoch !== null && this.opts.cursors.epoch !== null && epoch !== this.opts.cursors.epoch) {
          // The store changed under this resume (a rebuilt proxy): these seqs mean something else. Start over.
          throw new StoreChanged();
        }
        cr.pages++;
        for (const it of items) this.held.push({ chatId: cr.chatId, message: it, alert: false, recovered: true });
        const last = items[items.length - 1];
        if (last) {
          after = last.seq;
          cr.lastSeq = Math.max(cr.lastSeq, last.seq);
        }
        if (items.length < limit) return;
      }
    } catch (e) {
      if (e instanceof StoreChanged) throw e;
      const err = e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e));
      report.errors.push(err);
      if (!err.temporary && LOST_ACCESS.has(err.code)) await this.opts.cursors.remove(cr.chatId);
      else cr.gap = true;
    }
  }

  /** First sync: the chat's recent messages the server received after start() go into `held` as live. */
  private async sinceStart(chatId: string, lastSeq: number, report: ResumeReport): Promise<void> {
    const since = this.startedAt;
    if (since === null || lastSeq <= 0) return;
    const limit = this.opts.pageSize ?? 50;
    try {
      const items = await this.opts.rest.list({ chatId, afterSeq: Math.max(0, lastSeq - limit), limit });
      for (const it of items) {
        if (it.seq <= lastSeq && typeof it.receivedAt === 'number' && it.receivedAt >= since) this.held.push({ chatId, message: it, alert: true, recovered: false });
      }
    } catch (e) {
      report.errors.push(e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e)));
    }
  }

  private async allChats(): Promise<{ id: string; lastSeq: number }[]> {
    const out: { id: string; lastSeq: number }[] = [];
    for (let offset = 0; offset < 10_000; offset += 50) {
      const page = await this.opts.rest.chats({ limit: 50, offset });
      out.push(...page);
      if (page.length < 50) break;
    }
    return out;
  }

  /** Every delivered message, as an async iterator (ends on close()). */
  messages(): AsyncIterableIterator<IncomingMessage> {
    const q = new AsyncQueue<IncomingMessage>();
    this.iterators.add(q);
    const ret = q.return.bind(q);
    q.return = () => {
      this.iterators.delete(q);
      return ret();
    };
    return q;
  }

  override close(): void {
    super.close();
    for (const q of this.iterators) q.close();
    this.iterators.clear();
  }
}
