import { AppError } from '../../errors/app-error.js';

/** Bounds every /im frame must respect before any decoder allocates for it. */
export interface MsgpackLimits {
  /** Deepest nesting of arrays and maps (the envelope itself is depth 1). */
  maxDepth: number;
  /** Longest single array or map (entries), and 8x this is the most values in a whole frame. */
  maxElements: number;
}

const bad = (why: string): AppError => new AppError('BAD_MSGPACK', `malformed MsgPack: ${why}`);

/**
 * Walks one MsgPack value without building it and throws BAD_MSGPACK unless the bytes are exactly one
 * complete value within the limits: no truncation, no trailing bytes, no extension types (msgpackr
 * would otherwise interpret records, timestamps and its own extensions), no reserved byte 0xc1, nesting
 * and lengths bounded. Iterative, so a hostile frame cannot exhaust the stack; O(bytes) time.
 */
export function scanMsgpack(buf: Uint8Array, lim: MsgpackLimits): void {
  const len = buf.length;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const maxTotal = lim.maxElements * 8;
  let i = 0;
  let total = 0;
  // Values still to read at each open level; the bottom entry is the frame's single top-level value.
  const stack: number[] = [1];
  const need = (n: number): void => {
    if (i + n > len) throw bad('truncated');
  };
  const skip = (n: number): void => {
    need(n);
    i += n;
  };
  const open = (entries: number, perEntry: 1 | 2): void => {
    if (entries > lim.maxElements) throw bad(`a container holds ${entries} entries (limit ${lim.maxElements})`);
    total += entries * perEntry;
    if (total > maxTotal) throw bad(`the frame holds more than ${maxTotal} values`);
    if (entries === 0) return;
    // Every entry above the bottom one is an enclosing container of this one (levels whose last value
    // this is have 0 left but are popped only after it), so the new container's depth is stack.length.
    if (stack.length > lim.maxDepth) throw bad(`nesting deeper than ${lim.maxDepth}`);
    stack.push(entries * perEntry);
  };
  while (stack.length > 0) {
    const top = stack.length - 1;
    const left = stack[top] as number;
    if (left === 0) {
      stack.pop();
      continue;
    }
    stack[top] = left - 1;
    need(1);
    const b = buf[i++] as number;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) continue;
    if (b >= 0x80 && b <= 0x8f) { open(b & 0x0f, 2); continue; }
    if (b >= 0x90 && b <= 0x9f) { open(b & 0x0f, 1); continue; }
    if (b >= 0xa0 && b <= 0xbf) { skip(b & 0x1f); continue; }
    switch (b) {
      case 0xc4: need(1); skip(1 + view.getUint8(i)); break;
      case 0xc5: need(2); skip(2 + view.getUint16(i)); break;
      case 0xc6: need(4); skip(4 + view.getUint32(i)); break;
      case 0xca: skip(4); break;
      case 0xcb: skip(8); break;
      case 0xcc: case 0xd0: skip(1); break;
      case 0xcd: case 0xd1: skip(2); break;
      case 0xce: case 0xd2: skip(4); break;
      case 0xcf: case 0xd3: skip(8); break;
      case 0xd9: need(1); skip(1 + view.getUint8(i)); break;
      case 0xda: need(2); skip(2 + view.getUint16(i)); break;
      case 0xdb: need(4); skip(4 + view.getUint32(i)); break;
      case 0xdc: need(2); i += 2; open(view.getUint16(i - 2), 1); break;
      case 0xdd: need(4); i += 4; open(view.getUint32(i - 4), 1); break;
      case 0xde: need(2); i += 2; open(view.getUint16(i - 2), 2); break;
      case 0xdf: need(4); i += 4; open(view.getUint32(i - 4), 2); break;
      default:
        // 0xc1 (never used), 0xc7-0xc9 and 0xd4-0xd8 (extensions)
        throw bad(b === 0xc1 ? 'reserved byte 0xc1' : 'extension types are not accepted');
    }
  }
  if (i !== len) throw bad(`${len - i} trailing bytes after the value`);
}
