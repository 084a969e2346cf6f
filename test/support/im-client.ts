import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';

/** MsgPack as a client in another language would write it: Maps with integer keys. */
export const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });

export type M = Map<unknown, unknown>;
/** Builds a map with integer keys from a plain object (nested plain objects become maps too). */
export function m(o: Record<number, unknown>): M {
  const out: M = new Map();
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined) continue;
    out.set(Number(k), v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map) && !(v instanceof Uint8Array) ? m(v as Record<number, unknown>) : v);
  }
  return out;
}

export interface Frame { cmd: number; seq: number | undefined; body: M }

/** An /im test client: real WebSocket, real MsgPack; matches answers by seq and records pushes. */
export class ImClient {
  readonly pushes: M[] = [];
  readonly answers: Frame[] = [];
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private nextSeq = 1;
  closeCode: number | null = null;
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const env = unpackr.unpack(data) as M;
      const f: Frame = { cmd: env.get(1) as number, seq: env.get(2) as number | undefined, body: (env.get(4) as M | undefined) ?? new Map() };
      if (f.cmd === 4) this.pushes.push(f.body);
      else this.answers.push(f);
      this.waiters = this.waiters.filter((w) => {
        if (!w.pred(f)) return true;
        w.resolve(f);
        return false;
      });
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => {
      this.closeCode = code;
      resolve(code);
    }));
  }

  static async open(url: string, token?: string): Promise<ImClient> {
    const ws = new WebSocket(url);
    const c = new ImClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    if (token) {
      const r = await c.request(1, { 0: token });
      if (r.cmd !== 1) throw new Error(`auth failed: ${JSON.stringify([...r.body])}`);
    }
    return c;
  }

  /** Resolves with the first frame (seen or future) matching `pred`. */
  wait(pred: (f: Frame) => boolean, timeoutMs = 10_000): Promise<Frame> {
    const seen = [...this.answers, ...this.pushes.map((b) => ({ cmd: 4, seq: undefined, body: b }))].find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ pred, resolve: (f) => { clearTimeout(timer); resolve(f); } });
    });
  }

  /** Waits for a push whose event matches. */
  push(pred: (ev: M) => boolean): Promise<M> {
    return this.wait((f) => f.cmd === 4 && pred(f.body)).then((f) => f.body);
  }

  /** Sends a request with a fresh seq and resolves with its one answer. */
  request(cmd: number, body: Record<number, unknown> | M = {}): Promise<Frame> {
    const seq = this.nextSeq++;
    this.raw(packr.pack(m({ 0: 1, 1: cmd, 2: seq, 4: body instanceof Map ? body : m(body) })));
    return this.wait((f) => f.cmd !== 4 && f.seq === seq);
  }

  /** The result body, or throws with the error code. */
  async ok(cmd: number, body: Record<number, unknown> | M = {}): Promise<M> {
    const r = await this.request(cmd, body);
    if (r.cmd === 0) throw new Error(`error ${String(r.body.get(1))}: ${String(r.body.get(2))}`);
    return r.body;
  }

  /** The error code of an answer expected to fail. */
  async err(cmd: number, body: Record<number, unknown> | M = {}): Promise<string> {
    const r = await this.request(cmd, body);
    if (r.cmd !== 0) throw new Error(`expected an error, got cmd ${r.cmd}`);
    return r.body.get(1) as string;
  }

  raw(data: Buffer | string): void {
    this.ws.send(data);
  }

  close(): void {
    this.ws.close();
  }
}

export const imUrl = (wsUrl: string): string => wsUrl.replace(/\/ws$/, '/im');
