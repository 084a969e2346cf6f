import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex as toHex } from '@noble/hashes/utils.js';
import { recoverPersonal } from '../keys.js';
import { sessionSign, type SessionKey } from '../session.js';

/**
 * The device credential of docs/e2ee.md section 2: the `identity` of an MLS `basic` credential, binding
 * the device's MLS signature key to the wallet through the session-key delegation that already exists
 * (wallet -> session key -> MLS key). No extra wallet prompt: the session key signs `keySig`.
 */
export interface DeviceIdentity {
  v: 1;
  wallet: string;
  delegationMessage: string;
  delegationSig: string;
  keySig: string;
}

/** The text the session key signs (EIP-191) to vouch for an MLS signature key. */
export function keySigText(signaturePublicKey: Uint8Array): string {
  return `relation-mls-credential:v1:${toHex(signaturePublicKey)}`;
}

/** The identity bytes (UTF-8 JSON, keys in the contract's order, no spaces). */
export function buildIdentity(session: SessionKey, signaturePublicKey: Uint8Array): Uint8Array {
  const id: DeviceIdentity = {
    v: 1,
    wallet: session.owner.toLowerCase(),
    delegationMessage: session.delegationMessage,
    delegationSig: session.delegationSig,
    keySig: sessionSign(session, keySigText(signaturePublicKey)),
  };
  return new TextEncoder().encode(JSON.stringify({ v: id.v, wallet: id.wallet, delegationMessage: id.delegationMessage, delegationSig: id.delegationSig, keySig: id.keySig }));
}

export function parseIdentity(bytes: Uint8Array): DeviceIdentity | null {
  try {
    const o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
    if (o['v'] !== 1) return null;
    for (const k of ['wallet', 'delegationMessage', 'delegationSig', 'keySig']) if (typeof o[k] !== 'string') return null;
    return o as unknown as DeviceIdentity;
  } catch {
    return null;
  }
}

const DELEGATION = /^授权 (0x[0-9a-fA-F]{40}) 代理签名，创建时间：(\d+), 过期时间：(\d+)$/;

export function parseDelegation(text: string): { session: string; createdAt: number; expiresAt: number } | null {
  const m = DELEGATION.exec(text);
  if (!m) return null;
  return { session: (m[1] as string).toLowerCase(), createdAt: Number(m[2]), expiresAt: Number(m[3]) };
}

export type CredentialCheck = { ok: true; wallet: string } | { ok: false; reason: string };

/**
 * The Authentication Service check: `delegationSig` recovers to `wallet`, `keySig` recovers to the session
 * address the delegation names, and `at` lies in the delegation window.
 */
export function checkIdentity(identity: Uint8Array, signaturePublicKey: Uint8Array, at: number = Date.now(), opts: { member?: boolean } = {}): CredentialCheck {
  const id = parseIdentity(identity);
  if (!id) return { ok: false, reason: 'not a relation-mls credential' };
  if (!/^0x[0-9a-f]{40}$/.test(id.wallet)) return { ok: false, reason: 'wallet is not a lowercase address' };
  const d = parseDelegation(id.delegationMessage);
  if (!d) return { ok: false, reason: 'malformed delegation message' };
  // A leaf entering a group must carry a delegation valid now; a member's leaf keeps vouching after its
  // delegation expired (it was checked when it entered), so a member offline past the session key's
  // lifetime does not make the group's tree fail everyone else's checks (docs/e2ee.md section 2).
  if (at < d.createdAt || (opts.member !== true && at > d.expiresAt)) return { ok: false, reason: 'the delegation is not valid at this time' };
  try {
    if (recoverPersonal(id.delegationMessage, id.delegationSig) !== id.wallet) return { ok: false, reason: 'delegationSig is not the wallet\'s' };
    if (recoverPersonal(keySigText(signaturePublicKey), id.keySig) !== d.session) return { ok: false, reason: 'keySig is not the session key\'s' };
  } catch {
    return { ok: false, reason: 'unreadable signature' };
  }
  return { ok: true, wallet: id.wallet };
}

/** Device id: first 16 bytes (hex) of SHA-256 of the MLS signature public key. */
export function deviceId(signaturePublicKey: Uint8Array): string {
  return toHex(sha256(signaturePublicKey).slice(0, 16));
}

/** Fingerprint shown to people: first 10 bytes of the same hash, five groups of four hex digits. */
export function fingerprint(signaturePublicKey: Uint8Array): string {
  const h = toHex(sha256(signaturePublicKey).slice(0, 10));
  return (h.match(/.{4}/g) as string[]).join(' ');
}
