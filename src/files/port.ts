import { AppError } from '../errors/app-error.js';

/**
 * The object store port (files of the MsgPack face). Clients upload and download directly with the URLs
 * it signs; the server only signs URLs and checks that an object exists with its stated size before a
 * kind 3 event may reference it. Adapters: `LocalObjectStore` (embedded, under DATA_DIR) and
 * `S3ObjectStore` (any S3-compatible service).
 */
export interface SignedUpload {
  url: string;
  method: 'PUT';
  /** Headers the client must send with the upload. */
  headers: Record<string, string>;
  /** ms since the epoch. */
  expiresAt: number;
}

export interface ObjectStore {
  /** A URL that lets its holder upload exactly `size` bytes as object `key` until it expires. */
  presignUpload(key: string, size: number, mime: string): Promise<SignedUpload>;
  /** A URL that lets its holder download object `key` until it expires. */
  presignDownload(key: string): Promise<{ url: string; expiresAt: number }>;
  /** The stored size of object `key`, or null when it does not exist. */
  sizeOf(key: string): Promise<number | null>;
  close(): Promise<void>;
}

/** File ids are 32 lowercase hex characters chosen by the server at presign time. */
export const FILE_ID = /^[0-9a-f]{32}$/;

/**
 * The check before a kind 3 event may reference an object: it exists with exactly `size` bytes, else
 * FILE_NOT_FOUND. The store's own size is authoritative: a store that does not enforce the signed
 * Content-Length (or a client that bypassed it) cannot make the server announce a size it does not hold.
 */
export async function requireStored(store: Pick<ObjectStore, 'sizeOf'>, key: string, size: number): Promise<void> {
  const stored = await store.sizeOf(key);
  if (stored === null) throw new AppError('FILE_NOT_FOUND', 'no object was uploaded for this fid');
  if (stored !== size) throw new AppError('FILE_NOT_FOUND', `the uploaded object holds ${stored} bytes, not ${size}`);
}
