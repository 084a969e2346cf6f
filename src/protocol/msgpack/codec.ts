import { Packr, Unpackr } from 'msgpackr';
import { AppError } from '../../errors/app-error.js';
import { scanMsgpack, type MsgpackLimits } from './scan.js';

/** A decoded MsgPack value (maps stay Maps, so integer keys stay integers). */
export type MpValue = null | boolean | number | bigint | string | Uint8Array | MpValue[] | MpMap;
export type MpMap = Map<MpValue, MpValue>;

/** Envelope keys (SPEC section 6 / seed 4.2). */
export const ENV = { V: 0, CMD: 1, SEQ: 2, SID: 3, BODY: 4, EXT: 15 } as const;
/** Event body keys (seed 4.3). */
/** Event body keys; CMID (9) is input only: the client's id of a SEND, so that a resend stores nothing twice. */
export const EV = { EV_V: 0, CID: 1, K: 2, MID: 3, T: 4, FLG: 5, TAGS: 6, DATA: 7, SIG: 8, CMID: 9, EXT: 15 } as const;

export const PROTOCOL_VERSION = 1;

export interface Envelope {
  v: number;
  cmd: number;
  /** The client's request number; absent when the client does not want to match the answer. */
  seq: number | undefined;
  body: MpMap;
}

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false, int64AsType: 'number' });

/** Encodes a value built from Maps with integer keys (never records or extensions). */
export function pack(value: unknown): Buffer {
  return packr.pack(value);
}

/** One bounded value out of a frame: scanned first (limits, well-formedness), then decoded. */
export function unpackBounded(buf: Uint8Array, lim: MsgpackLimits): MpValue {
  scanMsgpack(buf, lim);
  try {
    return unpackr.unpack(buf) as MpValue;
  } catch {
    throw new AppError('BAD_MSGPACK', 'malformed MsgPack');
  }
}

export function isMap(v: MpValue | undefined): v is MpMap {
  return v instanceof Map;
}

/** Decodes a frame into an envelope; the body is validated later by the command it belongs to. */
export function decodeEnvelope(buf: Uint8Array, lim: MsgpackLimits): Envelope {
  const root = unpackBounded(buf, lim);
  if (!isMap(root)) throw new AppError('BAD_MSGPACK', 'a frame is a MsgPack map (the envelope)');
  const seqRaw = root.get(ENV.SEQ);
  const seq = typeof seqRaw === 'number' && Number.isSafeInteger(seqRaw) && seqRaw >= 0 ? seqRaw : undefined;
  const v = root.get(ENV.V);
  const cmd = root.get(ENV.CMD);
  const body = root.get(ENV.BODY);
  if (seqRaw !== undefined && seq === undefined) throw new EnvelopeError(undefined, 'envelope key 2 (seq) must be a non-negative integer');
  if (v !== undefined && v !== PROTOCOL_VERSION) throw new EnvelopeError(seq, `unsupported protocol version (this server speaks ${PROTOCOL_VERSION})`);
  if (typeof cmd !== 'number' || !Number.isSafeInteger(cmd)) throw new EnvelopeError(seq, 'envelope key 1 (cmd) must be an integer');
  if (body !== undefined && body !== null && !isMap(body)) throw new EnvelopeError(seq, 'envelope key 4 (body) must be a map');
  return { v: PROTOCOL_VERSION, cmd, seq, body: isMap(body) ? body : new Map() };
}

/** An envelope whose shape is wrong but whose seq could be read, so the answer can carry it. */
export class EnvelopeError extends AppError {
  constructor(readonly seq: number | undefined, message: string) {
    super('INVALID_FIELD', message);
  }
}

/** Encodes an envelope (key 2 only when a seq is given). */
export function encodeEnvelope(cmd: number, seq: number | undefined, body: MpMap | null): Buffer {
  const env: MpMap = new Map<MpValue, MpValue>([[ENV.V, PROTOCOL_VERSION], [ENV.CMD, cmd]]);
  if (seq !== undefined) env.set(ENV.SEQ, seq);
  if (body) env.set(ENV.BODY, body);
  return pack(env);
}

// --- typed field readers for command bodies: each throws INVALID_FIELD naming the key path.

const wrong = (path: string, what: string): AppError => new AppError('INVALID_FIELD', `${path} must be ${what}`, { field: path });

export function optInt(m: MpMap, key: number, path: string, min: number, max: number): number | undefined {
  const v = m.get(key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) throw wrong(`${path}.${key}`, `an integer in [${min}, ${max}]`);
  return v;
}

export function reqInt(m: MpMap, key: number, path: string, min: number, max: number): number {
  const v = optInt(m, key, path, min, max);
  if (v === undefined) throw wrong(`${path}.${key}`, 'present');
  return v;
}

export function optStr(m: MpMap, key: number, path: string, maxBytes: number, pattern?: RegExp): string | undefined {
  const v = m.get(key);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || Buffer.byteLength(v) > maxBytes || (pattern && !pattern.test(v))) {
    throw wrong(`${path}.${key}`, pattern ? 'a well-formed string' : `a string of at most ${maxBytes} bytes`);
  }
  return v;
}

export function reqStr(m: MpMap, key: number, path: string, maxBytes: number, pattern?: RegExp): string {
  const v = optStr(m, key, path, maxBytes, pattern);
  if (v === undefined) throw wrong(`${path}.${key}`, 'present');
  return v;
}

export function optMap(m: MpMap, key: number, path: string): MpMap | undefined {
  const v = m.get(key);
  if (v === undefined || v === null) return undefined;
  if (!isMap(v)) throw wrong(`${path}.${key}`, 'a map');
  return v;
}

export function optArr(m: MpMap, key: number, path: string, maxLen: number): MpValue[] | undefined {
  const v = m.get(key);
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.length > maxLen) throw wrong(`${path}.${key}`, `an array of at most ${maxLen} entries`);
  return v;
}

export function optBin(m: MpMap, key: number, path: string, maxBytes: number): Uint8Array | undefined {
  const v = m.get(key);
  if (v === undefined || v === null) return undefined;
  if (!(v instanceof Uint8Array) || v.length > maxBytes) throw wrong(`${path}.${key}`, `binary of at most ${maxBytes} bytes`);
  return v;
}

/** Builds a map with integer keys, leaving out undefined values. */
export function mp(entries: Record<number, MpValue | undefined>): MpMap {
  const m: MpMap = new Map();
  for (const k in entries) {
    const v = entries[k as unknown as number];
    if (v !== undefined) m.set(Number(k), v);
  }
  return m;
}
