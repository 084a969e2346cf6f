// @ts-check
/**
 * The signature arithmetic of the hot path, in plain JavaScript so that worker threads can load it
 * directly (Node 20 cannot start a worker from a .ts file) while the TypeScript code imports the same
 * module: one implementation for the main thread and the workers. Type-checked by tsc (checkJs).
 *
 * Recovery uses libsecp256k1 through the `secp256k1` package's native binding when it loads, and
 * ethers' pure-JS implementation otherwise.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { keccak256, SigningKey, toUtf8Bytes, concat } from 'ethers';

const require = createRequire(import.meta.url);

/** @typedef {{ ecdsaRecover(sig: Uint8Array, recid: number, msg32: Uint8Array, compressed: boolean): Uint8Array }} NativeSecp */

/** @type {NativeSecp | null} */
let native = null;
try {
  // The package's `bindings` entry is the native addon only (its index falls back to elliptic.js, which we do not want).
  native = /** @type {NativeSecp} */ (require('secp256k1/bindings'));
} catch {
  native = null;
}

/** @typedef {(algorithm: 'keccak256') => { update(data: Uint8Array): { digest(): Buffer } }} NativeKeccak */
/** @typedef {{ initialize(rate: number, capacity: number): void, absorb(data: Buffer): void, squeeze(bytes: number): Buffer }} KeccakState */
/** @type {NativeKeccak | null} */
let nativeKeccak = null;
/**
 * The keccak package's native sponge itself, reused for every hash: its public API wraps each hash in
 * a new stream object (a Transform), which costs as much as the hashing at these sizes (measured: 4.0
 * against 1.9 us for a 330-byte input). Same binary, same results (tested against the API).
 * @type {KeccakState | null}
 */
let sponge = null;
try {
  // Native only (the package's index falls back to a JS implementation slower than ethers').
  nativeKeccak = /** @type {NativeKeccak} */ (require('keccak/bindings'));
  try {
    // node-gyp-build is keccak's own dependency: resolved from keccak's folder, as its bindings.js does.
    const keccakDir = path.dirname(require.resolve('keccak/package.json'));
    const State = /** @type {new () => KeccakState} */ (createRequire(path.join(keccakDir, 'bindings.js'))('node-gyp-build')(keccakDir));
    sponge = new State();
  } catch {
    sponge = null;
  }
} catch {
  nativeKeccak = null;
}

/**
 * The native keccak256, chosen once: the reused sponge (rate 1088, capacity 512: the package's own
 * 'keccak256'), else the package's API; null when neither loads (ethers' JS then).
 * @type {((data: Buffer) => Buffer) | null}
 */
const nativeHash = sponge
  ? (data) => {
    const s = /** @type {KeccakState} */ (sponge);
    s.initialize(1088, 512);
    s.absorb(data);
    return s.squeeze(32);
  }
  : nativeKeccak
    ? (data) => /** @type {NativeKeccak} */ (nativeKeccak)('keccak256').update(data).digest()
    : null;

/** Which implementation recovers here: 'native' (libsecp256k1) or 'js' (ethers / noble). */
export const backend = native ? 'native' : 'js';
/** Which keccak256 hashes here: 'native' (the keccak package's binding, ~5x faster on a message) or 'js'. */
export const keccakBackend = nativeKeccak ? 'native' : 'js';
/** True when hashes go through the reused native sponge rather than the package's stream API. */
export const keccakSponge = sponge !== null;

/**
 * keccak256 of bytes, as raw bytes.
 * @param {Uint8Array} data
 * @returns {Uint8Array}
 */
export function keccakBytes(data) {
  return nativeHash ? nativeHash(asBuffer(data)) : hexToBytes(keccak256(data));
}

/**
 * The binding takes Buffers only: view other byte arrays without copying.
 * @param {Uint8Array} data
 * @returns {Buffer}
 */
function asBuffer(data) {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/**
 * keccak256 of bytes as lowercase 0x-hex.
 * @param {Uint8Array} data
 * @returns {string}
 */
export function keccakHex(data) {
  return nativeHash ? '0x' + nativeHash(asBuffer(data)).toString('hex') : keccak256(data);
}

/** Forces the pure-JS path (for tests and for measuring both). */
export function recoverWith(/** @type {'native' | 'js'} */ which) {
  return which === 'native' && native ? nativeRecover : jsRecover;
}

const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const PREFIX = Buffer.from('\x19Ethereum Signed Message:\n', 'utf8');

/**
 * EIP-191 personal_sign digest of `message` bytes.
 * @param {Uint8Array} message
 * @returns {Uint8Array}
 */
export function personalDigest(message) {
  return keccakBytes(Buffer.concat([PREFIX, Buffer.from(String(message.length)), message]));
}

/**
 * @param {string} hex 0x-prefixed, even length, validated by the caller's pattern
 * @returns {Uint8Array}
 */
export function hexToBytes(hex) {
  return Buffer.from(hex.slice(2), 'hex');
}

/**
 * Splits a 65-byte r||s||v signature, rejecting non-canonical (high-s), zero or out-of-range values.
 * @param {string} sigHex
 * @returns {{ rs: Uint8Array, recid: number } | null}
 */
export function splitSignature(sigHex) {
  if (typeof sigHex !== 'string' || !/^0x[0-9a-fA-F]{130}$/.test(sigHex)) return null;
  const bytes = hexToBytes(sigHex);
  const v = /** @type {number} */ (bytes[64]);
  const recid = v >= 27 ? v - 27 : v;
  if (recid !== 0 && recid !== 1) return null;
  const r = BigInt('0x' + sigHex.slice(2, 66));
  const s = BigInt('0x' + sigHex.slice(66, 130));
  if (r === 0n || r >= N || s === 0n || s > HALF_N) return null;
  return { rs: bytes.subarray(0, 64), recid };
}

/** @param {Uint8Array} uncompressed 65-byte public key */
function addressOf(uncompressed) {
  return '0x' + Buffer.from(keccakBytes(uncompressed.subarray(1)).subarray(12)).toString('hex');
}

/**
 * @param {Uint8Array} digest
 * @param {{ rs: Uint8Array, recid: number }} sig
 * @returns {string | null}
 */
function nativeRecover(digest, sig) {
  try {
    return addressOf(/** @type {NativeSecp} */ (native).ecdsaRecover(sig.rs, sig.recid, digest, false));
  } catch {
    return null;
  }
}

/**
 * @param {Uint8Array} digest
 * @param {{ rs: Uint8Array, recid: number }} sig
 * @returns {string | null}
 */
function jsRecover(digest, sig) {
  try {
    const full = concat([sig.rs, new Uint8Array([27 + sig.recid])]);
    return addressOf(hexToBytes(SigningKey.recoverPublicKey(digest, full)));
  } catch {
    return null;
  }
}

const recoverDigest = native ? nativeRecover : jsRecover;

/**
 * Lowercase address that signed `message` with EIP-191 personal_sign, or null when the signature is
 * malformed, non-canonical or unrecoverable.
 * @param {Uint8Array} message
 * @param {string} sigHex
 * @returns {string | null}
 */
export function recoverPersonal(message, sigHex) {
  const sig = splitSignature(sigHex);
  return sig ? recoverDigest(personalDigest(message), sig) : null;
}

/**
 * @typedef {object} VerifyJob
 * @property {string} preimage exact string hashed into the id
 * @property {string} id the id the client claims
 * @property {string} sig session-key signature over the 32 id bytes
 * @property {string | null} delegationMessage set when the delegation still needs recovering
 * @property {string | null} delegationSig
 */
/**
 * @typedef {object} VerifyResult
 * @property {boolean} idOk keccak256(preimage) equals id
 * @property {string | null} signer lowercase address recovered from sig (null: invalid)
 * @property {string | null} delegator lowercase address recovered from the delegation (null: invalid or not asked)
 */

/**
 * Everything expensive about one message: the keccak of its preimage and one or two recoveries.
 * @param {VerifyJob} job
 * @returns {VerifyResult}
 */
export function verifyJob(job) {
  const computed = keccakHex(Buffer.from(job.preimage, 'utf8'));
  const idOk = computed === job.id;
  const signer = idOk ? recoverPersonal(hexToBytes(job.id), job.sig) : null;
  const delegator = idOk && job.delegationMessage !== null && job.delegationSig !== null
    ? recoverPersonal(toUtf8Bytes(job.delegationMessage), job.delegationSig)
    : null;
  return { idOk, signer, delegator };
}
