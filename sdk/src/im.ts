import { sha256 } from '@noble/hashes/sha2.js';
import { Packr, Unpackr } from 'msgpackr';
import { bytesToHex } from './hex.js';
import type { Auth } from './auth.js';
import { CursorStore, SeenSet } from './cursors.js';
import { AsyncQueue } from './emitter.js';
import { fromServer, ImError } from './errors.js';
import type { FetchLike } from './http.js';
import { LiveSocket, type LiveEvents, type LiveOptions, type WebSocketLike } from './live.js';

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });

/** Command numbers of the /im face (docs/protocol-im.md). */
export const Cmd = { ERROR: 0, AUTH: 1, PING: 2, SEND: 3, PUSH: 4, ACK: 5, RESUME: 6, QUERY: 7, PRESENCE: 8, PRESIGN: 9, FRIENDS: 10, GROUPS: 11, MEMBERS: 12, ROLES: 13, SET_ROLE: 14, READ_PUSH: 15, PRESENCE_PUSH: 16 } as const;
export const Kind = { TEXT: 1, FILE: 3, REVOKE: 5, RELATION_ONE: 64 } as const;

/** An /im event in plain form (the wire's integer keys named). */
export interface ImEvent {
  cid: string;
  kind: number;
  mid: number;
  /** Seconds. */
  t: number;
  flags: number;
  tags: [number, number][];
  data: Map<number, unknown>;
  sender: string;
  revokedBy?: number;
  /** Kind 1: the text. */
  text?: string;
  /** Kind 64: the Relation ONE message as served on the REST face. */
  relationMessage?: Record<string, unknown>;
}

export interface ImIncoming { event: ImEvent; recovered: boolean }
export interface ImResumeReport { recovered: number; gap: boolean; epochReset: boolean; chats: { cid: string; fromMid: number; lastMid: number; recovered: number; pages: number; gap: boolean }[]; errors: ImError[] }

export interface ImEvents extends LiveEvents {
  event: ImIncoming;
  read: { cid: string; marker: number };
  presence: { address: string; online: boolean; time: number };
  resumed: ImResumeReport;
}

export interface ImOptions extends LiveOptions {
  auth: Auth;
  cursors: CursorStore;
  fetch?: FetchLike;
  requestTimeoutMs?: number;
}

type M = Map<number, unknown>;

function toMap(o: Record<number, unknown>): M {
  const out: M = new Map();
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out.set(Number(k), v);
  return out;
}

export function decodeEvent(b: M): ImEvent {
  const ext = (b.get(15) as M | undefined) ?? new Map();
  const data = (b.get(7) as M | undefined) ?? new Map();
  const kind = Number(b.get(2));
  const ev: ImEvent = {
    cid: String(b.get(1)), kind, mid: Number(b.get(3)), t: Number(b.get(4)), flags: Number(b.get(5) ?? 0),
    tags: ((b.get(6) as [number, number][] | undefined) ?? []), data, sender: String(ext.get(0) ?? ''),
  };
  if (ext.get(1) !== undefined) ev.revokedBy = Number(ext.get(1));
  if (kind === Kind.TEXT && typeof data.get(0) === 'string') ev.text = data.get(0) as string;
  if (kind === Kind.RELATION_ONE && typeof data.get(0) === 'string') {
    try { ev.relationMessage = JSON.parse(data.get(0) as string) as Record<string, unknown>; } catch { /* left undefined */ }
  }
  return ev;
}

/** The direct-chat cid of two addresses (SPEC section 6). */
export function dmCid(a: string, b: string): string {
  const [x, y] = [a.toLowerCase(), b.toLowerCase()].sort();
  return `dm:${x}:${y}`;
}

/**
 * The MsgPack face `/im` with the same shape as `Connection`: states, backoff, heartbeat (PING), per-cid
 * cursors resumed after every reconnect (QUERY pages when RESUME says `more`), de-dup by (cid, mid), a
 * resume report, events and an async iterator; plus send, query, revoke, ack, presence and files.
 *
 * Every SEND carries a fresh client message id (body key 9, docs/protocol-im.md): a send whose answer
 * was lost (NETWORK, TIMEOUT) is resent once with the same id when the connection is back, and the
 * server answers a resend with the first one's mid, storing nothing twice.
 */
/** A random client message id (128 bits, hex): unique enough that two sends never share one. */
function clientMessageId(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

export class ImConnection extends LiveSocket<ImEvents> {
  private nextSeq = 1;
  private readonly waiting = new Map<number, { resolve: (b: M) => void; reject: (e: ImError) => void }>();
  private readonly seen = new SeenSet();
  private syncing = false;
  private held: ImIncoming[] = [];
  private iterators = new Set<AsyncQueue<ImIncoming>>();

  constructor(private readonly opts: ImOptions) {
    super(opts);
  }

  protected token(): Promise<string> { return this.opts.auth.token(); }
  protected dropToken(t: string): Promise<void> { return this.opts.auth.invalidate(t); }
  protected socketUrl(): string { return this.opts.url; }
  protected ping(): void { void this.request(Cmd.PING, {}).catch(() => undefined); }

  protected onOpen(token: string): void {
    const ws = this.ws;
    this.request(Cmd.AUTH, { 0: token }).then((b) => {
      if (this.ws !== ws) return;
      void this.onReady(String(b.get(0) ?? ''), typeof b.get(2) === 'string' ? (b.get(2) as string) : null);
    }, () => { /* the server closes with 4001/4002 after a failed AUTH */ });
  }

  protected onSocketEnd(): void {
    for (const [, w] of this.waiting) w.reject(new ImError('NETWORK', 'the connection closed before the answer'));
    this.waiting.clear();
    this.held = [];
    this.syncing = false;
  }

  protected onData(data: unknown): void {
    if (!(data instanceof ArrayBuffer) && !(data instanceof Uint8Array)) throw new ImError('BAD_RESPONSE', 'text frame on /im');
    const env = unpackr.unpack(data instanceof ArrayBuffer ? new Uint8Array(data) : data) as M;
    const cmd = Number(env.get(1));
    const seq = env.get(2) as number | undefined;
    const body = (env.get(4) as M | undefined) ?? new Map();
    if (cmd === Cmd.PUSH) {
      const inc: ImIncoming = { event: decodeEvent(body), recovered: false };
      if (this.syncing) this.held.push(inc);
      else this.pushLive(inc);
      return;
    }
    if (cmd === Cmd.READ_PUSH) { this.emitEvent('read', { cid: String(body.get(0)), marker: Number(body.get(1)) }); return; }
    if (cmd === Cmd.PRESENCE_PUSH) { this.emitEvent('presence', { address: String(body.get(0)), online: body.get(1) === true, time: Number(body.get(2)) }); return; }
    const w = seq !== undefined ? this.waiting.get(seq) : undefined;
    if (!w) {
      if (cmd === Cmd.ERROR) this.emitEvent('error', errorOf(body));
      return;
    }
    this.waiting.delete(seq as number);
    if (cmd === Cmd.ERROR) w.reject(errorOf(body));
    else w.resolve(body);
  }

  /** One request; resolves with the result body, rejects with the error's ImError. */
  request(cmd: number, body: Record<number, unknown> | M): Promise<M> {
    const ws = this.ws;
    if (!ws) return Promise.reject(new ImError('NETWORK', 'not connected'));
    const seq = this.nextSeq++;
    const timeoutMs = this.opts.requestTimeoutMs ?? 30_000;
    return new Promise<M>((resolve, reject) => {
      const timer = setTimeout(() => { this.waiting.delete(seq); reject(new ImError('TIMEOUT', `cmd ${cmd} not answered in ${timeoutMs} ms`)); }, timeoutMs);
      this.waiting.set(seq, { resolve: (b) => { clearTimeout(timer); resolve(b); }, reject: (e) => { clearTimeout(timer); reject(e); } });
      ws.send(packr.pack(toMap({ 0: 1, 1: cmd, 2: seq, 4: body instanceof Map ? body : toMap(body) })));
    });
  }

  private readonly liveChains = new Map<string, Promise<void>>();

  /**
   * A live PUSH: delivered after the ones before it in its conversation, and after whatever the cursor
   * says is missing before it (QUERY from the cursor): a push lost on the way is late, never skipped
   * for good by the cursor moving past it. If that QUERY fails, the socket is dropped without
   * delivering; the next RESUME starts from the unchanged cursor. (docs/sdk.md)
   */
  private pushLive(inc: ImIncoming): void {
    const ws = this.ws;
    const cid = inc.event.cid;
    const chain = (this.liveChains.get(cid) ?? Promise.resolve()).then(() => this.deliverLive(inc, ws));
    this.liveChains.set(cid, chain);
    void chain.then(() => {
      if (this.liveChains.get(cid) === chain) this.liveChains.delete(cid);
    });
  }

  private async deliverLive(inc: ImIncoming, ws: WebSocketLike | null): Promise<void> {
    if (this.ws !== ws || ws === null) return;
    const { cid, mid } = inc.event;
    const cursor = this.opts.cursors.get(cid);
    if (cursor !== undefined && mid > cursor + 1) {
      try {
        let from = cursor + 1;
        for (;;) {
          const page = await this.query({ cid, fromMid: from, toMid: mid - 1, limit: 50 });
          for (const ev of page.events) if (ev.mid < mid) this.deliver({ event: ev, recovered: true });
          const last = page.events[page.events.length - 1];
          if (!page.more || !last || last.mid >= mid - 1) break;
          from = last.mid + 1;
        }
      } catch (e) {
        this.emitEvent('error', e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e)));
        if (this.ws === ws) this.kill(ws, 4000, 'could not fetch the events missing before a push');
        return;
      }
      if (this.ws !== ws) return;
    }
    this.deliver(inc);
  }

  private deliver(inc: ImIncoming): boolean {
    const ev = inc.event;
    if (!this.seen.add(ev.cid, ev.mid)) return false;
    // A storage adapter that fails (a full localStorage) is reported as an ImError, never left unhandled.
    this.opts.cursors.advance(ev.cid, ev.mid).catch((e: unknown) => this.emitEvent('error', e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e))));
    this.emitEvent('event', inc);
    for (const q of this.iterators) q.push(inc);
    return true;
  }

  private async onReady(address: string, epoch: string | null): Promise<void> {
    const ws = this.ws;
    this.syncing = true;
    this.markConnected(address, epoch);
    const report: ImResumeReport = { recovered: 0, gap: false, epochReset: false, chats: [], errors: [] };
    try {
      await this.opts.cursors.load();
      report.epochReset = await this.opts.cursors.applyEpoch(epoch);
      const cursors = Object.entries(this.opts.cursors.all());
      if (cursors.length > 0) {
        const ans = await this.request(Cmd.RESUME, { 0: cursors.slice(0, 1000) });
        if (typeof ans.get(1) === 'string' && (await this.opts.cursors.applyEpoch(ans.get(1) as string))) report.epochReset = true;
        for (const [cid, lastMid, more] of (ans.get(0) as [string, number, boolean][]) ?? []) {
          const from = this.opts.cursors.get(cid) ?? 0;
          const c = { cid, fromMid: from, lastMid, recovered: 0, pages: 0, gap: false };
          report.chats.push(c);
          if (more) {
            let after = lastMid;
            try {
              for (;;) {
                const page = await this.query({ cid, fromMid: after + 1, limit: 50 });
                c.pages++;
                for (const ev of page.events) this.held.push({ event: ev, recovered: true });
                const last = page.events[page.events.length - 1];
                if (last) { after = last.mid; c.lastMid = last.mid; }
                if (!page.more || !last) break;
              }
            } catch (e) {
              c.gap = true;
              report.errors.push(e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e)));
            }
          }
        }
      }
      if (this.ws !== ws) return;
      const held = this.held.sort((a, b) => (a.event.cid < b.event.cid ? -1 : a.event.cid > b.event.cid ? 1 : a.event.mid - b.event.mid));
      this.held = [];
      this.syncing = false;
      for (const inc of held) {
        const c = report.chats.find((x) => x.cid === inc.event.cid);
        const recovered = inc.recovered || (c !== undefined && inc.event.mid <= c.lastMid);
        if (c && inc.event.mid <= c.fromMid) continue;
        if (this.deliver({ event: inc.event, recovered }) && recovered && c) { c.recovered++; report.recovered++; }
      }
      report.gap = report.chats.some((c) => c.gap);
      this.markHealthy();
      this.emitEvent('resumed', report);
    } catch (e) {
      this.syncing = false;
      this.held = [];
      if (this.ws === ws && ws) this.kill(ws, 4000, 'resume failed');
      this.emitEvent('error', e instanceof ImError ? e : new ImError('BAD_RESPONSE', String(e)));
    }
  }

  /** Follows a conversation from its current end (a cursor is otherwise set by the first event seen). */
  async follow(cid: string, afterMid: number): Promise<void> {
    await this.opts.cursors.load();
    await this.opts.cursors.advance(cid, afterMid);
  }

  /**
   * SEND: answered once the event is durable. An answer lost with the connection (or not there in time)
   * is asked for again once, with the same client message id, when the connection is back: the server
   * answers it with the first one's mid if that one was stored, so nothing is stored twice.
   */
  async send(cid: string, kind: number, data: Record<number, unknown>, tags?: [number, number][]): Promise<{ mid: number; t: number; cid: string }> {
    const body = toMap({ 1: cid, 2: kind, 6: tags, 7: toMap(data), 9: clientMessageId() });
    const answer = (b: M): { mid: number; t: number; cid: string } => ({ mid: Number(b.get(0)), t: Number(b.get(1)), cid: String(b.get(2)) });
    try {
      return answer(await this.request(Cmd.SEND, body));
    } catch (e) {
      if (!(e instanceof ImError) || (e.code !== 'NETWORK' && e.code !== 'TIMEOUT')) throw e;
      if (!(await this.whenConnected(this.opts.requestTimeoutMs ?? 30_000))) throw e;
      return answer(await this.request(Cmd.SEND, body));
    }
  }

  /** Resolves true once the connection is (again) ready, false after `ms` or when it is closed for good. */
  private whenConnected(ms: number): Promise<boolean> {
    if (this.state === 'connected') return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (ok: boolean): void => { clearTimeout(timer); off(); resolve(ok); };
      const timer = setTimeout(() => done(false), ms);
      const off = this.on('state', (s) => {
        if (s === 'connected') done(true);
        else if (s === 'closed') done(false);
      });
    });
  }

  sendText(cid: string, text: string, opts: { replyTo?: number } = {}): Promise<{ mid: number; t: number; cid: string }> {
    return this.send(cid, Kind.TEXT, { 0: text }, opts.replyTo !== undefined ? [[1, opts.replyTo]] : undefined);
  }

  /** Revoke: scope 1 everyone, 2 only me. */
  revoke(cid: string, mid: number, scope: 1 | 2 = 1, reason?: string): Promise<{ mid: number; t: number; cid: string }> {
    return this.send(cid, Kind.REVOKE, { 0: scope, 1: reason }, [[6, mid]]);
  }

  async ack(cid: string, mid: number): Promise<number> {
    const b = await this.request(Cmd.ACK, { 0: cid, 1: mid });
    return Number(b.get(1));
  }

  async query(q: { cid: string; fromMid?: number; toMid?: number; since?: number; until?: number; limit?: number; newestFirst?: boolean }): Promise<{ events: ImEvent[]; more: boolean }> {
    const b = await this.request(Cmd.QUERY, { 0: q.cid, 1: q.fromMid, 2: q.toMid, 3: q.since, 4: q.until, 5: q.limit, 6: q.newestFirst });
    return { events: ((b.get(0) as M[] | undefined) ?? []).map(decodeEvent), more: b.get(1) === true };
  }

  async presence(addresses: string[], watch?: boolean): Promise<[string, boolean][]> {
    const b = await this.request(Cmd.PRESENCE, { 0: addresses, 1: watch });
    return (b.get(0) as [string, boolean][]) ?? [];
  }

  async presign(name: string, size: number, mime?: string): Promise<{ fid: string; url: string; method: string; headers: Record<string, string>; expiresAt: number }> {
    const b = await this.request(Cmd.PRESIGN, { 0: name, 1: size, 2: mime });
    const h = b.get(3);
    const headers: Record<string, string> = {};
    if (h instanceof Map) for (const [k, v] of h) headers[String(k)] = String(v);
    return { fid: String(b.get(0)), url: String(b.get(1)), method: String(b.get(2) ?? 'PUT'), headers, expiresAt: Number(b.get(4)) };
  }

  /** PRESIGN, PUT the bytes, then SEND kind 3 with the fid and size (docs/protocol-im.md, Files). */
  async sendFile(cid: string, file: { name: string; bytes: Uint8Array; mime?: string; sha256?: string }, opts: { replyTo?: number } = {}): Promise<{ mid: number; t: number; cid: string; fid: string }> {
    const p = await this.presign(file.name, file.bytes.length, file.mime);
    const f: FetchLike = this.opts.fetch ?? ((globalThis as unknown as { fetch: FetchLike }).fetch).bind(globalThis);
    let res: Awaited<ReturnType<FetchLike>>;
    try {
      res = await f(p.url, { method: p.method, headers: p.headers, body: file.bytes });
    } catch (e) {
      throw new ImError('NETWORK', `upload failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (!res.ok) {
      const text = await res.text().catch(() => '');
      let code: unknown;
      try { code = (JSON.parse(text) as { error?: { code?: string } }).error?.code; } catch { /* not JSON */ }
      throw fromServer(code, `upload answered HTTP ${res.status}`, res.status);
    }
    const r = await this.send(cid, Kind.FILE, { 0: p.fid, 1: file.name, 2: file.bytes.length, 3: file.mime, 4: file.sha256 ?? bytesToHex(sha256(file.bytes)).slice(2) }, opts.replyTo !== undefined ? [[1, opts.replyTo]] : undefined);
    return { ...r, fid: p.fid };
  }

  events(): AsyncIterableIterator<ImIncoming> {
    const q = new AsyncQueue<ImIncoming>();
    this.iterators.add(q);
    return q;
  }

  override close(): void {
    super.close();
    for (const q of this.iterators) q.close();
    this.iterators.clear();
  }
}

function errorOf(b: M): ImError {
  return fromServer(b.get(1), b.get(2));
}
