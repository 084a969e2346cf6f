import { randomUUID } from 'node:crypto';

/** What an incoming `X-Request-Id` may look like to be kept: 1-128 URL-safe/base64/uuid characters, nothing else. */
const WELL_FORMED = /^[A-Za-z0-9._~:+/=-]{1,128}$/;

/**
 * The id of a request (and of the WebSocket connection an upgrade opens): the client's `X-Request-Id` when it
 * is one well-formed header, else a fresh UUID. It is echoed in the response's `X-Request-Id` and carried by
 * every log line about the request (`reqId`) or connection (`conn`).
 */
export function requestId(header: string | string[] | undefined): string {
  return typeof header === 'string' && WELL_FORMED.test(header) ? header : randomUUID();
}
