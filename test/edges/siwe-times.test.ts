import Database from 'better-sqlite3';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity } from '../support/messages.js';
import { http, siweText, startServer, type TestServer } from '../support/server.js';

/**
 * Issue 12: a SIWE time that Date.parse cannot read (a leap second is valid RFC 3339) was skipped (Not
 * Before: a login not yet valid got a token) or crashed (Expiration Time: 500 after the nonce was spent).
 */
describe('SIWE time fields are read strictly', () => {
  let srv: TestServer;
  beforeAll(async () => { srv = await startServer(); });
  afterAll(async () => { await srv.close(); });

  const nonce = async (): Promise<string> => ((await http(srv.url, 'GET', '/auth/nonce')).json as { nonce: string }).nonce;
  const tokens = (): number => {
    const db = new Database(path.join(srv.dataDir, 'relation-im.sqlite'), { readonly: true });
    try {
      return (db.prepare('SELECT COUNT(*) AS n FROM tokens').get() as { n: number }).n;
    } finally {
      db.close();
    }
  };

  const cases: [string, Record<string, string>][] = [
    ['Not Before that is a leap second (a login not valid yet)', { notBefore: '2099-12-31T23:59:60Z' }],
    ['Expiration Time that is a leap second', { expirationTime: '2099-12-31T23:59:60Z' }],
    ['Issued At that is a leap second', { issuedAt: '2016-12-31T23:59:60Z' }],
    ['Not Before in the past written as a leap second', { notBefore: '2016-12-31T23:59:60Z' }],
  ];
  for (const [what, fields] of cases) {
    it(`refuses a ${what} with SIWE_INVALID, leaves no token and does not spend the nonce`, async () => {
      const who = makeIdentity();
      const n = await nonce();
      const before = tokens();
      const message = siweText(srv.url, who.address, n, fields);
      const res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature: who.wallet.signMessageSync(message) } });
      expect(res.status).toBe(401);
      expect(res.json).toMatchObject({ error: { code: 'SIWE_INVALID', message: expect.stringMatching(/RFC 3339/) } });
      expect(tokens()).toBe(before);
      // The refused login spent nothing: the same nonce signs in once a readable message is signed.
      const good = siweText(srv.url, who.address, n);
      const ok = await http(srv.url, 'POST', '/auth/login', { body: { message: good, signature: who.wallet.signMessageSync(good) } });
      expect(ok.status).toBe(200);
      expect(tokens()).toBe(before + 1);
    });
  }

  it('still honours readable Not Before and Expiration Time', async () => {
    const who = makeIdentity();
    let message = siweText(srv.url, who.address, await nonce(), { notBefore: new Date(Date.now() + 3_600_000).toISOString() });
    let res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature: who.wallet.signMessageSync(message) } });
    expect(res.json).toMatchObject({ error: { code: 'SIWE_INVALID', message: 'the message is not valid yet' } });
    const exp = Date.now() + 60_000;
    message = siweText(srv.url, who.address, await nonce(), { expirationTime: new Date(exp).toISOString().replace('Z', '+00:00') });
    res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature: who.wallet.signMessageSync(message) } });
    expect(res.status).toBe(200);
    expect((res.json as { expiresAt: number }).expiresAt).toBe(exp);
  });
});
