import { HeadObjectCommand, GetObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Clock } from '../clock.js';
import { FILE_ID, type ObjectStore, type SignedUpload } from './port.js';

export interface S3Options {
  endpoint: string;
  region: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
  urlTtlS: number;
}

/**
 * Any S3-compatible store (AWS, MinIO, R2, COS …) through presigned URLs (SigV4). The upload URL signs
 * Content-Length and Content-Type, so the client can upload only the announced size to a store that checks
 * signatures; the size check before a kind 3 event (`requireStored`) reads the stored size with
 * HeadObject either way. Signatures and `expiresAt` come from one reading of the injected clock.
 */
export class S3ObjectStore implements ObjectStore {
  private readonly s3: S3Client;

  constructor(private readonly opts: S3Options, private readonly clock: Clock) {
    this.s3 = new S3Client({
      region: opts.region,
      forcePathStyle: opts.forcePathStyle,
      // Presigned PUTs must not carry a checksum the client cannot know in advance.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(opts.endpoint !== '' ? { endpoint: opts.endpoint } : {}),
      ...(opts.accessKeyId !== '' ? { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } } : {}),
    });
  }

  async presignUpload(key: string, size: number, mime: string): Promise<SignedUpload> {
    const now = this.clock.now();
    const cmd = new PutObjectCommand({ Bucket: this.opts.bucket, Key: key, ContentLength: size, ContentType: mime });
    const url = await getSignedUrl(this.s3, cmd, {
      expiresIn: this.opts.urlTtlS, signingDate: new Date(now), signableHeaders: new Set(['content-type', 'content-length']),
    });
    return { url, method: 'PUT', headers: { 'content-type': mime, 'content-length': String(size) }, expiresAt: now + this.opts.urlTtlS * 1000 };
  }

  async presignDownload(key: string): Promise<{ url: string; expiresAt: number }> {
    const now = this.clock.now();
    const cmd = new GetObjectCommand({ Bucket: this.opts.bucket, Key: key });
    const url = await getSignedUrl(this.s3, cmd, { expiresIn: this.opts.urlTtlS, signingDate: new Date(now) });
    return { url, expiresAt: now + this.opts.urlTtlS * 1000 };
  }

  /** The object's size by HeadObject; null when it does not exist (or the key is no fid: never asked). */
  async sizeOf(key: string): Promise<number | null> {
    if (!FILE_ID.test(key)) return null;
    try {
      const head = await this.s3.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: key }));
      return head.ContentLength ?? null;
    } catch (e) {
      if (e instanceof S3ServiceException && (e.$metadata.httpStatusCode === 404 || e.name === 'NotFound' || e.name === 'NoSuchKey')) return null;
      throw e;
    }
  }

  async close(): Promise<void> {
    this.s3.destroy();
  }
}
