import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { dmCid } from '../../src/roles/chat/ids.js';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity } from '../support/messages.js';
import { startS3, type TestS3 } from '../support/s3.js';
import { login, startServer, type TestServer } from '../support/server.js';

/** Files of the /im face with FILES_STORE=s3 pointing at a real S3-compatible server (s3rver). */
describe('/im files on an S3-compatible store', () => {
  let s3: TestS3;
  let srv: TestServer;
  let a: ImClient;
  let b: ImClient;
  let cid: string;
  beforeAll(async () => {
    s3 = await startS3();
    srv = await startServer({
      requireName: false, filesStore: 's3', s3Endpoint: s3.endpoint, s3Region: 'us-east-1', s3Bucket: s3.bucket,
      s3AccessKeyId: s3.accessKeyId, s3SecretAccessKey: s3.secretAccessKey, s3ForcePathStyle: true,
    });
    const [alice, bob] = [makeIdentity(), makeIdentity()];
    a = await ImClient.open(imUrl(srv.wsUrl), await login(srv.url, alice));
    b = await ImClient.open(imUrl(srv.wsUrl), await login(srv.url, bob));
    cid = dmCid(alice.address, bob.address);
  });
  afterAll(async () => {
    a.close();
    b.close();
    await srv.close();
    await s3.close();
  });

  const fileEvent = (fid: unknown, size: number, content = Buffer.alloc(0)): Record<number, unknown> => ({
    1: cid, 2: 3, 7: { 0: fid, 1: 'report.pdf', 2: size, 3: 'application/pdf', 4: createHash('sha256').update(content).digest('hex') },
  });

  it('presigns an upload to the bucket, accepts kind 3 once uploaded, and the peer downloads it', async () => {
    const content = randomBytes(5000);
    const p = await a.ok(9, { 0: 'report.pdf', 1: content.length, 2: 'application/pdf' });
    const uploadUrl = p.get(1) as string;
    expect(uploadUrl.startsWith(`${s3.endpoint}/${s3.bucket}/${String(p.get(0))}?`)).toBe(true);
    expect(p.get(2)).toBe('PUT');
    const headers = Object.fromEntries(p.get(3) as M) as Record<string, string>;
    expect((await fetch(uploadUrl, { method: 'PUT', headers, body: content })).status).toBe(200);

    const sent = await a.ok(3, fileEvent(p.get(0), content.length, content));
    const ev = await b.push((e) => e.get(1) === cid && e.get(3) === sent.get(0));
    expect(ev.get(2)).toBe(3);
    const data = ev.get(7) as M;
    expect(data.get(0)).toBe(p.get(0));
    expect(data.get(2)).toBe(content.length);
    const url = data.get(5) as string;
    expect(url.startsWith(`${s3.endpoint}/${s3.bucket}/`)).toBe(true);
    const got = await fetch(url);
    expect(got.status).toBe(200);
    expect(Buffer.from(await got.arrayBuffer())).toEqual(content);

    // A later query signs a fresh URL that works too.
    const [served] = (await b.ok(7, { 0: cid, 1: sent.get(0), 2: sent.get(0) })).get(0) as M[];
    const again = await fetch((served?.get(7) as M).get(5) as string);
    expect(Buffer.from(await again.arrayBuffer())).toEqual(content);
  });

  it('refuses kind 3 for an object never uploaded, or stated with another size, and stores nothing', async () => {
    const last = await srv.app.store.lastSeq(cid);
    const never = await a.ok(9, { 0: 'ghost.bin', 1: 10 });
    expect(await a.err(3, fileEvent(never.get(0), 10))).toBe('FILE_NOT_FOUND');

    const content = randomBytes(64);
    const p = await a.ok(9, { 0: 'short.bin', 1: content.length });
    const headers = Object.fromEntries(p.get(3) as M) as Record<string, string>;
    expect((await fetch(p.get(1) as string, { method: 'PUT', headers, body: content })).status).toBe(200);
    expect(await a.err(3, fileEvent(p.get(0), content.length + 1, content))).toBe('FILE_NOT_FOUND');
    expect(await srv.app.store.lastSeq(cid)).toBe(last);
  });
});
