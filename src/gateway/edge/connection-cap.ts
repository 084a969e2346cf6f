import type { Socket } from 'node:net';
import { clientAddress } from './address.js';

/**
 * The cap on unauthenticated connections per client address: every TCP connection counts against its
 * address from accept until it closes or becomes an authenticated WebSocket (`authenticated`). HTTP
 * connections (tokens travel per request) count for as long as they stay open, so a client holding many
 * idle keep-alive connections, or many sockets that never authenticate, is refused more (429).
 */
export class ConnectionCap {
  private readonly open = new Map<string, number>();
  private readonly counted = new WeakMap<Socket, string>();

  constructor(private readonly max: number, private readonly isExempt: (address: string) => boolean) {}

  /** Counts a new connection; false when its address is over the cap (the caller refuses it). */
  admit(socket: Socket): boolean {
    if (this.max <= 0) return true;
    const address = clientAddress(socket);
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
