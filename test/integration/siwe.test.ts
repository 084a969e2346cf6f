import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeIdentity, type Identity } from '../support/messages.js';
import { http, siweText, startServer, type TestServer } from '../support/server.js';

/** What docs/protocol.md promises about the SIWE fields and the nonce, checked on the real server. */
describe('SIWE sign-in fields and the nonce', () => {
  let srv: TestServer;
  let alice: Identity;
  let mallory: Identity;
  beforeAll(async () => {
    srv = await startServer();
    alice = makeIdentity();
    mallory = makeIdentity();
  });
  afterAll(async () => { await srv.close(); });

  const nonce = async (): Promise<string> => ((await http(srv.url, 'GET', '/auth/nonce')).json as { nonce: string }).nonce;
  const login = (body: Record<string, string>): ReturnType<typeof http> => http(srv.url, 'POST', '/auth/login', { body });
  const code = (r: { json: unknown }): unknown => (r.json as { error?: { code?: string } }).error?.code;

  it('needs the domain to be the Host header with its port', async () => {
    const n = await nonce();
    const host = new URL(srv.url).host;
    expect(host).toMatch(/:\d+$/);
    const noPort = siweText(srv.url, alice.address, n, { domain: host.replace(/:\d+$/, '') });
    const r1 = await login({ message: noPort, signature: alice.wallet.signMessageSync(noPort) });
    expect([r1.status, code(r1)]).toEqual([401, 'SIWE_INVALID']);
    const other = siweText(srv.url, alice.address, n, { domain: 'evil.example:443' });
    const r2 = await login({ message: other, signature: alice.wallet.signMessageSync(other) });
    expect([r2.status, code(r2)]).toEqual([401, 'SIWE_INVALID']);
    // the same nonce still works: refused logins do not spend it
    const good = siweText(srv.url, alice.address, n);
    expect((await login({ message: good, signature: alice.wallet.signMessageSync(good) })).status).toBe(200);
  });

  it('does not check uri or chainId', async () => {
    const text = siweText(srv.url, alice.address, await nonce(), { uri: 'https://somewhere.else.example/app', chainId: 424242 });
    const r = await login({ message: text, signature: alice.wallet.signMessageSync(text) });
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ address: alice.address.toLowerCase() });
  });

  it('answers a wrong signature with INVALID_SIGNATURE without spending the nonce; a success spends it', async () => {
    const text = siweText(srv.url, alice.address, await nonce());
    const wrong = await login({ message: text, signature: mallory.wallet.signMessageSync(text) });
    expect([wrong.status, code(wrong)]).toEqual([401, 'INVALID_SIGNATURE']);
    const malformed = await login({ message: text, signature: '0x1234' });
    expect([malformed.status, code(malformed)]).toEqual([401, 'INVALID_SIGNATURE']);
    const sig = alice.wallet.signMessageSync(text);
    expect((await login({ message: text, signature: sig })).status).toBe(200);
    const replay = await login({ message: text, signature: sig });
    expect([replay.status, code(replay)]).toEqual([401, 'NONCE_INVALID']);
  });

  it('needs the address in its EIP-55 form, as EIP-4361 says', async () => {
    const text = siweText(srv.url, alice.address, await nonce()).replace(alice.address, alice.address.toLowerCase());
    const r = await login({ message: text, signature: alice.wallet.signMessageSync(text) });
    expect([r.status, code(r)]).toEqual([401, 'SIWE_INVALID']);
  });

  it('refuses a nonce the server never issued', async () => {
    const text = siweText(srv.url, alice.address, 'a'.repeat(32));
    const r = await login({ message: text, signature: alice.wallet.signMessageSync(text) });
    expect([r.status, code(r)]).toEqual([401, 'NONCE_INVALID']);
  });

  it('honours expirationTime and notBefore, and caps the token at the expiration', async () => {
    const n = await nonce();
    const expired = siweText(srv.url, alice.address, n, { expirationTime: new Date(Date.now() - 1000).toISOString() });
    const r1 = await login({ message: expired, signature: alice.wallet.signMessageSync(expired) });
    expect([r1.status, code(r1)]).toEqual([401, 'SIWE_INVALID']);
    const early = siweText(srv.url, alice.address, n, { notBefore: new Date(Date.now() + 3_600_000).toISOString() });
    const r2 = await login({ message: early, signature: alice.wallet.signMessageSync(early) });
    expect([r2.status, code(r2)]).toEqual([401, 'SIWE_INVALID']);
    const until = new Date(Date.now() + 600_000);
    until.setMilliseconds(0);
    const capped = siweText(srv.url, alice.address, n, { expirationTime: until.toISOString() });
    const r3 = await login({ message: capped, signature: alice.wallet.signMessageSync(capped) });
    expect(r3.status).toBe(200);
    expect((r3.json as { expiresAt: number }).expiresAt).toBe(until.getTime());
  });

  it('signs in with a session key and its delegation, refusing a delegation by someone else', async () => {
    const text = siweText(srv.url, alice.address, await nonce());
    const forged = await login({ message: text, signature: alice.session.signMessageSync(text), delegationMessage: alice.delegationMessage, delegationSig: mallory.wallet.signMessageSync(alice.delegationMessage) });
    expect([forged.status, code(forged)]).toEqual([401, 'INVALID_SIGNATURE']);
    const half = await login({ message: text, signature: alice.session.signMessageSync(text), delegationMessage: alice.delegationMessage });
    expect([half.status, code(half)]).toEqual([401, 'INVALID_DELEGATION']);
    const ok = await login({ message: text, signature: alice.session.signMessageSync(text), delegationMessage: alice.delegationMessage, delegationSig: alice.delegationSig });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ address: alice.address.toLowerCase() });
  });

  it('with SIWE_DOMAINS set, accepts those domains and not the Host', async () => {
    const other = await startServer({ siweDomains: ['chat.example.org'] });
    try {
      const n = ((await http(other.url, 'GET', '/auth/nonce')).json as { nonce: string }).nonce;
      const byHost = siweText(other.url, alice.address, n);
      const r1 = await http(other.url, 'POST', '/auth/login', { body: { message: byHost, signature: alice.wallet.signMessageSync(byHost) } });
      expect([r1.status, code(r1)]).toEqual([401, 'SIWE_INVALID']);
      const listed = siweText(other.url, alice.address, n, { domain: 'chat.example.org' });
      expect((await http(other.url, 'POST', '/auth/login', { body: { message: listed, signature: alice.wallet.signMessageSync(listed) } })).status).toBe(200);
    } finally {
      await other.close();
    }
  });
});
