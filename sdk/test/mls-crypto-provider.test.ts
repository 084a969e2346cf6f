import * as nodeCrypto from 'node:crypto';
import { Wallet } from 'ethers';
import { defaultCryptoProvider as tsMlsDefault, getCiphersuiteImpl, type CiphersuiteImpl, type CiphersuiteName, type CryptoProvider } from 'ts-mls';
import { describe, expect, it } from 'vitest';
import { browserCryptoProvider, defaultCryptoProvider, nodeCryptoProvider } from '../src/mls/crypto.js';
import { buildIdentity, checkIdentity } from '../src/mls/credential.js';
import type { MlsDevice } from '../src/mls/engine.js';
import { TsMlsEngine } from '../src/mls/tsmls.js';
import { createSession } from '../src/session.js';
import { privateKeySigner } from '../src/signer.js';

/**
 * The SDK's crypto providers (docs/e2ee.md section 1, "Crypto provider") compute the same bytes as
 * ts-mls's own: every primitive they replace is checked against ts-mls's default provider, and a group
 * whose members each run another provider exchanges messages and commits.
 */
const te = new TextEncoder();
const td = new TextDecoder();
const SUITES: CiphersuiteName[] = ['MLS_256_XWING_AES256GCM_SHA512_Ed25519', 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'];
const rnd = (n: number): Uint8Array => new Uint8Array(nodeCrypto.randomBytes(n));

describe.each(SUITES)('nodeCryptoProvider primitives equal ts-mls default (%s)', (suite) => {
  const impls = async (): Promise<{ ref: CiphersuiteImpl; node: CiphersuiteImpl; browser: CiphersuiteImpl }> => ({
    ref: await getCiphersuiteImpl(suite, tsMlsDefault),
    node: await getCiphersuiteImpl(suite, nodeCryptoProvider(nodeCrypto)),
    browser: await getCiphersuiteImpl(suite, browserCryptoProvider()),
  });

  it('hash, HMAC and HKDF', async () => {
    const { ref, node, browser } = await impls();
    for (const n of [0, 1, 64, 511, 512, 1000, 5000]) {
      const data = rnd(n);
      expect(await node.hash.digest(data)).toEqual(await ref.hash.digest(data));
      // the browser provider hashes from 512 bytes on with WebCrypto, below with noble
      expect(await browser.hash.digest(data)).toEqual(await ref.hash.digest(data));
      const key = rnd(32);
      const mac = await node.hash.mac(key, data);
      expect(mac).toEqual(await ref.hash.mac(key, data));
      expect(await node.hash.verifyMac(key, mac, data)).toBe(true);
      expect(await ref.hash.verifyMac(key, mac, data)).toBe(true);
      const bad = mac.slice();
      bad[0]! ^= 1;
      expect(await node.hash.verifyMac(key, bad, data)).toBe(false);
      expect(await node.hash.verifyMac(key, mac.subarray(1), data)).toBe(false);
      expect(await node.hash.verifyMac(key, new Uint8Array(0), data)).toBe(false);
    }
    expect(node.kdf.size).toBe(ref.kdf.size);
    // MLS extracts with an empty salt or a secret of the hash's length (ts-mls's HKDF refuses others).
    for (const salt of [new Uint8Array(0), rnd(ref.kdf.size)]) {
      const ikm = rnd(48);
      const prk = await node.kdf.extract(salt, ikm);
      expect(prk).toEqual(await ref.kdf.extract(salt, ikm));
      for (const len of [16, 32, ref.kdf.size, 100, 255]) {
        const info = rnd(len % 20);
        expect(await node.kdf.expand(prk, info, len)).toEqual(await ref.kdf.expand(prk, info, len));
      }
    }
    await expect(node.kdf.expand(rnd(ref.kdf.size), new Uint8Array(0), 255 * ref.kdf.size + 1)).rejects.toThrow();
  });

  it('AEAD: the same ciphertext, cross-decrypts, and a tampered tag, body, nonce or aad is refused', async () => {
    const { ref, node } = await impls();
    const keyLen = suite.includes('AES128') ? 16 : 32;
    for (const aad of [undefined, new Uint8Array(0), rnd(33)]) {
      for (const n of [0, 1, 1024]) {
        const key = rnd(keyLen);
        const nonce = rnd(12);
        const pt = rnd(n);
        const ct = await node.hpke.encryptAead(key, nonce, aad, pt);
        expect(ct).toEqual(await ref.hpke.encryptAead(key, nonce, aad, pt));
        expect(await ref.hpke.decryptAead(key, nonce, aad, ct)).toEqual(pt);
        expect(await node.hpke.decryptAead(key, nonce, aad, ct)).toEqual(pt);
        const tag = ct.slice();
        tag[tag.length - 1]! ^= 1;
        await expect(node.hpke.decryptAead(key, nonce, aad, tag)).rejects.toThrow();
        if (n > 0) {
          const body = ct.slice();
          body[0]! ^= 1;
          await expect(node.hpke.decryptAead(key, nonce, aad, body)).rejects.toThrow();
        }
        const nonce2 = nonce.slice();
        nonce2[0]! ^= 1;
        await expect(node.hpke.decryptAead(key, nonce2, aad, ct)).rejects.toThrow();
        await expect(node.hpke.decryptAead(key, nonce, rnd(5), ct)).rejects.toThrow();
      }
    }
    await expect(node.hpke.decryptAead(rnd(keyLen), rnd(12), undefined, rnd(15))).rejects.toThrow();
  });

  it('Ed25519: signatures verify across providers; a wrong message, signature or key is false, not a throw', async () => {
    const { ref, node, browser } = await impls();
    for (let i = 0; i < 3; i++) {
      const { signKey, publicKey } = await ref.signature.keygen();
      const msg = rnd(100 + i);
      const sNode = await node.signature.sign(signKey, msg);
      const sRef = await ref.signature.sign(signKey, msg);
      const sBrowser = await browser.signature.sign(signKey, msg);
      expect(sNode).toEqual(sRef); // Ed25519 is deterministic
      expect(sBrowser).toEqual(sRef);
      // twice: the second time from the key caches
      for (let j = 0; j < 2; j++) {
        expect(await node.signature.verify(publicKey, msg, sRef)).toBe(true);
        expect(await ref.signature.verify(publicKey, msg, sNode)).toBe(true);
        expect(await node.signature.sign(signKey, msg)).toEqual(sRef);
      }
      const other = rnd(100);
      expect(await node.signature.verify(publicKey, other, sNode)).toBe(false);
      const bad = sNode.slice();
      bad[10]! ^= 1;
      expect(await node.signature.verify(publicKey, msg, bad)).toBe(false);
      expect(await node.signature.verify(publicKey, msg, sNode.subarray(1))).toBe(false);
      expect(await node.signature.verify(publicKey.subarray(1), msg, sNode)).toBe(false);
      expect(await node.signature.verify(new Uint8Array(32).fill(0xff), msg, sNode)).toBe(false);
      expect(await node.signature.verify((await ref.signature.keygen()).publicKey, msg, sNode)).toBe(false);
    }
  });
});

describe('a group whose members run different providers', () => {
  async function device(e: TsMlsEngine): Promise<MlsDevice> {
    const session = await createSession(privateKeySigner(Wallet.createRandom().privateKey));
    const k = await e.generateSignatureKey();
    return { signaturePublicKey: k.publicKey, signaturePrivateKey: k.privateKey, identity: buildIdentity(session, k.publicKey) };
  }
  const validateIdentity = (id: Uint8Array, key: Uint8Array, o: { member: boolean }): boolean => checkIdentity(id, key, Date.now(), o).ok;

  it('SDK default in Node is the node:crypto provider, and it reads what ts-mls default and the browser provider write', async () => {
    expect(await defaultCryptoProvider()).toBe(await defaultCryptoProvider());
    expect((await defaultCryptoProvider()).platform).toBe('node');
    const providers: CryptoProvider[] = [await defaultCryptoProvider(), tsMlsDefault, browserCryptoProvider()];
    const engines = await Promise.all(providers.map((cryptoProvider) => TsMlsEngine.create({ validateIdentity, cryptoProvider })));
    const devices = await Promise.all(engines.map((e) => device(e)));
    const kps = await Promise.all(engines.map((e, i) => e.generateKeyPackage(devices[i]!)));
    let g0 = await engines[0]!.createGroup('grp:providers', devices[0]!, kps[0]!);
    const c = await engines[0]!.commit(g0, { add: [kps[1]!.publicMessage, kps[2]!.publicMessage] });
    g0 = c.group;
    const groups = [g0];
    for (const i of [1, 2]) groups.push((await engines[i]!.joinWelcome(c.welcome!, [kps[i]!]))!.group);
    expect(new Set(groups.map((g, i) => Buffer.from(engines[i]!.epochAuthenticator(g)).toString('hex'))).size).toBe(1);
    // every member sends, every other member reads
    for (let from = 0; from < 3; from++) {
      const m = await engines[from]!.encrypt(groups[from]!, te.encode(`from ${from}`));
      groups[from] = m.group;
      for (let to = 0; to < 3; to++) {
        if (to === from) continue;
        const r = await engines[to]!.process(groups[to]!, m.message);
        expect(r.kind === 'application' && td.decode(r.plaintext)).toBe(`from ${from}`);
        groups[to] = r.group;
      }
    }
    // a commit by the browser-provider member (path update, removal) is processed by the others
    const rm = await engines[2]!.commit(groups[2]!, { remove: [1] });
    groups[2] = rm.group;
    const r0 = await engines[0]!.process(groups[0]!, rm.commit);
    groups[0] = r0.group;
    expect(groups[0]!.epoch).toBe(2n);
    expect(engines[0]!.epochAuthenticator(groups[0]!)).toEqual(engines[2]!.epochAuthenticator(groups[2]!));
    const last = await engines[0]!.encrypt(groups[0]!, te.encode('after removal'));
    const r2 = await engines[2]!.process(groups[2]!, last.message);
    expect(r2.kind === 'application' && td.decode(r2.plaintext)).toBe('after removal');
  });
});
