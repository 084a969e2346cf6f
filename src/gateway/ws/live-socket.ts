import type { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';
import type { Session } from '../../roles/auth/auth-service.js';
import { CLOSE_CODES, type CloseName } from '../../errors/catalogue.js';
import { sendCorked } from './cork.js';
import { writePrepared } from './prepared.js';
import type { SocketMeter } from '../../metrics/metrics.js';

export interface LiveSocketLimits {
  authTimeoutMs: number;
  maxFramesPerSec: number;
  /** Bytes queued to the socket (or held during a resume) before the peer is cut off as a slow consumer. */
  maxBufferedBytes: number;
  /**
   * How long a slow consumer's connection is kept after its 4008 close frame was queued (behind what was
   * queued before), so that a client that reads again gets the close and not a dropped TCP connection.
   * Default 2000 ms, like every other close.
   */
  slowConsumerGraceMs?: number;
  /** Told when the connection authenticated (the unauthenticated-connection cap stops counting it). */
  onAuthenticated?: (socket: Duplex | undefined) => void;
  /** Told of every server-side close and its reason (metrics). */
  meter?: SocketMeter;
}

interface Held {
  frame: string | Buffer;
  cid: string | undefined;
  seq: number | undefined;
}

/**
 * What every WebSocket face does with a connection, whatever its encoding: the auth deadline, token
 * expiry, heartbeats, the frames-per-second limit, slow-consumer cut-off, holding live pushes while a
 * resume replays history, and the close handshake. `/ws` (JSON) and `/im` (MsgPack) extend it with
 * their own frames.
 */
export abstract class LiveSocket {
  /** The connection id in every log line about it (`conn`): the upgrade request's id. */
  readonly id: string;
  user = '';
  tokenHash = '';
  /** The client's IP address (rate limits per address). */
  address = '';
  protected session: Session | null = null;
  protected closed = false;
  private alive = true;
  private frames = 0;
  private windowStart = Date.now();
  private held: Held[] | null = null;
  /**
   * Per conversation, the last seq a resume replayed: a live push queued before the replay read the store
   * but delivered after it (a large fan-out goes out in chunks over several turns) is not sent twice.
   */
  private replayedUpTo: Map<string, number> | null = null;
  private heldBytes = 0;
  private expiryTimer: NodeJS.Timeout | undefined;
  private readonly authTimer: NodeJS.Timeout;

  constructor(protected readonly ws: WebSocket, private readonly limits: LiveSocketLimits, private readonly binary: boolean, id: string) {
    this.id = id;
    this.authTimer = setTimeout(() => this.close('UNAUTHENTICATED'), limits.authTimeoutMs);
    ws.on('pong', () => { this.alive = true; });
    ws.on('message', (data, isBinary) => {
      if (this.closed || this.overRate()) return;
      this.onFrame(data, isBinary);
    });
    ws.on('close', () => this.cleanup());
    ws.on('error', () => this.cleanup());
  }

  /** A frame from the peer, within the rate limit. */
  protected abstract onFrame(data: RawData, isBinary: boolean): void;
  /** Takes the connection out of every registry (hub, gateway, watches); called once. */
  protected abstract unregister(): void;

  /** Called on every heartbeat tick: a peer that missed the previous ping's pong is closed. */
  heartbeat(): void {
    if (!this.alive) {
      this.close('HEARTBEAT_TIMEOUT');
      return;
    }
    this.alive = false;
    try {
      this.ws.ping();
    } catch {
      this.cleanup();
    }
  }

  private overRate(): boolean {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.frames = 0;
    }
    if (++this.frames > this.limits.maxFramesPerSec) {
      this.close('RATE_LIMITED');
      return true;
    }
    return false;
  }

  /** The token checked out: stop the auth deadline, close when the token expires. */
  protected establish(s: Session): void {
    clearTimeout(this.authTimer);
    this.session = s;
    this.user = s.address;
    this.tokenHash = s.tokenHash;
    this.limits.onAuthenticated?.((this.ws as unknown as { _socket?: Duplex })._socket);
    const left = Math.min(s.expiresAt - Date.now(), 2 ** 31 - 1);
    this.expiryTimer = setTimeout(() => this.close('TOKEN_EXPIRED'), Math.max(0, left));
  }

  /** A push: sent now, or held while a resume replays (`cid`/`seq` let the replay drop what it already sent). */
  protected push(frame: string | Buffer, cid?: string, seq?: number): void {
    if (this.alreadyReplayed(cid, seq)) return;
    if (this.held) {
      this.heldBytes += frame.length;
      if (this.heldBytes > this.limits.maxBufferedBytes) {
        this.close('SLOW_CONSUMER');
        return;
      }
      this.held.push({ frame, cid, seq });
      return;
    }
    this.send(frame);
  }

  /**
   * A push whose complete WebSocket frame was built once for every recipient (`wire`); `payload` is the
   * frame's content, held as any other push during a resume. `written` is the hub's fan-out callback;
   * `bulk`: part of a large fan-out, written without corking the socket for the turn.
   */
  protected pushPrepared(payload: Buffer, wire: Buffer, cid: string | undefined, seq: number | undefined, written?: () => () => void, bulk = false): void {
    if (this.alreadyReplayed(cid, seq)) return;
    if (this.held) {
      this.push(payload, cid, seq);
      return;
    }
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount + wire.length > this.limits.maxBufferedBytes) {
      this.close('SLOW_CONSUMER');
      return;
    }
    writePrepared(this.ws, wire, payload, this.binary, written?.(), !bulk);
  }

  private alreadyReplayed(cid: string | undefined, seq: number | undefined): boolean {
    if (this.replayedUpTo === null || cid === undefined || seq === undefined) return false;
    const upTo = this.replayedUpTo.get(cid);
    return upTo !== undefined && seq <= upTo;
  }

  protected get resuming(): boolean {
    return this.held !== null;
  }

  /** Starts holding live pushes (a resume is about to replay history). */
  protected holdPushes(): void {
    this.held = [];
    this.heldBytes = 0;
  }

  /** Releases the held pushes, without those the replay sent (seq <= the last replayed of their conversation). */
  protected releasePushes(replayed: ReadonlyMap<string, number>): void {
    const held = this.held ?? [];
    this.held = null;
    if (replayed.size > 0) {
      const upTo = (this.replayedUpTo ??= new Map());
      for (const [cid, seq] of replayed) if (seq > (upTo.get(cid) ?? -1)) upTo.set(cid, seq);
    }
    for (const item of held) {
      const upTo = item.cid !== undefined ? replayed.get(item.cid) : undefined;
      if (upTo === undefined || item.seq === undefined || item.seq > upTo) this.send(item.frame);
    }
  }

  /** Sends a frame unless the peer's queue is over the limit, in which case it is cut off (4008). */
  protected send(frame: string | Buffer): void {
    if (this.closed || this.ws.readyState !== WebSocket.OPEN) return;
    if (this.ws.bufferedAmount + frame.length > this.limits.maxBufferedBytes) {
      this.close('SLOW_CONSUMER');
      return;
    }
    sendCorked(this.ws, frame, this.binary);
  }

  close(reason: CloseName): void {
    if (this.closed) return;
    const { code, text } = CLOSE_CODES[reason];
    this.limits.meter?.closed(reason);
    this.cleanup();
    try {
      this.ws.close(code, text.slice(0, 120)); // a close reason is at most 123 bytes
    } catch {
      // already closing
    }
    // A peer that does not answer the close handshake is cut hard. A slow consumer gets longer: nothing
    // more is queued after the close frame, and a client that reads again within the grace reads what was
    // queued, then the 4008 close (cut at once, it would see 1006 and not know why).
    const grace = reason === 'SLOW_CONSUMER' ? (this.limits.slowConsumerGraceMs ?? 2000) : 2000;
    setTimeout(() => this.ws.terminate(), grace).unref();
  }

  private cleanup(): void {
    if (this.closed) return;
    this.closed = true;
    this.held = null;
    clearTimeout(this.authTimer);
    clearTimeout(this.expiryTimer);
    this.unregister();
  }
}
