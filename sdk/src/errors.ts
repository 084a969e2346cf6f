import { ERROR_CATALOGUE, type ErrorCode } from '../../src/errors/catalogue.js';

/**
 * Codes the SDK itself raises (no server answered, or the answer could not be used). Together with the
 * server's catalogue (`src/errors/catalogue.ts`, docs/errors.md) they are every code an `ImError` carries.
 */
export const CLIENT_ERRORS = {
  NETWORK: { status: 0, temporary: true, text: 'The server could not be reached.' },
  TIMEOUT: { status: 0, temporary: true, text: 'The server did not answer in time.' },
  BAD_RESPONSE: { status: 0, temporary: true, text: 'The server answered something this client cannot read.' },
  CLOSED: { status: 0, temporary: false, text: 'The client was closed.' },
  SIGNER_FAILED: { status: 0, temporary: false, text: 'The wallet or signer refused or failed to sign.' },
  INVALID_ARGUMENT: { status: 0, temporary: false, text: 'The SDK was called with a bad argument.' },
} as const;

export type ClientErrorCode = keyof typeof CLIENT_ERRORS;
export type ImErrorCode = ErrorCode | ClientErrorCode;

/** The one error type the SDK throws and emits. Branch on `code`, never on `message`. */
export class ImError extends Error {
  override readonly name = 'ImError';
  /** HTTP status of the answer (the catalogue's for the code when it came over a socket; 0: none). */
  readonly status: number;
  /** Retrying the same request later may succeed (from the catalogue). */
  readonly temporary: boolean;
  /** The catalogue's numeric form (0 for client-side codes). */
  readonly num: number;

  constructor(readonly code: ImErrorCode, message?: string, opts: { status?: number; cause?: unknown } = {}) {
    const server = (ERROR_CATALOGUE as Record<string, { num: number; http: number; temporary: boolean; text: string } | undefined>)[code];
    const client = (CLIENT_ERRORS as Record<string, { status: number; temporary: boolean; text: string } | undefined>)[code];
    super(message ?? server?.text ?? client?.text ?? code, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.status = opts.status ?? server?.http ?? client?.status ?? 0;
    this.temporary = server?.temporary ?? client?.temporary ?? false;
    this.num = server?.num ?? 0;
  }
}

/** True when `e` is an ImError, optionally with that code. */
export function isImError(e: unknown, code?: ImErrorCode): e is ImError {
  return e instanceof ImError && (code === undefined || e.code === code);
}

/** Known code from a server answer; an unknown one becomes BAD_RESPONSE (keeping the text). */
export function fromServer(code: unknown, message: unknown, status?: number): ImError {
  const text = typeof message === 'string' ? message : undefined;
  if (typeof code === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, code)) {
    return new ImError(code as ErrorCode, text, status !== undefined ? { status } : {});
  }
  return new ImError('BAD_RESPONSE', `unknown error code ${String(code)}: ${text ?? ''}`, status !== undefined ? { status } : {});
}

/** Wraps anything thrown into an ImError (an ImError passes through unchanged). */
export function toImError(e: unknown, fallback: ClientErrorCode = 'NETWORK'): ImError {
  if (e instanceof ImError) return e;
  return new ImError(fallback, e instanceof Error ? e.message : String(e), { cause: e });
}
