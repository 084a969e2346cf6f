import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { clientAddress, plainAddress, setProxiedAddress, TrustedProxies } from '../edge/address.js';
import { ConnectionCap } from '../edge/connection-cap.js';
import { readProxyHeader } from '../edge/proxy-protocol.js';
import type { OriginPolicy } from '../edge/origin.js';
import { AppError } from '../../errors/app-error.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../../errors/catalogue.js';
import type { Logger } from '../../log/logger.js';
import { sendError } from './respond.js';

const REASONS: Record<number, string> = { 400: 'Bad Request', 403: 'Forbidden', 404: 'Not Found', 408: 'Request Timeout', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large' };

/** A catalogue error written straight to a socket that has no ServerResponse (refused connection or upgrade). */
export function writeRawError(socket: Duplex, code: ErrorCode, message?: string, headers: Record<string, string> = {}): void {
  if (socket.destroyed) return;
  const { http } = ERROR_CATALOGUE[code];
  const body = JSON.stringify({ error: new AppError(code, message).toJSON() });
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  if (socket.writable) {
    socket.end(`HTTP/1.1 ${http} ${REASONS[http] ?? 'Error'}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n`
      + `content-length: ${Buffer.byteLength(body)}\r\n${extra}\r\n${body}`);
  }
  setTimeout(() => socket.destroy(), 1000).unref();
}

/** What the upgrade handshake needs, checked before `ws` sees it so that every refusal carries a catalogue code. */
function handshakeProblem(req: IncomingMessage): string | null {
  if (req.method !== 'GET') return 'a WebSocket upgrade is a GET';
  if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') return 'Upgrade must be websocket';
  const key = req.headers['sec-websocket-key'];
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key)) return 'Sec-WebSocket-Key is missing or malformed';
  const version = req.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') return 'Sec-WebSocket-Version must be 13';
  return null;
}

export interface HttpEdgeOptions {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  maxUnauthConnectionsPerAddress: number;
  isExempt: (address: string) => boolean;
  /** TRUSTED_PROXIES: the only peers whose PROXY v2 header and X-Forwarded-For are believed. */
  trustedProxies?: readonly string[];
  origins: OriginPolicy;
  log: Logger;
}

/**
 * The HTTP server's outer edge, before any route: timeouts for headers and whole requests (slowloris),
 * the cap on unauthenticated connections per address, malformed requests answered with catalogue codes
 * (never a 500, never an error-level log line), the Origin check and CORS answers for REST, and the same
 * Origin check plus handshake validation for the WebSocket upgrade. The client address every face
 * limits by is resolved here (TRUSTED_PROXIES: a PROXY v2 header at the start of a connection from a
 * trusted proxy, X-Forwarded-For on its requests), before HTTP or any route sees the connection.
 */
export class HttpEdge {
  readonly cap: ConnectionCap;
  readonly trusted: TrustedProxies;
  /** Connections from a trusted proxy whose first bytes are being read (closed by close()). */
  private readonly reading = new Set<Socket>();

  constructor(private readonly opts: HttpEdgeOptions) {
    this.cap = new ConnectionCap(opts.maxUnauthConnectionsPerAddress, opts.isExempt);
    this.trusted = new TrustedProxies(opts.trustedProxies ?? []);
  }

  /**
   * Sets the timeouts and listens for connections and client errors on `server`. HTTP's own connection
   * listener is taken off and called here once the connection is admitted, so that a trusted proxy's
   * PROXY header is read off the socket before the HTTP parser sees a byte.
   */
  attach(server: Server): void {
    server.headersTimeout = this.opts.headersTimeoutMs;
    server.requestTimeout = this.opts.requestTimeoutMs;
    const httpListeners = server.listeners('connection') as ((socket: Socket) => void)[];
    server.removeAllListeners('connection');
    const toHttp = (socket: Socket): void => {
      for (const l of httpListeners) l.call(server, socket);
    };
    const admit = (socket: Socket, address: string | null): void => {
      // null: a trusted proxy's connection without a PROXY header, carrying many clients (counted at upgrade).
      if (address !== null && !this.cap.admit(socket, address)) {
        this.opts.log.debug({ address }, 'connection refused: too many unauthenticated connections');
        writeRawError(socket, 'TOO_MANY_CONNECTIONS', undefined, { 'retry-after': '10' });
        return;
      }
      toHttp(socket);
    };
    server.on('connection', (socket: Socket) => {
      const peer = plainAddress(socket.remoteAddress ?? '');
      if (!this.trusted.has(peer)) {
        admit(socket, peer);
        return;
      }
      this.reading.add(socket);
      readProxyHeader(socket, this.opts.headersTimeoutMs).then((source) => {
        this.reading.delete(socket);
        if (source !== undefined) setProxiedAddress(socket, source);
        admit(socket, source === undefined ? null : clientAddress(socket));
        socket.resume();
      }, (err: Error) => {
        this.reading.delete(socket);
        this.opts.log.debug({ peer, reason: err.message }, 'connection from a trusted proxy refused');
        writeRawError(socket, 'BAD_REQUEST', err.message);
      });
    });
    server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      const code: ErrorCode = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'REQUEST_TIMEOUT'
        : err.code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : 'BAD_REQUEST';
      this.opts.log.debug({ code, cause: err.code }, 'malformed request refused');
      if (err.code === 'ECONNRESET' || !socket.writable) {
        socket.destroy();
        return;
      }
      writeRawError(socket, code);
    });
  }

  /** Ends connections still being read for a PROXY header (the server's close does not know them). */
  close(): void {
    for (const s of this.reading) s.destroy();
    this.reading.clear();
  }

  /** Wraps the request handler: Origin check and CORS first, and nothing it throws escapes as a crash. */
  request(handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    return (req, res) => {
      try {
        if (!this.trusted.empty) this.trusted.resolve(req);
        if (!this.opts.origins.allows(req)) {
          req.resume();
          sendError(res, new AppError('ORIGIN_NOT_ALLOWED', 'this Origin may not use this server (CORS_ORIGINS)'), this.opts.log);
          return;
        }
        if (this.opts.origins.apply(req, res)) return;
        handler(req, res);
      } catch (e) {
        sendError(res, e, this.opts.log);
      }
    };
  }

  /**
   * Wraps the upgrade handler: the path (or null when the URL cannot be read), the Origin check and the
   * handshake are checked first; a refusal is an HTTP answer with a catalogue code.
   */
  upgrade(handler: (pathname: string, req: IncomingMessage, socket: Duplex, head: Buffer) => void): (req: IncomingMessage, socket: Duplex, head: Buffer) => void {
    return (req, socket, head) => {
      socket.on('error', () => socket.destroy());
      let pathname: string;
      try {
        pathname = new URL(req.url ?? '/', 'http://x').pathname;
      } catch {
        writeRawError(socket, 'BAD_REQUEST', 'the request URL cannot be read');
        return;
      }
      if (!this.trusted.empty) {
        const address = this.trusted.resolve(req);
        // A WebSocket through a trusted proxy without a PROXY header is one client's from here on: it
        // counts against the cap as the client's until it authenticates.
        if (!this.cap.admit(socket as Socket, address)) {
          writeRawError(socket, 'TOO_MANY_CONNECTIONS', undefined, { 'retry-after': '10' });
          return;
        }
      }
      if (!this.opts.origins.allows(req)) {
        writeRawError(socket, 'ORIGIN_NOT_ALLOWED', 'this Origin may not open a WebSocket here (CORS_ORIGINS)');
        return;
      }
      const problem = handshakeProblem(req);
      if (problem) {
        writeRawError(socket, 'BAD_REQUEST', problem);
        return;
      }
      try {
        handler(pathname, req, socket, head);
      } catch (e) {
        this.opts.log.error({ err: e }, 'upgrade failed');
        writeRawError(socket, 'INTERNAL');
      }
    };
  }
}
