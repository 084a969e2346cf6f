import { isIPv4 } from 'node:net';

/** A PROXY protocol v2 header (PROXY command, TCP) as HAProxy's send-proxy-v2 writes it. */
export function proxyV2(src: string, srcPort: number, dst: string, dstPort: number, tlvs: Buffer = Buffer.alloc(0)): Buffer {
  const sig = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const v4 = isIPv4(src);
  const addr = v4 ? Buffer.concat([ip4(src), ip4(dst)]) : Buffer.concat([ip6(src), ip6(dst)]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(srcPort, 0);
  ports.writeUInt16BE(dstPort, 2);
  const body = Buffer.concat([addr, ports, tlvs]);
  const head = Buffer.from([0x21, v4 ? 0x11 : 0x21, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([sig, head, body]);
}

function ip4(a: string): Buffer {
  return Buffer.from(a.split('.').map(Number));
}

function ip6(a: string): Buffer {
  const m = /^(.*):(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  let text = a;
  let tail: number[] = [];
  if (m) {
    const q = ip4(m[2] as string);
    tail = [(q[0] as number) << 8 | (q[1] as number), (q[2] as number) << 8 | (q[3] as number)];
    text = `${m[1]}:`;
    if (text.endsWith(':::')) text = text.slice(0, -1);
  }
  const [l, r] = text.includes('::') ? text.split('::') as [string, string] : [text, undefined];
  const left = l ? l.split(':').filter(Boolean).map((h) => parseInt(h, 16)) : [];
  const right = r ? r.split(':').filter(Boolean).map((h) => parseInt(h, 16)) : [];
  const fill = 8 - left.length - right.length - tail.length;
  const groups = [...left, ...(r !== undefined ? Array(fill).fill(0) : []), ...right, ...tail];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(g, i * 2));
  return b;
}
