import { AppError } from '../../errors/app-error.js';
import { FILE_ID, type ObjectStore } from '../../files/port.js';
import {
  encodeEnvelope, EV, mp, optArr, optBin, optMap, optStr, reqInt, reqStr, type MpMap, type MpValue,
} from '../../protocol/msgpack/codec.js';
import type { PushItem } from '../../bus/hub.js';
import { Face, type StoredEvent } from '../../store/port.js';
import { Cmd } from './commands.js';

/** Event kinds of the MsgPack face (SPEC section 6), plus 64: a Relation ONE message seen from /im. */
export const ImKind = { TEXT: 1, FILE: 3, REVOKE: 5, RELATION_ONE: 64 } as const;
/** Tag types: `[1, mid]` reply to, `[6, mid]` revoke target. */
export const TagType = { REPLY: 1, REVOKE: 6 } as const;
/** Bits of `flg` set by the server on served events. */
export const Flag = { REVOKED: 1, PRIVATE: 2 } as const;
export const Scope = { EVERYONE: 1, ONLY_ME: 2 } as const;

export interface FileRef { fid: string; name: string; size: number; mime: string; sha256: string }

/** `cmid`: the client's id of this send (body key 9); a resend with the same one returns the first mid. */
interface DraftBase { cid: string; sig: string | undefined; cmid?: string | undefined }
export type Draft =
  | (DraftBase & { k: 1; text: string; replyTo: number | undefined })
  | (DraftBase & { k: 3; file: FileRef; replyTo: number | undefined })
  | (DraftBase & { k: 5; target: number; scope: 1 | 2; reason: string | undefined });

export interface DraftLimits { maxTextBytes: number; maxFileBytes: number }

const CID = /^(0x[0-9a-f]{40}|dm:0x[0-9a-f]{40}:0x[0-9a-f]{40})$/;
const SHA256 = /^[0-9a-f]{64}$/;
/** A client message id: 1 to 64 characters that need no escaping anywhere (a UUID, a random hex or base64url string). */
const CMID = /^[A-Za-z0-9_.:-]{1,64}$/;
const MID_MAX = Number.MAX_SAFE_INTEGER;

/** Reads `tags`: known tag types are kept (one of each), unknown ones are ignored like unknown keys. */
function readTags(body: MpMap): Map<number, number> {
  const tags = optArr(body, EV.TAGS, 'body', 16) ?? [];
  const out = new Map<number, number>();
  tags.forEach((t, i) => {
    if (!Array.isArray(t) || t.length < 1) throw new AppError('INVALID_FIELD', `body.6[${i}] must be an array [type, value]`, { field: 'body.6' });
    const [type, value] = t;
    if (type !== TagType.REPLY && type !== TagType.REVOKE) return;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
      throw new AppError('INVALID_FIELD', `body.6[${i}] must be [${type}, mid] with mid >= 1`, { field: 'body.6' });
    }
    if (out.has(type)) throw new AppError('INVALID_FIELD', `body.6 holds tag ${type} twice`, { field: 'body.6' });
    out.set(type, value);
  });
  return out;
}

/** Validates the event body of a send (cmd 3). The server sets mid, t and flg; client values are ignored. */
export function parseDraft(body: MpMap, lim: DraftLimits): Draft {
  const cid = reqStr(body, EV.CID, 'body', 100, CID);
  const k = reqInt(body, EV.K, 'body', 0, 255);
  const sigBytes = optBin(body, EV.SIG, 'body', 512);
  const sig = sigBytes ? Buffer.from(sigBytes).toString('hex') : undefined;
  const cmid = optStr(body, EV.CMID, 'body', 64, CMID);
  const tags = readTags(body);
  const data = optMap(body, EV.DATA, 'body') ?? new Map<MpValue, MpValue>();
  if (k === ImKind.TEXT || k === ImKind.FILE) {
    if (tags.has(TagType.REVOKE)) throw new AppError('INVALID_FIELD', 'a revoke tag belongs on kind 5', { field: 'body.6' });
    const replyTo = tags.get(TagType.REPLY);
    if (k === ImKind.TEXT) {
      const text = reqStr(data, 0, 'body.7', lim.maxTextBytes);
      if (text.length === 0) throw new AppError('INVALID_FIELD', 'body.7.0 must not be empty', { field: 'body.7.0' });
      return { cid, sig, cmid, k, text, replyTo };
    }
    const shaRaw = data.get(4);
    const sha256 = shaRaw instanceof Uint8Array && shaRaw.length === 32 ? Buffer.from(shaRaw).toString('hex') : reqStr(data, 4, 'body.7', 64, SHA256);
    const file: FileRef = {
      fid: reqStr(data, 0, 'body.7', 32, FILE_ID), name: reqStr(data, 1, 'body.7', 255), size: reqInt(data, 2, 'body.7', 0, lim.maxFileBytes),
      mime: reqStr(data, 3, 'body.7', 127), sha256,
    };
    return { cid, sig, cmid, k, file, replyTo };
  }
  if (k === ImKind.REVOKE) {
    const target = tags.get(TagType.REVOKE);
    if (target === undefined) throw new AppError('INVALID_FIELD', 'a revoke needs the tag [6, mid]', { field: 'body.6' });
    const scope = reqInt(data, 0, 'body.7', 1, 2) as 1 | 2;
    return { cid, sig, cmid, k, target, scope, reason: optStr(data, 1, 'body.7', 256) };
  }
  throw new AppError('INVALID_FIELD', 'body.2 (k) must be 1 (text), 3 (file) or 5 (revoke)', { field: 'body.2' });
}

/** The body of an MsgPack-face event as stored (JSON, data keys as strings) and as parsed back. */
export interface ImBody { v: 1; k: number; tags: [number, number][]; data: Record<string, string | number>; sig?: string }

/** The stored body of a draft, as an object: its JSON is what is stored, and `ImWire` encodes it without parsing. */
export function draftBody(d: Draft): ImBody {
  let tags: [number, number][] = [];
  let data: Record<string, string | number>;
  if (d.k === ImKind.TEXT) {
    data = { 0: d.text };
    if (d.replyTo !== undefined) tags = [[TagType.REPLY, d.replyTo]];
  } else if (d.k === ImKind.FILE) {
    data = { 0: d.file.fid, 1: d.file.name, 2: d.file.size, 3: d.file.mime, 4: d.file.sha256 };
    if (d.replyTo !== undefined) tags = [[TagType.REPLY, d.replyTo]];
  } else {
    data = { 0: d.scope };
    if (d.reason !== undefined) data[1] = d.reason;
    tags = [[TagType.REVOKE, d.target]];
  }
  const b: ImBody = { v: 1, k: d.k, tags, data };
  if (d.sig !== undefined) b.sig = d.sig;
  return b;
}

/**
 * Events as the MsgPack face serves them (body keys of seed 4.3). `ext` {0: sender, 1: revokedBy mid}.
 * A revoked event keeps its tags but loses its data; a Relation ONE message is kind 64 whose data 0 is
 * the signed JSON exactly as stored (with the server's seq and receivedAt), opaque to /im clients.
 */
export class ImWire {
  constructor(private readonly files: ObjectStore) {}

  private base(e: StoredEvent): MpMap {
    let flg = 0;
    if (e.revokedBy !== undefined) flg |= Flag.REVOKED;
    if (e.onlyFor !== null) flg |= Flag.PRIVATE;
    const ext: MpMap = new Map<MpValue, MpValue>([[0, e.sender]]);
    if (e.revokedBy !== undefined) ext.set(1, e.revokedBy);
    return new Map<MpValue, MpValue>([
      [EV.EV_V, 1], [EV.CID, e.cid], [EV.MID, e.seq], [EV.T, Math.floor(e.receivedAt / 1000)], [EV.FLG, flg], [EV.EXT, ext],
    ]);
  }

  /**
   * Without file URLs (synchronous; used for pushes of events that need none). `parsed` is the event's
   * body when the caller still has it as an object (a send just stored), which spares parsing the JSON.
   */
  encodeSync(e: StoredEvent, url?: string, parsed?: ImBody): MpMap {
    const m = this.base(e);
    if (e.face !== Face.IM) {
      m.set(EV.K, ImKind.RELATION_ONE);
      m.set(EV.TAGS, []);
      m.set(EV.DATA, new Map<MpValue, MpValue>([[0, `${e.body.slice(0, -1)},"seq":${e.seq},"receivedAt":${e.receivedAt}}`]]));
      return m;
    }
    const b = parsed ?? (JSON.parse(e.body) as ImBody);
    m.set(EV.K, b.k);
    m.set(EV.TAGS, b.tags);
    const data: MpMap = new Map();
    if (e.revokedBy === undefined) {
      for (const key in b.data) data.set(Number(key), b.data[key] as string | number);
      if (url !== undefined) data.set(5, url);
    }
    m.set(EV.DATA, data);
    if (b.sig !== undefined) m.set(EV.SIG, Buffer.from(b.sig, 'hex'));
    return m;
  }

  /** With a fresh, expiring download URL in data 5 of a file event. */
  async encode(e: StoredEvent, parsed?: ImBody): Promise<MpMap> {
    if (e.face === Face.IM && e.kind === ImKind.FILE && e.revokedBy === undefined) {
      const b = parsed ?? (JSON.parse(e.body) as ImBody);
      const fid = b.data['0'];
      if (typeof fid === 'string') return this.encodeSync(e, (await this.files.presignDownload(fid)).url, b);
    }
    return this.encodeSync(e, undefined, parsed);
  }

  /** The PUSH frame of a stored event that carries no file URL. */
  pushFrameSync(e: StoredEvent, parsed?: ImBody): Buffer {
    return encodeEnvelope(Cmd.PUSH, undefined, this.encodeSync(e, undefined, parsed));
  }

  /** The PUSH frame of a stored event, computed ahead of publishing (file URLs need an async signature). */
  async pushFrameOf(e: StoredEvent, parsed?: ImBody): Promise<Buffer> {
    return encodeEnvelope(Cmd.PUSH, undefined, await this.encode(e, parsed));
  }

  /**
   * The push frame of a published event, encoded once for all its recipients: cached on the push item
   * (the publisher may have set it already, as a send does).
   */
  pushFrame(item: PushItem & { event: StoredEvent }): Buffer {
    return (item.imFrame ??= this.pushFrameSync(item.event));
  }
}
