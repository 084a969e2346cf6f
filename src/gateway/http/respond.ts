import type { ServerResponse } from 'node:http';
import { AppError, clientMistake, toAppError } from '../../errors/app-error.js';
import type { Logger } from '../../log/logger.js';

export function sendJson(res: ServerResponse, status: number, json: string): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}

/** The one error body of every REST answer: `{"error":{"code","message"}}` with the catalogue's status. */
export function sendError(res: ServerResponse, e: unknown, log: Logger): void {
  const err = e instanceof AppError ? e : clientMistake(e) ?? toAppError(e);
  // A client's mistake is not the server's error: debug, one line, no stack; only INTERNAL is an error.
  if (err.code === 'INTERNAL') log.error({ err: e }, 'unexpected error');
  else log.debug({ code: err.code, method: res.req?.method, path: res.req?.url?.slice(0, 200) }, 'request refused');
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // Closing after an early rejection stops a client from streaming the rest of an oversized body.
  if (err.code === 'BODY_TOO_LARGE' || err.code === 'REQUEST_TIMEOUT') res.setHeader('connection', 'close');
  const retryAfterMs = err.retryAfterMs;
  if (retryAfterMs !== undefined) res.setHeader('retry-after', String(Math.ceil(retryAfterMs / 1000)));
  sendJson(res, err.httpStatus, JSON.stringify({ error: err.toJSON() }));
}
