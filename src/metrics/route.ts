import { timingSafeEqual, createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AppError } from '../errors/app-error.js';
import type { Logger } from '../log/logger.js';
import { sendError } from '../gateway/http/respond.js';
import type { Metrics } from './metrics.js';

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * `GET /metrics` in the Prometheus text format. With a token configured (METRICS_TOKEN) the scraper must
 * send `Authorization: Bearer <token>`, else 401 UNAUTHENTICATED; without one it is open (the metrics carry
 * no addresses, message content or per-user labels; see docs/operations.md).
 */
export function metricsRoute(metrics: Metrics, token: string, log: Logger) {
  const expected = token === '' ? null : digest(token);
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (expected) {
      const header = req.headers.authorization;
      const given = header?.startsWith('Bearer ') ? header.slice(7).trim() : '';
      if (!timingSafeEqual(digest(given), expected)) {
        sendError(res, new AppError('UNAUTHENTICATED', 'GET /metrics needs the operator\'s METRICS_TOKEN'), log);
        return;
      }
    }
    metrics.text().then(({ contentType, body }) => {
      res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    }, (e: unknown) => sendError(res, e, log));
  };
}
