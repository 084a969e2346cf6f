import { ERROR_CATALOGUE, type ErrorCode } from './catalogue.js';

/** The one error type the domain throws. Code branches on `.code`, never on the text. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>) {
    super(message ?? ERROR_CATALOGUE[code].text);
    this.name = 'AppError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return ERROR_CATALOGUE[this.code].http;
  }

  get temporary(): boolean {
    return ERROR_CATALOGUE[this.code].temporary;
  }

  /** Milliseconds after which a RATE_LIMITED request may be retried, when the refusal says. */
  get retryAfterMs(): number | undefined {
    const v = this.details?.['retryAfterMs'];
    return typeof v === 'number' ? v : undefined;
  }

  toJSON(): { code: ErrorCode; message: string; retryAfterMs?: number; details?: Record<string, unknown> } {
    const retryAfterMs = this.retryAfterMs;
    const out: { code: ErrorCode; message: string; retryAfterMs?: number; details?: Record<string, unknown> } = { code: this.code, message: this.message };
    if (retryAfterMs !== undefined) out.retryAfterMs = retryAfterMs;
    // The details a client may branch on (docs/e2ee.md: MLS_STALE_EPOCH's currentEpoch); the rest stays in the log.
    const d = this.details;
    if (d && (typeof d['currentEpoch'] === 'number' || typeof d['reason'] === 'string')) {
      out.details = {};
      if (typeof d['currentEpoch'] === 'number') out.details['currentEpoch'] = d['currentEpoch'];
      if (typeof d['reason'] === 'string') out.details['reason'] = d['reason'];
    }
    return out;
  }
}

export function makeError(code: ErrorCode, message?: string, details?: Record<string, unknown>): AppError {
  return new AppError(code, message, details);
}

/** Throws `code` unless `condition` holds. */
export function assert(condition: unknown, code: ErrorCode, message?: string): asserts condition {
  if (!condition) throw new AppError(code, message);
}

export function isAppError(e: unknown, code?: ErrorCode): e is AppError {
  return e instanceof AppError && (code === undefined || e.code === code);
}

/**
 * Any thrown value as an AppError. Unknown errors become INTERNAL: clients see only the catalogue text
 * (`toJSON`), while `details.cause` keeps the original for the server's log.
 */
export function toAppError(e: unknown): AppError {
  if (e instanceof AppError) return e;
  return new AppError('INTERNAL', undefined, { cause: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
}

/**
 * An error a library raised for a request the client got wrong (it carries a 4xx `status`, as Express's
 * router does for a path whose percent-encoding cannot be decoded, or body parsers for a bad body) as
 * the catalogue code that fits; null for anything else. Only the HTTP transport uses it: there a 4xx
 * `status` comes from the request's own parsing.
 */
export function clientMistake(e: unknown): AppError | null {
  if (typeof e !== 'object' || e === null) return null;
  const o = e as { status?: unknown; statusCode?: unknown; message?: unknown };
  const status = typeof o.status === 'number' ? o.status : typeof o.statusCode === 'number' ? o.statusCode : NaN;
  if (!(status >= 400 && status < 500)) return null;
  const code = status === 413 ? 'BODY_TOO_LARGE' : status === 415 ? 'UNSUPPORTED_MEDIA_TYPE' : status === 404 ? 'NOT_FOUND' : status === 408 ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
  const text = typeof o.message === 'string' ? o.message.slice(0, 200) : undefined;
  return new AppError(code, text);
}
