import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RelationClient } from '../src/client.js';
import { conversationId, MlsEncryptor } from '../src/mls/mls-encryptor.js';
import { privateKeySigner } from '../src/signer.js';
import { demoSuite, until, type Demo, type MlsDev } from './support.js';

// End-to-end encryption by default, against the real server (its MLS Delivery Service), the in-process
// chain and the demo identities. The server runs WITHOUT ALLOW_DEV_PLAINTEXT: only MLS gets through.

describe('MLS by default (real server)', () => {
  let demo: Demo;
  const { all, dev, texts } = demoSuite({ allowDevPlaintext: false }, (d) => { demo = d; });

  const hasText = async (d: MlsDev, t: string): Promise<boolean> => (await texts(d)).includes(t);
  const dm = (a: MlsDev, b: MlsDev): string => conversationId(a.client.address, b.client.address, 0);

  it('two wallets chat; neither the store file nor its WAL holds the text', async () => {
    expect(new RelationClient({ baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.alice) }).encryptor).toBeInstanceOf(MlsEncryptor);
    const alice = await dev('alice');
    const bob = await dev('bob');
    const secret = `the eagle lands at ${Date.now()}`;
    const r = await alice.client.send(bob.client.address, secret);
    await until(() => hasText(bob, secret), 30_000, 'bob reads');
    const reply = `roger ${Date.now()}`;
    await bob.client.send(alice.client.address, reply);
    await until(() => hasText(alice, reply), 30_000, 'alice reads');
    // On the wire and in the store: MLS ciphertext only; handshakes are not chat messages.
    const served = (await bob.client.rest.list({ chatId: alice.client.address, limit: 50 })).filter((m) => 'id' in m);
    expect(served.every((m) => 'encryptedBy' in m && m.encryptedBy === 'MLS')).toBe(true);
    expect(served.some((m) => 'type' in m && m.type === 'MLS')).toBe(true);
    expect(bob.got.every((m) => !('type' in m.message) || m.message.type !== 'MLS')).toBe(true);
    expect(served.find((m) => 'id' in m && m.id === r.id)).toBeDefined();
    // Same epoch authenticator on both sides.
    const cid = dm(alice, bob);
    expect(await alice.mls.epochAuthHash(cid)).toBe(await bob.mls.epochAuthHash(cid));
    const files = (readdirSync(demo.srv.dataDir, { recursive: true }) as string[]).map((f) => path.join(demo.srv.dataDir, f)).filter((f) => statSync(f).isFile());
    expect(files.some((f) => f.endsWith('-wal'))).toBe(true);
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const t of [secret, reply]) {
        expect(bytes.includes(Buffer.from(t))).toBe(false);
        expect(bytes.includes(Buffer.from(Buffer.from(t).toString('base64').slice(0, 16)))).toBe(false);
      }
    }
    expect(bob.bad).toEqual([]);
    // After a restart (same storage) the history still reads: MLS opened each message once, the client
    // kept the texts in its own storage (never the server's).
    const again = new RelationClient({ baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys.bob), storage: bob.storage });
    const first = served.find((m) => 'id' in m && m.id === r.id)!;
    expect(await again.decrypt(first)).toBe(secret);
  }, 60_000);

  it('two clients starting the same direct chat at once end in one group and both read', async () => {
    const carol = await dev('carol');
    const dave = await dev('dave');
    const [x, y] = [`carol first ${Date.now()}`, `dave first ${Date.now()}`];
    await Promise.all([carol.client.send(dave.client.address, x), dave.client.send(carol.client.address, y)]);
    await until(async () => (await hasText(dave, x)) && (await hasText(carol, y)), 40_000, 'both read');
    const cid = dm(carol, dave);
    await until(async () => (await carol.mls.epochOf(cid)) === (await dave.mls.epochOf(cid)), 20_000, 'same epoch');
    expect(await carol.mls.epochAuthHash(cid)).toBe(await dave.mls.epochAuthHash(cid));
    expect(carol.bad.concat(dave.bad)).toEqual([]);
  }, 60_000);

  it('a second device of one wallet is added and reads new messages; a wiped group state rejoins and reports what it could not read', async () => {
    const alice = all.find((d) => d.client.address === privateKeySigner(demo.keys.alice).address)!;
    const bob = all.find((d) => d.client.address === privateKeySigner(demo.keys.bob).address)!;
    const bob2 = await dev('bob');
    expect(bob2.mls.deviceId).not.toBe(bob.mls.deviceId);
    const t = `to both of bob's devices ${Date.now()}`;
    await alice.client.send(bob.client.address, t);
    await until(async () => (await hasText(bob2, t)) && (await hasText(bob, t)), 40_000, 'both bob devices read');
    // bob2 loses its group state (kept its device key): what alice sends next it cannot open, it says so,
    // rejoins by external commit (resync), and reads what follows.
    const cid = dm(alice, bob);
    bob2.client.close();
    const keep = bob2.storage;
    for (const k of ['group:' + cid]) await keep.remove(`mls:${demo.srv.url}:${bob2.client.address.toLowerCase()}:${k}`);
    const bob2b = await dev('bob', keep);
    const lost = `sent while bob2 has no state ${Date.now()}`;
    const sentLost = await alice.client.send(bob.client.address, lost);
    await until(() => bob2b.bad.some((u) => u.seq === sentLost.seq), 30_000, 'reported undecryptable');
    expect(bob2b.bad.find((u) => u.seq === sentLost.seq)!.reason).toBe('not-a-member');
    await until(async () => (await bob2b.mls.epochOf(cid)) !== null, 30_000, 'bob2 rejoined');
    await until(async () => (await alice.mls.epochOf(cid)) === (await bob2b.mls.epochOf(cid)), 30_000, 'alice saw the rejoin');
    const after = `after the rejoin ${Date.now()}`;
    await alice.client.send(bob.client.address, after);
    await until(async () => (await hasText(bob2b, after)) && (await hasText(bob, after)), 30_000, 'rejoined device reads');
    expect(await bob2b.mls.epochAuthHash(cid)).toBe(await alice.mls.epochAuthHash(cid));
  }, 90_000);
});
