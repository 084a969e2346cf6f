import { mlsMessageDecoder } from 'ts-mls';
import { AppError } from '../errors/app-error.js';

/**
 * The part of an MLS message (RFC 9420 section 6) that the Delivery Service may read: what the RFC puts in
 * the clear. docs/e2ee.md section 3 is the framing: `payload` = standard base64 of one `MLSMessage` of wire
 * format public (1) or private (2); after a commit, and only then, exactly one `MLSMessage` of wire format
 * welcome (3); nothing after.
 *
 * The header is read by a small bounded reader of its own (RFC 9420's QUIC-style variable-length vector
 * lengths, section 2.1.2), not by ts-mls's decoders: an application message, the hot path, costs a few
 * field reads and no allocation beyond the decoded bytes. A public message (handshake only, rare) and a
 * trailing Welcome are decoded whole with ts-mls, which is what finds their end. Every failure is
 * AppError('MLS_MALFORMED'), whatever the input.
 */
export const WireFormat = { PUBLIC: 1, PRIVATE: 2, WELCOME: 3, GROUP_INFO: 4, KEY_PACKAGE: 5 } as const;
export const ContentType = { APPLICATION: 1, PROPOSAL: 2, COMMIT: 3 } as const;
export const SenderType = { MEMBER: 1, EXTERNAL: 2, NEW_MEMBER_PROPOSAL: 3, NEW_MEMBER_COMMIT: 4 } as const;

export interface MlsHeader {
  wireFormat: 1 | 2;
  /** The group id's bytes, one char per byte (latin1): equal to an ASCII conversation id exactly when the bytes are. */
  groupId: string;
  epoch: number;
  contentType: 1 | 2 | 3;
  /** Public messages only: who signed it (member leaf index, or external sender index). */
  sender: { type: 1 | 2 | 3 | 4; index: number | null } | null;
  /** True when a Welcome follows the commit. */
  welcome: boolean;
}

/** Longest group id accepted (a conversation id is at most 87 bytes). */
export const MAX_GROUP_ID_BYTES = 255;
/** Protocol version mls10. */
const MLS10 = 1;

function malformed(why: string): AppError {
  return new AppError('MLS_MALFORMED', `the MLS payload is malformed: ${why}`);
}

/** A cursor over the bytes; every read is bounds-checked and throws MLS_MALFORMED past the end. */
class Reader {
  at = 0;
  constructor(readonly b: Uint8Array) {}
  u8(): number {
    if (this.at >= this.b.length) throw malformed('truncated');
    return this.b[this.at++] as number;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  u32(): number {
    return ((this.u8() << 24) >>> 0) + ((this.u8() << 16) | (this.u8() << 8) | this.u8());
  }
  /** uint64, refused above Number.MAX_SAFE_INTEGER. */
  u64(): number {
    const hi = this.u32();
    const lo = this.u32();
    if (hi >= 0x200000) throw malformed('epoch beyond 2^53');
    return hi * 0x100000000 + lo;
  }
  /** RFC 9420 section 2.1.2: 2-bit prefix, 1/2/4 bytes, minimal encoding, prefix 11 invalid. */
  varint(): number {
    const first = this.u8();
    const prefix = first >> 6;
    if (prefix === 0) return first & 0x3f;
    if (prefix === 1) {
      const v = ((first & 0x3f) << 8) | this.u8();
      if (v < 64) throw malformed('length not minimally encoded');
      return v;
    }
    if (prefix === 2) {
      const v = (first & 0x3f) * 0x1000000 + ((this.u8() << 16) | (this.u8() << 8) | this.u8());
      if (v < 16384) throw malformed('length not minimally encoded');
      return v;
    }
    throw malformed('invalid length prefix');
  }
  /** opaque<V>: returns [start, end) of its content. */
  opaque(max = Infinity): [number, number] {
    const n = this.varint();
    if (n > max) throw malformed('vector too long');
    const start = this.at;
    const end = start + n;
    if (end > this.b.length) throw malformed('truncated');
    this.at = end;
    return [start, end];
  }
}

function latin1(b: Uint8Array, start: number, end: number): string {
  return Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('latin1');
}

function contentTypeOf(v: number): 1 | 2 | 3 {
  if (v === 1 || v === 2 || v === 3) return v;
  throw malformed('unknown content type');
}

/** Decodes standard padded base64 strictly (Buffer's decoder skips what it does not know). */
export function strictBase64(s: string): Buffer {
  // Node's decoder skips characters outside the alphabet and stops at padding, so any such character
  // shows as a length shorter than the string's; it also takes the URL-safe alphabet, refused here.
  // (A regex over the string cost more than the rest of the parse.)
  const n = s.length;
  if (n === 0 || n % 4 !== 0) throw malformed('not standard padded base64');
  const pad = s.charCodeAt(n - 1) === 61 ? (s.charCodeAt(n - 2) === 61 ? 2 : 1) : 0;
  const b = Buffer.from(s, 'base64');
  if (b.length !== (n / 4) * 3 - pad || s.includes('-') || s.includes('_')) throw malformed('not standard padded base64');
  return b;
}

/** Length of the whole MLSMessage at `offset` according to ts-mls, or MLS_MALFORMED. */
function fullLength(bytes: Uint8Array, offset: number, wireFormat: number): number {
  let r: ReturnType<typeof mlsMessageDecoder>;
  try {
    r = mlsMessageDecoder(bytes, offset);
  } catch {
    throw malformed('undecodable message');
  }
  if (!r || r[0].wireformat !== wireFormat || r[1] <= 0) throw malformed('undecodable message');
  return r[1];
}

/** Parses the payload of an MLS Relation ONE message (base64) as docs/e2ee.md section 3 frames it. */
export function parseMlsPayload(payload: string): MlsHeader {
  return parseMlsBytes(strictBase64(payload));
}

export function parseMlsBytes(bytes: Uint8Array): MlsHeader {
  try {
    return parse(bytes);
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw malformed('undecodable message');
  }
}

function parse(bytes: Uint8Array): MlsHeader {
  const r = new Reader(bytes);
  if (r.u16() !== MLS10) throw malformed('not MLS 1.0');
  const wf = r.u16();
  if (wf !== WireFormat.PUBLIC && wf !== WireFormat.PRIVATE) throw malformed('wire format is neither public nor private message');
  const [gs, ge] = r.opaque(MAX_GROUP_ID_BYTES);
  const epoch = r.u64();
  let contentType: 1 | 2 | 3;
  let sender: MlsHeader['sender'] = null;
  let end: number;
  if (wf === WireFormat.PRIVATE) {
    // PrivateMessage = group_id<V> epoch content_type authenticated_data<V> encrypted_sender_data<V> ciphertext<V>
    contentType = contentTypeOf(r.u8());
    r.opaque();
    r.opaque();
    r.opaque();
    end = r.at;
  } else {
    // PublicMessage = FramedContent{group_id<V> epoch sender authenticated_data<V> content_type content} auth [membership_tag]
    const st = r.u8();
    if (st === SenderType.MEMBER || st === SenderType.EXTERNAL) sender = { type: st, index: r.u32() };
    else if (st === SenderType.NEW_MEMBER_PROPOSAL || st === SenderType.NEW_MEMBER_COMMIT) sender = { type: st, index: null };
    else throw malformed('unknown sender type');
    r.opaque();
    contentType = contentTypeOf(r.u8());
    if (contentType === ContentType.APPLICATION) throw malformed('an application message must be a private message');
    end = fullLength(bytes, 0, WireFormat.PUBLIC);
  }
  let welcome = false;
  if (end < bytes.length) {
    if (contentType !== ContentType.COMMIT) throw malformed('bytes after a message that is not a commit');
    const len = fullLength(bytes, end, WireFormat.WELCOME);
    if (end + len !== bytes.length) throw malformed('bytes after the Welcome');
    welcome = true;
  } else if (end > bytes.length) {
    throw malformed('truncated');
  }
  return { wireFormat: wf, groupId: latin1(bytes, gs, ge), epoch, contentType, sender, welcome };
}
