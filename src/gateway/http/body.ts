import type { IncomingMessage } from 'node:http';
import { AppError } from '../../errors/app-error.js';

/**
 * Reads a JSON body of at most `maxBytes`: the declared length is checked before reading and the
 * actual bytes while reading, so an oversized or endless body costs at most `maxBytes` of memory.
 * With `timeoutMs`, a body still incomplete after that long is refused (REQUEST_TIMEOUT): a client
 * trickling bytes holds a connection for at most that.
 */
export function readJsonBody(req: IncomingMessage, maxBytes: number, timeoutMs?: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const type = req.headers['content-type'] ?? '';
    if (!/^application\/json\s*(;|$)/i.test(type)) {
      reject(new AppError('UNSUPPORTED_MEDIA_TYPE'));
      req.resume();
      return;
    }
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > maxBytes) {
      reject(new AppError('BODY_TOO_LARGE', `body exceeds ${maxBytes} bytes`));
      req.resume();
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
      if (failed) return;
      failed = true;
      chunks.length = 0;
      reject(new AppError('REQUEST_TIMEOUT', `the body did not arrive within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > maxBytes) {
        failed = true;
        chunks.length = 0;
        reject(new AppError('BODY_TOO_LARGE', `body exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      clearTimeout(timer);
      if (failed) return;
      try {
        resolve(JSON.parse(Buffer.concat(chunks, size).toString('utf8')));
      } catch {
        reject(new AppError('BAD_JSON'));
      }
    });
    req.on('error', () => {
      clearTimeout(timer);
      // The client went away mid-body (or the body timed out): its mistake, not the server's.
      if (!failed) reject(new AppError('BAD_REQUEST', 'the request body was cut off'));
      failed = true;
    });
  });
}
