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

  toJSON(): { code: ErrorCode; message: string } {
    return { code: this.code, message: this.message };
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
