import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { AppError } from '../../src/errors/app-error.js';
import { requireStored } from '../../src/files/port.js';
import { S3ObjectStore } from '../../src/files/s3.js';
import { startS3, type TestS3 } from '../support/s3.js';

const fid = (): string => randomBytes(16).toString('hex');

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof AppError) return e.code;
    throw e;
  }
  throw new Error('expected a rejection');
}

/** The S3 adapter against a real S3-compatible server (s3rver, in-process, on a loopback port). */
describe('S3ObjectStore on s3rver', () => {
  let s3: TestS3;
  let store: S3ObjectStore;
  const clock = { now: (): number => Date.now() };
  beforeAll(async () => {
    s3 = await startS3();
    store = new S3ObjectStore({
      endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true, urlTtlS: 600,
    }, clock);
  });
  afterAll(async () => {
    await store.close();
    await s3.close();
  });

  async function upload(key: string, body: Buffer, mime = 'application/pdf'): Promise<void> {
    const up = await store.presignUpload(key, body.length, mime);
    const res = await fetch(up.url, { method: up.method, headers: up.headers, body });
    expect(res.status).toBe(200);
  }

  it('presigns a PUT that signs Content-Length and Content-Type; the uploaded object passes the size check', async () => {
    const key = fid();
    const body = randomBytes(3000);
    const up = await store.presignUpload(key, body.length, 'application/pdf');
    const u = new URL(up.url);
    expect(`${u.origin}${u.pathname}`).toBe(`${s3.endpoint}/${s3.bucket}/${key}`);
    expect(u.searchParams.get('X-Amz-SignedHeaders')?.split(';')).toEqual(expect.arrayContaining(['content-length', 'content-type', 'host']));
    expect(u.searchParams.get('X-Amz-Expires')).toBe('600');
    expect(up.headers).toEqual({ 'content-type': 'application/pdf', 'content-length': String(body.length) });
    expect((await fetch(up.url, { method: 'PUT', headers: up.headers, body })).status).toBe(200);
    expect(await store.sizeOf(key)).toBe(body.length);
    await requireStored(store, key, body.length);
  });

  it('refuses a stated size the object does not have, and an object never uploaded, with FILE_NOT_FOUND', async () => {
    const key = fid();
    await upload(key, randomBytes(100));
    expect(await codeOf(requireStored(store, key, 101))).toBe('FILE_NOT_FOUND');
    expect(await codeOf(requireStored(store, key, 99))).toBe('FILE_NOT_FOUND');
    const never = fid();
    expect(await store.sizeOf(never)).toBeNull();
    expect(await codeOf(requireStored(store, never, 100))).toBe('FILE_NOT_FOUND');
    expect(await store.sizeOf('../not-a-fid')).toBeNull();
  });

  it('still refuses an upload of another length than presigned when the store does not enforce the signature', async () => {
    // s3rver does not check SigV4 (real S3 refuses this PUT: the signed content-length differs); the size
    // check reads what was stored, so the announced size cannot be faked either way.
    const key = fid();
    const up = await store.presignUpload(key, 500, 'text/plain');
    const res = await fetch(up.url, { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: randomBytes(20) });
    expect(res.status).toBe(200);
    expect(await store.sizeOf(key)).toBe(20);
    expect(await codeOf(requireStored(store, key, 500))).toBe('FILE_NOT_FOUND');
  });

  it('presigns a download URL that returns the bytes', async () => {
    const key = fid();
    const body = randomBytes(70_000);
    await upload(key, body, 'image/png');
    const down = await store.presignDownload(key);
    const res = await fetch(down.url);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(body);
    expect((await fetch((await store.presignDownload(fid())).url)).status).toBe(404);
  });

  it('signs with the injected clock, so expiresAt and the URL\'s own expiry agree', async () => {
    const at = Date.UTC(2030, 0, 2, 3, 4, 5);
    const fixed = new S3ObjectStore({
      endpoint: s3.endpoint, region: 'us-east-1', bucket: s3.bucket, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey,
      forcePathStyle: true, urlTtlS: 60,
    }, { now: () => at });
    try {
      for (const signed of [await fixed.presignUpload(fid(), 1, 'text/plain'), await fixed.presignDownload(fid())]) {
        const q = new URL(signed.url).searchParams;
        expect(q.get('X-Amz-Date')).toBe('20300102T030405Z');
        expect(q.get('X-Amz-Expires')).toBe('60');
        expect(signed.expiresAt).toBe(at + 60_000);
      }
    } finally {
      await fixed.close();
    }
  });
});
