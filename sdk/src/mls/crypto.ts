/**
 * The crypto provider the ts-mls adapter runs on (docs/e2ee.md section 1, "Crypto provider").
 *
 * ts-mls's own providers reach every hash, HMAC, AEAD and Ed25519 operation through WebCrypto or noble.
 * In a browser that is cheap; in Node each WebCrypto call is a job handed to the thread pool and a
 * promise back (plus a key import for every HMAC, AEAD and signature), which made one 1 KB message cost
 * 1.5-2.7 ms to encrypt and 1.0-2.2 ms to decrypt (docs/benchmarks.md, issue 17). So:
 *
 * - **Node**: the hot primitives (digest, HMAC, HKDF, the AEAD of message protection and Welcomes,
 *   Ed25519 sign and verify) run synchronously on `node:crypto` (OpenSSL), with signing and verifying
 *   keys parsed once and kept; HPKE seal/open and key generation stay ts-mls's (noble + @hpke/core).
 * - **Browsers**: ts-mls's noble provider (synchronous noble hashes), with the device's Ed25519 signing
 *   key imported into WebCrypto once and kept as a non-extractable CryptoKey, instead of once per
 *   signature, and inputs of 512 bytes or more (tree-hash nodes) hashed by WebCrypto.
 *
 * Both are byte-for-byte the same algorithms as ts-mls's providers (the SDK's tests run a group across
 * them), so a state, a KeyPackage or a message made with one is read by the other.
 *
 * The SDK imports nothing from Node here: the `node:crypto` module is handed in by
 * `defaultCryptoProvider()` when it runs in Node (a dynamic import the browser bundle never executes),
 * and typed structurally below.
 */
import { nobleCryptoProvider, type CiphersuiteImpl, type CryptoProvider } from 'ts-mls';

/** A ts-mls provider of the SDK's, saying which platform's primitives it runs on. */
export type SdkCryptoProvider = CryptoProvider & { readonly platform: 'node' | 'browser' };

/** The subset of `node:crypto` used here, typed structurally (the SDK builds without Node's types). */
export interface NodeCryptoLike {
  createHash(algorithm: string): { update(data: Uint8Array): { digest(): Uint8Array } };
  createHmac(algorithm: string, key: Uint8Array): { update(data: Uint8Array): { digest(): Uint8Array } };
  createCipheriv(algorithm: string, key: Uint8Array, iv: Uint8Array, options?: { authTagLength: number }): NodeCipher;
  createDecipheriv(algorithm: string, key: Uint8Array, iv: Uint8Array, options?: { authTagLength: number }): NodeDecipher;
  // `key` is a Uint8Array here; typed `any` so that Node's own module (whose types say Buffer) is assignable.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  createPrivateKey(key: { key: any; format: 'der'; type: 'pkcs8' }): unknown;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  createPublicKey(key: { key: any; format: 'der'; type: 'spki' }): unknown;
  sign(algorithm: null, data: Uint8Array, key: unknown): Uint8Array;
  verify(algorithm: null, data: Uint8Array, key: unknown, signature: Uint8Array): boolean;
  timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean;
}
interface NodeCipher { setAAD(aad: Uint8Array): unknown; update(data: Uint8Array): Uint8Array; final(): Uint8Array; getAuthTag(): Uint8Array }
interface NodeDecipher { setAAD(aad: Uint8Array): unknown; setAuthTag(tag: Uint8Array): unknown; update(data: Uint8Array): Uint8Array; final(): Uint8Array }

/** Node's names and lengths of the ciphersuites' hashes. */
const NODE_HASH: Record<string, { name: string; len: number }> = {
  'SHA-256': { name: 'sha256', len: 32 }, 'SHA-384': { name: 'sha384', len: 48 }, 'SHA-512': { name: 'sha512', len: 64 },
};

/** PKCS#8 and SPKI DER prefixes of an Ed25519 key (RFC 8410): the raw 32 bytes follow. */
const ED25519_PKCS8_PREFIX = Uint8Array.of(0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20);
const ED25519_SPKI_PREFIX = Uint8Array.of(0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00);

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
/** A plain Uint8Array copy (a Node Buffer's `slice` shares memory; ts-mls expects Uint8Array semantics). */
const plain = (b: Uint8Array): Uint8Array => new Uint8Array(b);

function keyString(k: Uint8Array): string {
  let s = '';
  for (let i = 0; i < k.length; i++) s += String.fromCharCode(k[i]!);
  return s;
}

/**
 * A bounded map of parsed keys: the device's own signing keys (a handful) and the verification keys of
 * the members whose messages it reads. Oldest entry out first once full.
 */
class KeyCache<T> {
  private readonly m = new Map<string, T>();
  constructor(private readonly max: number) {}
  get(raw: Uint8Array, make: () => T): T {
    const k = keyString(raw);
    let v = this.m.get(k);
    if (v === undefined) {
      v = make();
      if (this.m.size >= this.max) this.m.delete(this.m.keys().next().value!);
      this.m.set(k, v);
    }
    return v;
  }
}

/** Ciphersuites whose signature is Ed25519 and whose AEAD is AES-GCM (all the SDK offers). */
const ED25519_AESGCM = new Set([0x0001, 0xf00d, 0xf007, 0xf009, 0xf00b]);
const AES_OF_SUITE: Record<number, string> = { 0x0001: 'aes-128-gcm', 0xf007: 'aes-128-gcm', 0xf009: 'aes-256-gcm', 0xf00b: 'aes-256-gcm', 0xf00d: 'aes-256-gcm' };
const SUITE_HASH: Record<number, string> = { 0x0001: 'SHA-256', 0xf007: 'SHA-256', 0xf009: 'SHA-384', 0xf00b: 'SHA-512', 0xf00d: 'SHA-512' };

/**
 * A provider on `node:crypto` for the hot primitives (see the file's comment). Suites outside
 * Ed25519 + AES-GCM fall back to ts-mls's noble provider unchanged.
 */
export function nodeCryptoProvider(c: NodeCryptoLike): SdkCryptoProvider {
  const signKeys = new KeyCache<unknown>(64);
  const verifyKeys = new KeyCache<unknown>(4096);
  return {
    platform: 'node',
    async getCiphersuiteImpl(id: number): Promise<CiphersuiteImpl> {
      const base = await nobleCryptoProvider.getCiphersuiteImpl(id);
      if (!ED25519_AESGCM.has(id)) return base;
      const h = NODE_HASH[SUITE_HASH[id]!]!;
      const aes = AES_OF_SUITE[id]!;
      const hmac = (key: Uint8Array, data: Uint8Array): Uint8Array => plain(c.createHmac(h.name, key).update(data).digest());
      const hash: CiphersuiteImpl['hash'] = {
        async digest(data) { return plain(c.createHash(h.name).update(data).digest()); },
        async mac(key, data) { return hmac(key, data); },
        async verifyMac(key, mac, data) {
          const expected = hmac(key, data);
          return mac.length === expected.length && c.timingSafeEqual(mac, expected);
        },
      };
      // HKDF (RFC 5869) on the suite's hash; `size` is the hash length, as ts-mls's KDF reports it.
      const kdf: CiphersuiteImpl['kdf'] = {
        async extract(salt, ikm) { return hmac(salt, ikm); },
        async expand(prk, info, len) {
          if (len > 255 * h.len) throw new Error('HKDF expand: length too large');
          const out = new Uint8Array(len);
          let t: Uint8Array = new Uint8Array(0);
          for (let i = 1, at = 0; at < len; i++) {
            const input = new Uint8Array(t.length + info.length + 1);
            input.set(t, 0);
            input.set(info, t.length);
            input[input.length - 1] = i;
            t = hmac(prk, input);
            out.set(t.subarray(0, Math.min(t.length, len - at)), at);
            at += t.length;
          }
          return out;
        },
        size: h.len,
      };
      const TAG = 16;
      const encryptAead = async (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array | undefined, plaintext: Uint8Array): Promise<Uint8Array> => {
        const e = c.createCipheriv(aes, key, nonce, { authTagLength: TAG });
        if (aad && aad.length > 0) e.setAAD(aad);
        const head = e.update(plaintext);
        const tail = e.final();
        const tag = e.getAuthTag();
        const out = new Uint8Array(head.length + tail.length + tag.length);
        out.set(head, 0);
        out.set(tail, head.length);
        out.set(tag, head.length + tail.length);
        return out;
      };
      const decryptAead = async (key: Uint8Array, nonce: Uint8Array, aad: Uint8Array | undefined, ciphertext: Uint8Array): Promise<Uint8Array> => {
        if (ciphertext.length < TAG) throw new Error('AEAD: ciphertext shorter than its tag');
        const d = c.createDecipheriv(aes, key, nonce, { authTagLength: TAG });
        if (aad && aad.length > 0) d.setAAD(aad);
        d.setAuthTag(ciphertext.subarray(ciphertext.length - TAG));
        const head = d.update(ciphertext.subarray(0, ciphertext.length - TAG));
        const tail = d.final(); // throws when the tag does not match
        return tail.length === 0 ? plain(head) : concat(head, tail);
      };
      const signature: CiphersuiteImpl['signature'] = {
        ...base.signature,
        async sign(signKey, message) {
          const key = signKeys.get(signKey, () => c.createPrivateKey({ key: signKey.length === 32 ? concat(ED25519_PKCS8_PREFIX, signKey) : signKey, format: 'der', type: 'pkcs8' }));
          return plain(c.sign(null, message, key));
        },
        async verify(publicKey, message, sig) {
          if (publicKey.length !== 32 || sig.length !== 64) return false;
          let key: unknown;
          try {
            key = verifyKeys.get(publicKey, () => c.createPublicKey({ key: concat(ED25519_SPKI_PREFIX, publicKey), format: 'der', type: 'spki' }));
          } catch {
            return false;
          }
          return c.verify(null, message, key, sig);
        },
      };
      return { ...base, hash, kdf, signature, hpke: { ...base.hpke, encryptAead, decryptAead } };
    },
  };
}

type SubtleLike = {
  importKey(format: 'pkcs8', key: Uint8Array, alg: 'Ed25519', extractable: false, usages: ['sign']): Promise<unknown>;
  sign(alg: 'Ed25519', key: unknown, data: Uint8Array): Promise<ArrayBuffer>;
  digest(alg: string, data: Uint8Array): Promise<ArrayBuffer>;
};

/**
 * Inputs from this many bytes on are hashed by WebCrypto in a browser, smaller ones by noble: a tree hash
 * digests every node's encoding (1.2-1.4 KB for an X-Wing leaf or parent), where the native digest's
 * speed outweighs the cost of its promise; for short inputs (HMAC-sized) noble's synchronous one wins.
 * Measured in Chromium 156 (docs/benchmarks.md, issue 17, third pass).
 */
export const BROWSER_NATIVE_DIGEST_MIN = 512;

/**
 * ts-mls's noble provider with two changes where WebCrypto has them: the device's Ed25519 signing key is
 * imported into WebCrypto once (ts-mls imports it again from PKCS#8 for every signature, i.e. every
 * message sent), and inputs of `nativeDigestMin` bytes or more are hashed by WebCrypto. Without
 * WebCrypto, ts-mls's noble provider as it is.
 */
export function browserCryptoProvider(o: { nativeDigestMin?: number } = {}): SdkCryptoProvider {
  const subtle = (globalThis as unknown as { crypto?: { subtle?: SubtleLike } }).crypto?.subtle;
  const keys = new KeyCache<Promise<unknown>>(64);
  const nativeMin = o.nativeDigestMin ?? BROWSER_NATIVE_DIGEST_MIN;
  return {
    platform: 'browser',
    async getCiphersuiteImpl(id: number): Promise<CiphersuiteImpl> {
      const base = await nobleCryptoProvider.getCiphersuiteImpl(id);
      if (!subtle || !ED25519_AESGCM.has(id)) return base;
      const alg = SUITE_HASH[id]!;
      const hash: CiphersuiteImpl['hash'] = {
        ...base.hash,
        async digest(data) {
          return data.length >= nativeMin ? new Uint8Array(await subtle.digest(alg, data)) : base.hash.digest(data);
        },
      };
      const signature: CiphersuiteImpl['signature'] = {
        ...base.signature,
        async sign(signKey, message) {
          const key = keys.get(signKey, () => subtle.importKey('pkcs8', signKey.length === 32 ? concat(ED25519_PKCS8_PREFIX, signKey) : signKey, 'Ed25519', false, ['sign']));
          try {
            return new Uint8Array(await subtle.sign('Ed25519', await key, message));
          } catch {
            // A WebCrypto without Ed25519 (older browsers): ts-mls's own path, which falls back to noble.
            return base.signature.sign(signKey, message);
          }
        },
      };
      return { ...base, hash, signature };
    },
  };
}

let chosen: Promise<SdkCryptoProvider> | null = null;

/** The provider for this platform: `node:crypto` in Node, WebCrypto + noble elsewhere. */
export function defaultCryptoProvider(): Promise<SdkCryptoProvider> {
  if (!chosen) {
    const proc = (globalThis as unknown as { process?: { versions?: { node?: string } } }).process;
    if (proc?.versions?.node) {
      // A specifier in a variable: bundlers leave it alone, and a browser never reaches this line.
      const spec = 'node:crypto';
      chosen = (import(/* @vite-ignore */ spec) as Promise<NodeCryptoLike>).then(nodeCryptoProvider, () => browserCryptoProvider());
    } else {
      chosen = Promise.resolve(browserCryptoProvider());
    }
  }
  return chosen;
}
