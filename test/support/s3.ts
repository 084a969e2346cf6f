import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

/** s3rver's built-in account: it looks the access key up, but does not check SigV4 signatures. */
export const S3RVER_KEY = 'S3RVER';

export interface TestS3 {
  /** http://127.0.0.1:<port>, for S3_ENDPOINT (path-style). */
  endpoint: string;
  bucket: string;
  accessKeyId: string;
  secretAccessKey: string;
  close(): Promise<void>;
}

/**
 * A real S3-compatible server in this process (s3rver) on a free loopback port, with one empty bucket and
 * its objects under a temporary directory that `close` removes.
 */
export async function startS3(bucket = 'rim-files'): Promise<TestS3> {
  const directory = mkdtempSync(path.join(tmpdir(), 'rim-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`, bucket, accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY,
    async close() {
      // Keep-alive sockets of the SDK and of fetch would hold close() open until they time out.
      server.httpServer?.closeAllConnections();
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
