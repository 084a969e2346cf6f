import type { Socket } from 'node:net';

/**
 * HAProxy's PROXY protocol version 2 (the binary header of `send-proxy-v2`), read at the start of a TCP
 * connection before HTTP. Only the client's source address is used; TLVs are skipped. Bounded: a header
 * longer than MAX_HEADER_BYTES, or one that has not arrived whole within the edge's header timeout, ends
 * the connection. Version 1 (the text form) is not read: such a connection is answered as bad HTTP.
 */
export const SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, version/command, family/transport, length: 16 bytes, then `length` bytes of addresses and TLVs. */
const FIXED = 16;
/** HAProxy sends 28 bytes for IPv4 and 52 for IPv6, plus any TLVs it is told to add; far less than this. */
export const MAX_HEADER_BYTES = 1024;

export type ProxyParse =
  /** More bytes are needed to decide. */
  | { kind: 'more' }
  /** The bytes are no PROXY header (plain HTTP from the trusted peer itself, e.g. a health check without one). */
  | { kind: 'none' }
  /** A whole header of `length` bytes; `source` is the client (absent for LOCAL or an unspecified family). */
  | { kind: 'header'; length: number; source?: string }
  | { kind: 'bad'; reason: string };

/** Reads a PROXY v2 header at the start of `buf` (pure; `buf` may be incomplete). */
export function parseProxyV2(buf: Uint8Array): ProxyParse {
  const n = Math.min(buf.length, SIGNATURE.length);
  for (let i = 0; i < n; i++) if (buf[i] !== SIGNATURE[i]) return { kind: 'none' };
  if (buf.length < FIXED) return { kind: 'more' };
  const verCmd = buf[12] as number;
  const famProto = buf[13] as number;
  const length = ((buf[14] as number) << 8) | (buf[15] as number);
  if (verCmd >> 4 !== 2) return { kind: 'bad', reason: 'PROXY header version is not 2' };
  const command = verCmd & 0x0f;
  if (command > 1) return { kind: 'bad', reason: 'PROXY header command is neither LOCAL nor PROXY' };
  const family = famProto >> 4;
  if (family > 3 || (famProto & 0x0f) > 2) return { kind: 'bad', reason: 'PROXY header family or transport is unknown' };
  if (FIXED + length > MAX_HEADER_BYTES) return { kind: 'bad', reason: `PROXY header longer than ${MAX_HEADER_BYTES} bytes` };
  if (buf.length < FIXED + length) return { kind: 'more' };
  const total = FIXED + length;
  if (command === 0 || family === 0 || family === 3) return { kind: 'header', length: total }; // LOCAL, UNSPEC, UNIX: the peer itself
  if (family === 1) {
    if (length < 12) return { kind: 'bad', reason: 'PROXY header too short for IPv4 addresses' };
    return { kind: 'header', length: total, source: `${buf[16]}.${buf[17]}.${buf[18]}.${buf[19]}` };
  }
  if (length < 36) return { kind: 'bad', reason: 'PROXY header too short for IPv6 addresses' };
  return { kind: 'header', length: total, source: ipv6(buf.subarray(16, 32)) };
}

/** 16 bytes as an IPv6 address in the form Node writes (lower case, longest zero run as ::; IPv4-mapped as dotted IPv4). */
export function ipv6(b: Uint8Array): string {
  if (b.slice(0, 10).every((x) => x === 0) && b[10] === 0xff && b[11] === 0xff) return `${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] as number) << 8) | (b[i + 1] as number));
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

/**
 * Reads the first bytes of a connection from a trusted proxy. Resolves with the header's source address
 * (undefined: no header, or LOCAL), with every byte after the header put back for HTTP; rejects with the
 * reason for a malformed or oversized header, a timeout, or a connection that closed first.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    const done = (err: Error | null, source?: string, rest?: Buffer): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('close', onClose);
      socket.removeListener('error', onClose);
      if (err) {
        reject(err);
        return;
      }
      socket.pause();
      if (rest && rest.length > 0) socket.unshift(rest);
      resolve(source);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const r = parseProxyV2(buf);
      if (r.kind === 'more') return;
      if (r.kind === 'none') done(null, undefined, buf);
      else if (r.kind === 'bad') done(new Error(r.reason));
      else done(null, r.source, buf.subarray(r.length));
    };
    const onClose = (): void => done(new Error('connection closed before its first bytes'));
    const timer = setTimeout(() => done(new Error('no PROXY header or request in time')), timeoutMs);
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.once('error', onClose);
  });
}
