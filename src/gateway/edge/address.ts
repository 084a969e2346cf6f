import type { Socket } from 'node:net';

/** The client's IP address as this process sees it (IPv4-mapped IPv6 written as plain IPv4). */
export function clientAddress(socket: Pick<Socket, 'remoteAddress'> | undefined): string {
  const a = socket?.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}
