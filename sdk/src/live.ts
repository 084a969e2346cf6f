import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { ImError, toImError } from './errors.js';

/** The slice of the WHATWG WebSocket the SDK uses (browsers' WebSocket, Node 22's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  binaryType: string;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string | Uint8Array | ArrayBuffer): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketCtor = new (url: string) => WebSocketLike;

/**
 * idle → connecting → connected ⇄ disconnected → (connecting …) ; closed is final (close(), or a close
 * code that says not to reconnect, or a login that cannot succeed).
 */
export type ConnectionState = 'idle' | 'connecting' | 'connected' | 'disconnected' | 'closed';

export interface DisconnectInfo {
  code: number;
  reason: string;
  willReconnect: boolean;
  /** Delay before the next attempt when willReconnect. */
  retryInMs: number | null;
  error?: ImError;
}

export interface LiveEvents {
  state: ConnectionState;
  connecting: { attempt: number };
  connected: { address: string; epoch: string | null };
  disconnected: DisconnectInfo;
  error: ImError;
}

export interface LiveOptions {
  url: string;
  WebSocket?: WebSocketCtor;
  /** Send a ping this often (default 15 s) … */
  heartbeatMs?: number;
  /** … and treat the link as dead when nothing arrived for this long (default 2 × heartbeatMs + 5 s). */
  deadAfterMs?: number;
  /** Time for the server's ready/auth answer (default 15 s). */
  readyTimeoutMs?: number;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  random?: () => number;
}

/** Close codes after which reconnecting with the same credentials is pointless (docs/errors.md). */
const AUTH_CODES = new Set([4001, 4002]);
const FINAL_CODES = new Set([1000]);
/** Local close code when the heartbeat found the link dead (the server's own is the same number). */
export const HEARTBEAT_CLOSE = 4009;

/**
 * The reconnecting socket shared by both faces: explicit states, full-jitter backoff that never stops
 * by itself (every pause is announced with `disconnected`), a heartbeat that notices a dead link, and
 * one fresh login when the server refuses the token (a second refusal right after it is reported, never
 * looped).
 */
export abstract class LiveSocket<E extends LiveEvents> extends Emitter<E> {
  state: ConnectionState = 'idle';
  protected ws: WebSocketLike | null = null;
  private readonly backoff: Backoff;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private heartbeat: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private closedByUser = false;
  private freshLogin = false;
  private attempt = 0;

  constructor(protected readonly live: LiveOptions) {
    super();
    this.backoff = new Backoff(live.backoffBaseMs ?? 500, live.backoffCapMs ?? 30_000, live.random);
  }

  /** The current token (logging in when needed). */
  protected abstract token(): Promise<string>;
  /** Forget a token the server refused, so the next token() logs in again. */
  protected abstract dropToken(token: string): Promise<void>;
  protected abstract socketUrl(token: string): string;
  /** Called on open; subclasses authenticate and resolve once the server said ready. */
  protected abstract onOpen(token: string): void;
  protected abstract onData(data: unknown): void;
  protected abstract ping(): void;
  /** Called when a socket ends (in-flight requests fail as temporary, to be retried). */
  protected abstract onSocketEnd(): void;

  get connected(): boolean {
    return this.state === 'connected';
  }

  /** Starts connecting (idempotent). */
  start(): void {
    if (this.state !== 'idle' && this.state !== 'closed') return;
    this.closedByUser = false;
    void this.connect();
  }

  /** Closes for good (until start() again). */
  close(): void {
    this.closedByUser = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.stopHeartbeat();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      try { ws.close(1000); } catch { /* already closed */ }
      this.onSocketEnd();
    }
    this.setState('closed');
  }

  protected setState(s: ConnectionState): void {
    if (this.state === s) return;
    this.state = s;
    this.emit('state', s as E['state']);
  }

  protected emitEvent<K extends keyof E>(k: K, v: E[K]): void {
    this.emit(k, v);
  }

  private async connect(): Promise<void> {
    if (this.closedByUser) return;
    this.attempt++;
    this.setState('connecting');
    this.emit('connecting', { attempt: this.attempt } as E['connecting']);
    let token: string;
    try {
      token = await this.token();
    } catch (e) {
      const err = toImError(e);
      this.afterClose(0, `login failed: ${err.message}`, err.temporary, err);
      return;
    }
    if (this.closedByUser) return;
    const Ctor = this.live.WebSocket ?? (globalThis as unknown as { WebSocket?: WebSocketCtor }).WebSocket;
    if (!Ctor) {
      this.afterClose(0, 'no WebSocket implementation', false, new ImError('INVALID_ARGUMENT', 'no global WebSocket: pass options.WebSocket'));
      return;
    }
    let ws: WebSocketLike;
    try {
      ws = new Ctor(this.socketUrl(token));
    } catch (e) {
      this.afterClose(0, 'cannot open', true, toImError(e));
      return;
    }
    this.ws = ws;
    ws.binaryType = 'arraybuffer';
    const readyTimer = setTimeout(() => {
      if (this.ws === ws && this.state !== 'connected') this.kill(ws, HEARTBEAT_CLOSE, 'no ready answer in time');
    }, this.live.readyTimeoutMs ?? 15_000);
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
      this.onOpen(token);
    };
    ws.onmessage = (ev) => {
      this.lastFrameAt = Date.now();
      try {
        this.onData(ev.data);
      } catch (e) {
        this.emit('error', toImError(e, 'BAD_RESPONSE') as E['error']);
      }
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = (ev) => {
      clearTimeout(readyTimer);
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopHeartbeat();
      this.onSocketEnd();
      if (this.closedByUser) return;
      if (AUTH_CODES.has(ev.code)) {
        void this.dropToken(token);
        // One fresh login per refusal; refused again right after a fresh login: report and stop.
        if (this.freshLogin) {
          this.afterClose(ev.code, ev.reason, false, new ImError(ev.code === 4002 ? 'TOKEN_EXPIRED' : 'UNAUTHENTICATED', `the server refused a fresh token (close ${ev.code})`));
          return;
        }
        this.freshLogin = true;
        this.afterClose(ev.code, ev.reason, true, undefined, 0);
        return;
      }
      this.afterClose(ev.code, ev.reason, !FINAL_CODES.has(ev.code));
    };
  }

  /** Subclasses call this when the server said ready: starts the heartbeat. */
  protected markConnected(address: string, epoch: string | null): void {
    this.freshLogin = false;
    this.setState('connected');
    this.emit('connected', { address, epoch } as E['connected']);
    this.startHeartbeat();
  }

  /**
   * Subclasses call this once the resume after a connect completed: only then is the backoff reset, so a
   * connection that keeps failing right after `ready` still backs off instead of reconnecting in a tight loop.
   */
  protected markHealthy(): void {
    this.backoff.reset();
    this.attempt = 0;
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const every = this.live.heartbeatMs ?? 15_000;
    const dead = this.live.deadAfterMs ?? 2 * every + 5_000;
    this.heartbeat = setInterval(() => {
      const ws = this.ws;
      if (!ws) return;
      if (Date.now() - this.lastFrameAt > dead) {
        this.kill(ws, HEARTBEAT_CLOSE, 'heartbeat timeout');
        return;
      }
      try { this.ping(); } catch { /* the close event follows */ }
    }, Math.min(every, dead));
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  /** Ends a socket from this side and reports it as closed with `code` (browsers may not deliver their close event promptly). */
  protected kill(ws: WebSocketLike, code: number, reason: string): void {
    const onclose = ws.onclose;
    ws.onclose = null;
    ws.onmessage = null;
    try { ws.close(code, reason); } catch { /* ignore */ }
    onclose?.({ code, reason });
  }

  private afterClose(code: number, reason: string, reconnect: boolean, error?: ImError, delay?: number): void {
    if (this.closedByUser) return;
    if (!reconnect) {
      this.emit('disconnected', { code, reason, willReconnect: false, retryInMs: null, ...(error ? { error } : {}) } as E['disconnected']);
      if (error) this.emit('error', error as E['error']);
      this.setState('closed');
      return;
    }
    const wait = delay ?? this.backoff.next();
    this.setState('disconnected');
    this.emit('disconnected', { code, reason, willReconnect: true, retryInMs: wait, ...(error ? { error } : {}) } as E['disconnected']);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connect();
    }, wait);
  }
}
