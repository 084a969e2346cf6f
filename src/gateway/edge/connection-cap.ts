import type { Socket } from 'node:net';

/**
 * The cap on unauthenticated connections per client address: every TCP connection counts against its
 * address from accept until it closes or becomes an authenticated WebSocket (`authenticated`). HTTP
 * connections (tokens travel per request) count for as long as they stay open, so a client holding many
 * idle keep-alive connections, or many sockets that never authenticate, is refused more (429).
 * The address is the client's (a trusted proxy's PROXY header, see TrustedProxies); a connection from a
 * trusted proxy without one carries many clients' requests and is counted only once it is upgraded to a
 * WebSocket, against the address its X-Forwarded-For names.
 */
export class ConnectionCap {
  private readonly open = new Map<string, number>();
  private readonly counted = new WeakMap<Socket, string>();

  constructor(private readonly max: number, private readonly isExempt: (address: string) => boolean) {}

  /** Counts a connection against `address` (once per socket); false when that address is over the cap (the caller refuses it). */
  admit(socket: Socket, address: string): boolean {
    if (this.max <= 0 || this.counted.has(socket)) return true;
    if (this.isExempt(address)) return true;
    const n = this.open.get(address) ?? 0;
    if (n >= this.max) return false;
    this.open.set(address, n + 1);
    this.counted.set(socket, address);
    socket.once('close', () => this.release(socket));
    return true;
  }

  /** The connection authenticated (a WebSocket with a valid token): it no longer counts. */
  authenticated(socket: Socket | undefined): void {
    if (socket) this.release(socket);
  }

  /** Unauthenticated connections open from this address (for tests and metrics). */
  count(address: string): number {
    return this.open.get(address) ?? 0;
  }

  private release(socket: Socket): void {
    const address = this.counted.get(socket);
    if (address === undefined) return;
    this.counted.delete(socket);
    const n = (this.open.get(address) ?? 1) - 1;
    if (n <= 0) this.open.delete(address);
    else this.open.set(address, n);
  }
}
