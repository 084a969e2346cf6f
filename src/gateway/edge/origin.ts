import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Browser access: which web origins may call REST cross-origin and open `/ws` and `/im`. Allowed are
 * requests without an Origin header (non-browser clients), same-origin pages (Origin's host equals the
 * Host the request was sent to, e.g. the web client served at `/`), and the origins of CORS_ORIGINS
 * (`https://app.example`, `chrome-extension://<id>`, or `*` for any). No credentials are ever allowed
 * (tokens travel in the Authorization header, never in cookies), so `*` stays a plain wildcard.
 */
export class OriginPolicy {
  private readonly any: boolean;
  private readonly listed: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.any = origins.includes('*');
    this.listed = new Set(origins.filter((o) => o !== '*').map((o) => o.toLowerCase()));
  }

  /** Whether the request's Origin may use this server. */
  allows(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    return this.sameOrigin(origin, req.headers.host) || this.crossAllowed(origin);
  }

  private crossAllowed(origin: string): boolean {
    return this.any || this.listed.has(origin.toLowerCase());
  }

  private sameOrigin(origin: string, host: string | undefined): boolean {
    if (host === undefined) return false;
    const m = /^https?:\/\/([^/]+)$/i.exec(origin);
    return m !== null && (m[1] as string).toLowerCase() === host.toLowerCase();
  }

  /**
   * Adds the CORS answer headers for an allowed cross-origin request; answers a preflight (OPTIONS with
   * Access-Control-Request-Method) itself and returns true when it did.
   */
  apply(req: IncomingMessage, res: ServerResponse): boolean {
    const origin = req.headers.origin;
    if (origin === undefined || this.sameOrigin(origin, req.headers.host) || !this.crossAllowed(origin)) return false;
    res.setHeader('access-control-allow-origin', this.any ? '*' : origin);
    res.setHeader('vary', 'Origin');
    res.setHeader('access-control-expose-headers', 'Retry-After');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      res.writeHead(204, {
        'access-control-allow-methods': 'GET, POST, PUT, DELETE',
        'access-control-allow-headers': 'authorization, content-type',
        'access-control-max-age': '600',
        'content-length': '0',
      });
      res.end();
      return true;
    }
    return false;
  }
}
