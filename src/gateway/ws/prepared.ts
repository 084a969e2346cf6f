import type { Duplex } from 'node:stream';
import * as wsModule from 'ws';
import type { WebSocket } from 'ws';
import { corkForTurn } from './cork.js';

/** ws's frame builder (`Sender.frame`, exported by ws 8 but not declared in @types/ws). */
interface FrameOptions {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  mask: boolean;
  readOnly: boolean;
}
const Sender = (wsModule as unknown as { Sender: { frame(data: Buffer, options: FrameOptions): Buffer[] } }).Sender;

/** The parts of a ws connection a prepared write needs (ws 8 internals, stable across 8.x). */
interface WsInternals {
  _socket?: Duplex;
  _sender?: { _state?: number; _queue?: unknown[] };
}

/**
 * One complete server-to-client WebSocket frame (header + payload, unmasked, no compression: every face
 * runs with perMessageDeflate off) built once, so a push to thousands of connections writes the same
 * bytes to each instead of ws building a header and two writes per socket. Built with ws's own framer.
 */
export function preparedFrame(payload: Buffer, binary: boolean): Buffer {
  const parts = Sender.frame(payload, { fin: true, rsv1: false, opcode: binary ? 2 : 1, mask: false, readOnly: true });
  return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
}

/**
 * Writes a prepared frame straight to the connection's socket when ws's sender is idle (nothing queued
 * behind a compression or a Blob read: never the case with compression off, but checked), so the
 * bytes keep their place among the frames ws itself writes; otherwise sends `payload` through ws.
 * Corked for the turn like every other frame (`corkForTurn`) unless `cork` is false (a large fan-out:
 * one frame per socket, written at once; a socket already corked this turn still keeps the order).
 * `done` is called once the bytes were handed to the kernel (or the write failed).
 */
export function writePrepared(ws: WebSocket, wire: Buffer, payload: Buffer, binary: boolean, done?: () => void, cork = true): void {
  const internals = ws as unknown as WsInternals;
  const sender = internals._sender;
  const socket = internals._socket;
  if (socket && sender && (sender._state ?? 0) === 0 && (sender._queue?.length ?? 0) === 0) {
    if (cork) corkForTurn(socket);
    socket.write(wire, done);
    return;
  }
  ws.send(payload, { binary }, done);
}
