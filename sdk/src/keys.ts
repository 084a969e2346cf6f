import { secp256k1 } from '@noble/curves-v1/secp256k1';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { concatBytes } from '@noble/hashes/utils.js';
import { bytesToHex, checksumAddress, hexToBytes, utf8, type Hex } from './hex.js';

/** The EIP-191 `personal_sign` digest of a message (text as UTF-8, or raw bytes). */
export function personalDigest(message: string | Uint8Array): Uint8Array {
  const bytes = typeof message === 'string' ? utf8(message) : message;
  return keccak_256(concatBytes(utf8(`\x19Ethereum Signed Message:\n${bytes.length}`), bytes));
}

/** EIP-191 signature by a private key: 65 bytes r‖s‖v, v 27/28, low s (what ethers' signMessage gives). */
export function personalSign(privateKey: Uint8Array, message: string | Uint8Array): Hex {
  const sig = secp256k1.sign(personalDigest(message), privateKey, { lowS: true });
  const out = new Uint8Array(65);
  out.set(sig.toCompactRawBytes(), 0);
  out[64] = 27 + sig.recovery;
  return bytesToHex(out);
}

/** The checksummed address of a private key. */
export function addressOf(privateKey: Uint8Array): string {
  const pub = secp256k1.getPublicKey(privateKey, false).slice(1);
  return checksumAddress(bytesToHex(keccak_256(pub).slice(12)));
}

/** The address that signed `message` with EIP-191 (lowercase), for checks in tests and tools. */
export function recoverPersonal(message: string | Uint8Array, signature: string): string {
  const b = hexToBytes(signature);
  const v = b[64] as number;
  const sig = secp256k1.Signature.fromCompact(b.slice(0, 64)).addRecoveryBit(v >= 27 ? v - 27 : v);
  const pub = sig.recoverPublicKey(personalDigest(message)).toRawBytes(false).slice(1);
  return bytesToHex(keccak_256(pub).slice(12));
}

export function randomPrivateKey(): Uint8Array {
  return secp256k1.utils.randomPrivateKey();
}

export { hexToBytes, bytesToHex };
