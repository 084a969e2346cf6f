import { bytesToHex as toHex, hexToBytes as fromHex, utf8ToBytes } from '@noble/hashes/utils.js';
import { keccak_256 } from '@noble/hashes/sha3.js';

export type Hex = `0x${string}`;

export function bytesToHex(b: Uint8Array): Hex {
  return `0x${toHex(b)}`;
}

export function hexToBytes(h: string): Uint8Array {
  return fromHex(h.startsWith('0x') || h.startsWith('0X') ? h.slice(2) : h);
}

export const utf8 = utf8ToBytes;

/** keccak256 of bytes, as lowercase 0x-hex. */
export function keccak256(data: Uint8Array): Hex {
  return bytesToHex(keccak_256(data));
}

/** EIP-55 mixed-case checksum form of an address. */
export function checksumAddress(address: string): string {
  const lower = address.toLowerCase().replace(/^0x/, '');
  const hash = toHex(keccak_256(utf8ToBytes(lower)));
  let out = '0x';
  for (let i = 0; i < 40; i++) out += parseInt(hash[i] as string, 16) >= 8 ? (lower[i] as string).toUpperCase() : lower[i];
  return out;
}
