import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { AppError } from '../errors/app-error.js';
import type { ErrorCode } from '../errors/catalogue.js';
import type { Clock } from '../clock.js';
import { FILE_ID, type ObjectStore, type SignedUpload } from './port.js';

export interface LocalStoreOptions {
  dataDir: string;
  /** HMAC key; empty: read or create `files-secret` under dataDir. */
  secret: string;
  urlTtlS: number;
  /** Base URL clients use to reach this process; resolved lazily (the port is known only after listen). */
  baseUrl: () => string;
}

/**
 * The embedded object store: files under DATA_DIR/objects, uploaded and downloaded through this process
 * at `/files/<fid>` with URLs that carry an HMAC-SHA256 signature over operation, key, size and expiry.
 * A URL cannot be reused for another file, another size or after it expires.
 */
export class LocalObjectStore implements ObjectStore {
  private readonly dir: string;
  private readonly key: Buffer;

  constructor(private readonly opts: LocalStoreOptions, private readonly clock: Clock) {
    this.dir = path.join(opts.dataDir, 'objects');
    mkdirSync(this.dir, { recursive: true });
    this.key = opts.secret !== '' ? Buffer.from(opts.secret, 'utf8') : loadOrCreateSecret(path.join(opts.dataDir, 'files-secret'));
  }

  private sign(text: string): string {
    return createHmac('sha256', this.key).update(text).digest('base64url');
  }

  private verify(text: string, sig: string | null, exp: number): void {
    const want = Buffer.from(this.sign(text));
    const got = Buffer.from(sig ?? '');
    if (got.length !== want.length || !timingSafeEqual(got, want) || !(exp > this.clock.now())) {
      throw new AppError('BAD_SIGNATURE_URL');
    }
  }

  async presignUpload(key: string, size: number, mime: string): Promise<SignedUpload> {
    const exp = this.clock.now() + this.opts.urlTtlS * 1000;
    const sig = this.sign(`put\n${key}\n${size}\n${exp}`);
    return {
      url: `${this.opts.baseUrl()}/files/${key}?size=${size}&exp=${exp}&sig=${sig}`, method: 'PUT',
      headers: { 'content-type': mime, 'content-length': String(size) }, expiresAt: exp,
    };
  }

  async presignDownload(key: string): Promise<{ url: string; expiresAt: number }> {
    const exp = this.clock.now() + this.opts.urlTtlS * 1000;
    return { url: `${this.opts.baseUrl()}/files/${key}?exp=${exp}&sig=${this.sign(`get\n${key}\n${exp}`)}`, expiresAt: exp };
  }

  async sizeOf(key: string): Promise<number | null> {
    if (!FILE_ID.test(key)) return null;
    try {
      return statSync(path.join(this.dir, key)).size;
    } catch {
      return null;
    }
  }

  async close(): Promise<void> {}

  /** Serves PUT and GET /files/<fid>; answers true when the request was for this store. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/files\/([^/]+)$/.exec(url.pathname);
    if (!m) return false;
    try {
      const fid = m[1] as string;
      if (!FILE_ID.test(fid)) throw new AppError('NOT_FOUND');
      const exp = Number(url.searchParams.get('exp'));
      const sig = url.searchParams.get('sig');
      if (req.method === 'PUT') {
        const size = Number(url.searchParams.get('size'));
        this.verify(`put\n${fid}\n${url.searchParams.get('size') ?? ''}\n${url.searchParams.get('exp') ?? ''}`, sig, exp);
        this.receive(fid, size, req, res);
      } else if (req.method === 'GET' || req.method === 'HEAD') {
        this.verify(`get\n${fid}\n${url.searchParams.get('exp') ?? ''}`, sig, exp);
        this.serve(fid, req.method === 'HEAD', res);
      } else {
        throw new AppError('NOT_FOUND');
      }
    } catch (e) {
      req.resume();
      fail(res, e instanceof AppError ? e.code : 'INTERNAL');
    }
    return true;
  }

  private receive(fid: string, size: number, req: IncomingMessage, res: ServerResponse): void {
    const final = path.join(this.dir, fid);
    if (existsSync(final)) throw new AppError('ID_CONFLICT', 'this file was uploaded already');
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) !== size) throw new AppError('INVALID_FIELD', 'content-length differs from the signed size');
    const tmp = `${final}.${randomBytes(4).toString('hex')}.part`;
    const out = createWriteStream(tmp);
    let received = 0;
    let failed = false;
    const abort = (code: ErrorCode): void => {
      if (failed) return;
      failed = true;
      out.destroy();
      try { unlinkSync(tmp); } catch { /* not created */ }
      req.resume();
      fail(res, code);
    };
    req.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > size) abort('BODY_TOO_LARGE');
    });
    req.on('error', () => abort('INVALID_FIELD'));
    req.pipe(out);
    out.on('finish', () => {
      if (failed) return;
      if (received !== size) return abort('INVALID_FIELD');
      renameSync(tmp, final);
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ fid, size }));
    });
    out.on('error', () => abort('INTERNAL'));
  }

  private serve(fid: string, headOnly: boolean, res: ServerResponse): void {
    const file = path.join(this.dir, fid);
    let size: number;
    try {
      size = statSync(file).size;
    } catch {
      throw new AppError('NOT_FOUND');
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    if (headOnly) res.end();
    else createReadStream(file).pipe(res);
  }
}

function fail(res: ServerResponse, code: ErrorCode): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const err = new AppError(code);
  res.writeHead(err.httpStatus, { 'content-type': 'application/json', connection: 'close' }).end(JSON.stringify({ error: err.toJSON() }));
}

function loadOrCreateSecret(file: string): Buffer {
  if (existsSync(file)) return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
  const secret = randomBytes(32);
  writeFileSync(file, secret.toString('hex'), { mode: 0o600 });
  return secret;
}
