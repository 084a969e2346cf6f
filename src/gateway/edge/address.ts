import type { IncomingMessage } from 'node:http';
import { BlockList, isIP, type Socket } from 'node:net';

/** An IPv4-mapped IPv6 address written as plain IPv4; anything else as given. */
export function plainAddress(a: string): string {
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

/** The source address a PROXY protocol header gave a connection (set by the edge before HTTP sees it). */
const proxied = new WeakMap<object, string>();
/** The client address resolved for a request or upgrade (set by the edge, read by every face). */
const resolved = new WeakMap<object, string>();

/** Records the client address a PROXY protocol v2 header carried for this connection. */
export function setProxiedAddress(socket: Socket, address: string): void {
  proxied.set(socket, plainAddress(address));
}

/**
 * The address of a connection: the PROXY header's source when a trusted proxy sent one, else the TCP
 * peer (IPv4-mapped IPv6 written as plain IPv4).
 */
export function clientAddress(socket: Pick<Socket, 'remoteAddress'> | undefined): string {
  if (socket === undefined) return '';
  return proxied.get(socket) ?? plainAddress(socket.remoteAddress ?? '');
}

/** The client address of a request as the edge resolved it (X-Forwarded-For from a trusted proxy), else its connection's. */
export function requestAddress(req: IncomingMessage): string {
  return resolved.get(req) ?? clientAddress(req.socket);
}

/**
 * TRUSTED_PROXIES: the addresses and CIDR ranges of the reverse proxies in front of this process. Only a
 * connection whose TCP peer is one of them may send a PROXY protocol v2 header, and only for such a
 * connection is X-Forwarded-For read; for everyone else the TCP peer is the client, whatever it sends.
 */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly empty: boolean;

  constructor(entries: readonly string[]) {
    for (const e of entries) {
      const [addr, bits] = e.split('/') as [string, string | undefined];
      const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.list.addAddress(addr, type);
      else this.list.addSubnet(addr, Number(bits), type);
    }
    this.empty = entries.length === 0;
  }

  /** A problem with an entry of TRUSTED_PROXIES (for the configuration check), or null. */
  static problem(entry: string): string | null {
    const [addr, bits, more] = entry.split('/');
    const v = isIP(addr ?? '');
    if (v === 0 || more !== undefined) return `TRUSTED_PROXIES entries are IP addresses or CIDR ranges (10.0.0.0/8, fd00::/8), got "${entry}"`;
    if (bits !== undefined && (!/^\d{1,3}$/.test(bits) || Number(bits) > (v === 4 ? 32 : 128))) return `TRUSTED_PROXIES: "${entry}" has a bad prefix length`;
    return null;
  }

  has(address: string): boolean {
    if (this.empty) return false;
    const a = plainAddress(address);
    const v = isIP(a);
    if (v === 0) return false;
    return this.list.check(a, v === 6 ? 'ipv6' : 'ipv4');
  }

  /**
   * The client address of a request: the hops are X-Forwarded-For (left to right), then the connection's
   * PROXY source (if any), then the TCP peer. Walking from the right, every hop that is a trusted proxy
   * is skipped; the first one that is not is the client. X-Forwarded-For is read only when the hop to
   * its right is trusted, so a client cannot name itself by sending the header.
   */
  resolve(req: IncomingMessage): string {
    const peer = plainAddress(req.socket.remoteAddress ?? '');
    if (!this.has(peer)) return peer;
    let hop = proxied.get(req.socket) ?? peer;
    if (this.has(hop)) {
      const header = req.headers['x-forwarded-for'];
      const hops = (Array.isArray(header) ? header.join(',') : header ?? '').split(',');
      // Bounded: a header of thousands of hops costs no more than its first 32 from the right.
      for (let i = hops.length - 1, n = 0; i >= 0 && n < 32; i--, n++) {
        const h = plainAddress((hops[i] as string).trim());
        if (isIP(h) === 0) break; // a hop that is no address ends what can be believed
        hop = h;
        if (!this.has(h)) break;
      }
    }
    resolved.set(req, hop);
    return hop;
  }
}
