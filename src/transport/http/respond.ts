import type { ServerResponse } from 'node:http';
import { toAppError } from '../../errors/app-error.js';
import type { Logger } from '../../log/logger.js';

export function sendJson(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}

/** The one error body of every REST answer: `{"error":{"code","message"}}` with the catalogue's status. */
export function sendError(res: ServerResponse, e: unknown, log: Logger): void {
  const err = toAppError(e);
  if (err.code === 'INTERNAL') log.error({ err: e }, 'unexpected error');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Closing after an early rejection stops a client from streaming the rest of an oversized body.
  if (err.code === 'BODY_TOO_LARGE') res.setHeader('connection', 'close');
  sendJson(res, err.httpStatus, JSON.stringify({ error: err.toJSON() }));
}
