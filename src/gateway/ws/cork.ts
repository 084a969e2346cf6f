import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

const corked = new WeakSet<Duplex>();
/** The sockets corked during this turn, uncorked together by one setImmediate (not one closure per socket). */
let pending: Duplex[] = [];

function uncorkAll(): void {
  const sockets = pending;
  pending = [];
  for (const socket of sockets) {
    corked.delete(socket);
    socket.uncork();
  }
}

/**
 * Corks a socket until the end of this event-loop turn (once per turn), so every frame written to it
 * meanwhile leaves in a single write: an /im sender gets its acks and pushes, a /ws device several
 * pushes, per turn, and one writev instead of one syscall per frame is measurably cheaper at these rates.
 */
export function corkForTurn(socket: Duplex): void {
  if (corked.has(socket)) return;
  corked.add(socket);
  socket.cork();
  if (pending.length === 0) setImmediate(uncorkAll);
  pending.push(socket);
}

/**
 * Sends a frame, coalesced with every other frame to the same socket within this turn (`corkForTurn`).
 * Reaches for ws's underlying socket (`_socket`, stable across ws 8); without it, frames are simply
 * sent one by one.
 */
export function sendCorked(ws: WebSocket, data: string | Buffer, binary: boolean): void {
  const socket = (ws as unknown as { _socket?: Duplex })._socket;
  if (socket) corkForTurn(socket);
  ws.send(data, { binary });
}
