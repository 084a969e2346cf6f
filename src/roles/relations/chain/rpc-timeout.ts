/** Raised when one RPC call (or one whole read) exceeds its time bound. */
export class RpcTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} took longer than ${ms} ms`);
    this.name = 'RpcTimeoutError';
  }
}

/**
 * Settles with `work`, or rejects with RpcTimeoutError after `ms`. The work itself is not cancelled (a
 * JSON-RPC request cannot be): it finishes in the background and its result is dropped or cached.
 */
export function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new RpcTimeoutError(what, ms)), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
