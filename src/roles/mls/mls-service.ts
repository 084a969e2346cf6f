import { createHash, generateKeyPairSync } from 'node:crypto';
import {
  ciphersuites, encode, getCiphersuiteImpl, mlsMessageDecoder, mlsMessageEncoder, wireformats, type CiphersuiteName, type KeyPackage, type MlsMessage, type Signature,
} from 'ts-mls';
import { verifyKeyPackage } from 'ts-mls/dist/src/keyPackage.js';
import { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/dist/src/leafNode.js';
import { AppError } from '../../errors/app-error.js';
import type { Clock } from '../../clock.js';
import type { PushBus } from '../../bus/hub.js';
import { parseDelegation } from '../../protocol/delegation.js';
import { isAddress } from '../../protocol/message.js';
import { strictBase64 } from '../../protocol/mls-header.js';
import type { MlsAt, MlsClaimed, MlsNewPackage, Store } from '../../store/port.js';

/**
 * The Delivery Service's directory and group records (docs/e2ee.md section 5): KeyPackages per device,
 * claims, the latest GroupInfo, epoch-authenticator reports and the proxy's external-sender key. The
 * proxy never holds a key that opens a message: the external sender only signs proposals.
 */
export const SUITES: ReadonlySet<number> = new Set([0xf00d, 0x0001]);
/** ts-mls's name of each accepted suite (for its signature scheme). */
const SUITE_NAMES: ReadonlyMap<number, CiphersuiteName> = new Map(
  (Object.entries(ciphersuites) as [CiphersuiteName, number][]).filter(([, id]) => SUITES.has(id)).map(([name, id]) => [id, name]),
);
const BASIC = 1;
const MAX_PER_CALL = 100;
const MAX_PER_DEVICE = 200;
const MAX_IDENTITY_BYTES = 4096;
const MAX_CLAIM_ADDRESSES = 100;
const HASH = /^[0-9a-f]{64}$/;
/**
 * KeyPackage lifetimes (RFC 9420 sections 7.2, 10.1; docs/e2ee.md section 5), in seconds: a package must
 * be valid within this much of the proxy's clock (clients' clocks drift), have more than MIN_LEFT left to
 * be accepted or handed out, and span at most MAX_LIFETIME.
 */
export const KP_CLOCK_SKEW = 5 * 60;
export const KP_MIN_LEFT = 60 * 60;
export const KP_MAX_LIFETIME = 90 * 86_400;

export interface MlsServiceDeps {
  store: Store;
  push: PushBus;
  clock: Clock;
  /** EIP-191 recovery (the signature verifier's): lowercase address or null. */
  recoverText(text: string, sig: string): string | null;
  maxDelegationMs: number;
  maxDevices: number;
  lowWater: number;
  /** The external sender credential's `proxy` field. */
  proxyName: string;
  /** Per-caller claim limit (RATE_MLS_CLAIM_PER_MIN). */
  limitClaim?: (user: string, clientAddress: string) => Promise<void>;
  /** Whether `user` may act on the conversation named by `chatId`; returns its cid (participants of a direct chat, members of a group). */
  resolveChat(user: string, chatId: string): Promise<string>;
  /** A GroupInfo was stored for the group's current epoch (the chain watcher looks at it). */
  onGroupInfo?: (cid: string) => void;
}

/** TLS encoding of a basic Credential: credential_type u16, identity<V> (RFC 9420 section 5.3). */
export function encodeBasicCredential(identity: Uint8Array): Buffer {
  const n = identity.length;
  const len = n < 64 ? Buffer.from([n]) : n < 16384 ? Buffer.from([0x40 | (n >> 8), n & 0xff]) : Buffer.from([0x80 | (n >>> 24), (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff]);
  return Buffer.concat([Buffer.from([0, BASIC]), len, identity]);
}

export const deviceIdOf = (signatureKey: Uint8Array): string => createHash('sha256').update(signatureKey).digest('hex').slice(0, 32);
export const fingerprintOf = (deviceId: string): string => (deviceId.slice(0, 20).match(/.{4}/g) ?? []).join(' ');

interface CheckedPackage { deviceId: string; credential: string; signatureKey: string; notAfter: number }

/** The lifetime rules of the directory at `nowMs` (the store works in seconds). */
export const mlsAt = (nowMs: number): MlsAt => ({ now: Math.floor(nowMs / 1000), minLeft: KP_MIN_LEFT });

/**
 * Whether a KeyPackage with this lifetime may enter the directory at `nowMs`; throws MLS_INVALID_KEY_PACKAGE
 * saying which rule it breaks. Returns notAfter in seconds.
 */
export function checkLifetime(lifetime: { notBefore: bigint; notAfter: bigint }, nowMs: number): number {
  const now = BigInt(Math.floor(nowMs / 1000));
  const { notBefore, notAfter } = lifetime;
  const bad = (text: string): AppError => new AppError('MLS_INVALID_KEY_PACKAGE', `the leaf node's lifetime (RFC 9420 section 7.2) ${text}`);
  if (notAfter < notBefore) throw bad('ends before it begins');
  if (notBefore > now + BigInt(KP_CLOCK_SKEW)) throw bad(`is not valid yet: notBefore is more than ${KP_CLOCK_SKEW / 60} minutes ahead of the proxy's clock`);
  if (notAfter <= now) throw bad('has expired: notAfter is past');
  if (notAfter - now <= BigInt(KP_MIN_LEFT)) throw bad(`has ${KP_MIN_LEFT / 3600} hour or less left (notAfter)`);
  if (notAfter - notBefore > BigInt(KP_MAX_LIFETIME)) throw bad(`is longer than ${KP_MAX_LIFETIME / 86_400} days (notAfter - notBefore)`);
  return Number(notAfter);
}

export class MlsService {
  private externalSender: Promise<{ signatureKey: string; credential: string }> | null = null;
  /** Each accepted suite's signature scheme (ts-mls's own implementation), made on first use. */
  private readonly signatures = new Map<number, Promise<Signature>>();

  constructor(private readonly deps: MlsServiceDeps) {}

  /** docs/e2ee.md section 2: the credential identity binds the signature key to `wallet` (the caller). */
  checkIdentity(identity: Uint8Array, signatureKey: Uint8Array, wallet: string, now: number): void {
    if (identity.length > MAX_IDENTITY_BYTES) throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the credential identity is too long');
    let o: Record<string, unknown>;
    const text = Buffer.from(identity).toString('utf8');
    try {
      o = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the credential identity is not JSON');
    }
    if (typeof o !== 'object' || o === null || o['v'] !== 1 || typeof o['wallet'] !== 'string' || typeof o['delegationMessage'] !== 'string'
      || typeof o['delegationSig'] !== 'string' || typeof o['keySig'] !== 'string'
      || JSON.stringify({ v: 1, wallet: o['wallet'], delegationMessage: o['delegationMessage'], delegationSig: o['delegationSig'], keySig: o['keySig'] }) !== text) {
      throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the credential identity is not {"v":1,"wallet","delegationMessage","delegationSig","keySig"} in that order');
    }
    const claimed = o['wallet'];
    if (!isAddress(claimed) || claimed !== claimed.toLowerCase()) throw new AppError('MLS_INVALID_KEY_PACKAGE', 'wallet must be a lowercase address');
    const mismatch = (reason: string, text: string): AppError => new AppError('MLS_CREDENTIAL_MISMATCH', text, { reason });
    if (claimed !== wallet) throw mismatch('wallet', 'the credential names another wallet than the caller');
    let delegation;
    try {
      delegation = parseDelegation(o['delegationMessage'], this.deps.maxDelegationMs);
    } catch {
      throw mismatch('delegation', 'the credential\'s delegation message is malformed');
    }
    if (this.deps.recoverText(o['delegationMessage'], o['delegationSig']) !== wallet) throw mismatch('delegationSig', 'delegationSig does not recover to the wallet');
    const keyText = `relation-mls-credential:v1:${Buffer.from(signatureKey).toString('hex')}`;
    if (this.deps.recoverText(keyText, o['keySig']) !== delegation.sessionAddress) throw mismatch('keySig', 'keySig does not recover to the delegated session key');
    if (now < delegation.createdAt || now > delegation.expiresAt) throw mismatch('expired', 'the credential\'s delegation is outside its window');
  }

  private signatureOf(suite: number): Promise<Signature> {
    let p = this.signatures.get(suite);
    if (!p) {
      const name = SUITE_NAMES.get(suite);
      if (!name) throw new AppError('MLS_UNSUPPORTED_SUITE');
      p = getCiphersuiteImpl(name).then((impl) => impl.signature);
      p.catch(() => { this.signatures.delete(suite); });
      this.signatures.set(suite, p);
    }
    return p;
  }

  /**
   * RFC 9420 section 10.1 as a member would check it on add or join, with ts-mls's own functions: the
   * leaf node's signature (LeafNodeTBS, source key_package, section 7.3), the KeyPackage's signature
   * (KeyPackageTBS), both with the leaf's signature key, and an init key other than the encryption key.
   * Two Ed25519 verifications over at most the package's own bytes: bounded by the body limit.
   */
  private async checkSignatures(kp: KeyPackage): Promise<void> {
    const s = await this.signatureOf(kp.cipherSuite);
    const verified = async (f: () => Promise<boolean>): Promise<boolean> => {
      try {
        return (await f()) === true;
      } catch {
        return false; // a signature key or signature the scheme cannot even read
      }
    };
    if (!(await verified(() => verifyLeafNodeSignatureKeyPackage(kp.leafNode, s)))) {
      throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the leaf node signature (LeafNodeTBS, RFC 9420 section 7.3) does not verify with the leaf\'s signature key');
    }
    if (!(await verified(() => verifyKeyPackage(kp, s)))) {
      throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the KeyPackage signature (KeyPackageTBS, RFC 9420 section 10.1) does not verify with the leaf node\'s signature key');
    }
    if (Buffer.from(kp.initKey).equals(Buffer.from(kp.leafNode.hpkePublicKey))) {
      throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the init key equals the leaf node\'s encryption key (RFC 9420 section 10.1)');
    }
  }

  private async checkPackage(b64: unknown, wallet: string, now: number, identities?: Set<string>): Promise<CheckedPackage> {
    if (typeof b64 !== 'string') throw new AppError('INVALID_FIELD', 'a KeyPackage must be a base64 string', { field: 'keyPackages' });
    let bytes: Buffer;
    try {
      bytes = strictBase64(b64);
    } catch {
      throw new AppError('MLS_MALFORMED', 'a KeyPackage is not standard base64');
    }
    let msg: MlsMessage;
    try {
      const r = mlsMessageDecoder(bytes, 0);
      if (!r || r[1] !== bytes.length) throw new Error('trailing or missing bytes');
      msg = r[0];
    } catch {
      throw new AppError('MLS_MALFORMED', 'a KeyPackage is not one well-formed MLSMessage');
    }
    if (msg.wireformat !== wireformats.mls_key_package) throw new AppError('MLS_INVALID_KEY_PACKAGE', 'not an MLSMessage of wire format mls_key_package');
    // The signatures are verified over ts-mls's re-encoding of what it decoded; the bytes stored and handed
    // to claimers must be those bytes (the decoder also takes non-minimal vector lengths, RFC 9420 section 2.1.2).
    let canonical: boolean;
    try {
      canonical = Buffer.from(encode(mlsMessageEncoder, msg)).equals(bytes);
    } catch {
      canonical = false;
    }
    if (!canonical) throw new AppError('MLS_MALFORMED', 'a KeyPackage is not in its canonical encoding (minimal vector lengths, RFC 9420 section 2.1.2)');
    const kp = msg.keyPackage;
    if (!SUITES.has(kp.cipherSuite)) throw new AppError('MLS_UNSUPPORTED_SUITE');
    const cred = kp.leafNode.credential;
    if (cred.credentialType !== BASIC || !('identity' in cred)) throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the credential is not basic');
    if (!('lifetime' in kp.leafNode)) throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the leaf node\'s source is not key_package (no lifetime)');
    const notAfter = checkLifetime(kp.leafNode.lifetime, now);
    // Before the credential's two EIP-191 recoveries, which cost more: the binding only means something
    // for a package its signature key did sign.
    await this.checkSignatures(kp);
    const identity = (cred as { identity: Uint8Array }).identity;
    // The packages of one call share one credential (checked below): its two recoveries run once per call.
    const key = `${Buffer.from(identity).toString('base64')}:${Buffer.from(kp.leafNode.signaturePublicKey).toString('hex')}`;
    if (!identities?.has(key)) {
      this.checkIdentity(identity, kp.leafNode.signaturePublicKey, wallet, now);
      identities?.add(key);
    }
    return {
      deviceId: deviceIdOf(kp.leafNode.signaturePublicKey),
      credential: encodeBasicCredential(identity).toString('base64'),
      signatureKey: Buffer.from(kp.leafNode.signaturePublicKey).toString('hex'),
      notAfter,
    };
  }

  async upload(wallet: string, body: unknown): Promise<{ deviceId: string; available: number; lastResort: boolean }> {
    const o = objectOf(body, ['keyPackages', 'lastResort']);
    const list = o['keyPackages'] ?? [];
    if (!Array.isArray(list) || list.length > MAX_PER_CALL) throw new AppError('INVALID_FIELD', `keyPackages must be an array of at most ${MAX_PER_CALL}`, { field: 'keyPackages' });
    const last = o['lastResort'];
    if (list.length === 0 && last === undefined) throw new AppError('INVALID_FIELD', 'nothing to upload', { field: 'keyPackages' });
    const now = this.deps.clock.now();
    const checked: CheckedPackage[] = [];
    const identities = new Set<string>();
    for (const p of list as unknown[]) checked.push(await this.checkPackage(p, wallet, now, identities)); // in order: the first bad one is the answer
    const lastChecked = last === undefined || last === null ? null : await this.checkPackage(last, wallet, now, identities);
    const all = lastChecked ? [...checked, lastChecked] : checked;
    const first = all[0] as CheckedPackage;
    if (all.some((c) => c.signatureKey !== first.signatureKey || c.credential !== first.credential)) {
      throw new AppError('MLS_INVALID_KEY_PACKAGE', 'the KeyPackages of one call must share one signature key and credential');
    }
    const packages: MlsNewPackage[] = (list as string[]).map((p, i) => ({ keyPackage: p, notAfter: (checked[i] as CheckedPackage).notAfter }));
    const out = await this.deps.store.mlsUpload({ deviceId: first.deviceId, address: wallet, credential: first.credential, createdAt: now },
      packages, lastChecked ? { keyPackage: last as string, notAfter: lastChecked.notAfter } : null, { maxDevices: this.deps.maxDevices, maxPackages: MAX_PER_DEVICE }, mlsAt(now));
    if (out.status === 'refused') {
      if (out.code === 'TOO_MANY_PACKAGES') throw new AppError('INVALID_FIELD', `a device keeps at most ${MAX_PER_DEVICE} KeyPackages`, { field: 'keyPackages' });
      throw new AppError('MLS_TOO_MANY_DEVICES');
    }
    return { deviceId: first.deviceId, available: out.available, lastResort: out.lastResort };
  }

  async devices(address: string): Promise<{ address: string; devices: unknown[] }> {
    const a = address.toLowerCase();
    const list = await this.deps.store.mlsDevices(a, mlsAt(this.deps.clock.now()));
    return {
      address: a,
      devices: list.map((d) => ({ deviceId: d.deviceId, fingerprint: fingerprintOf(d.deviceId), credential: d.credential, available: d.available, lastResort: d.lastResort, createdAt: d.createdAt })),
    };
  }

  async deleteDevice(wallet: string, deviceId: string): Promise<void> {
    if (!/^[0-9a-f]{32}$/.test(deviceId)) throw new AppError('INVALID_FIELD', 'deviceId must be 32 lowercase hex digits', { field: 'deviceId' });
    if (!(await this.deps.store.mlsDeleteDevice(wallet, deviceId))) throw new AppError('MLS_NO_KEY_PACKAGE', 'no such device of the caller');
  }

  async claim(wallet: string, body: unknown, clientAddress?: string): Promise<{ keyPackages: unknown[]; missing: string[] }> {
    const o = objectOf(body, ['addresses']);
    const list = o['addresses'];
    if (!Array.isArray(list) || list.length === 0 || list.length > MAX_CLAIM_ADDRESSES || !list.every(isAddress)) {
      throw new AppError('INVALID_FIELD', `addresses must be 1 to ${MAX_CLAIM_ADDRESSES} addresses`, { field: 'addresses' });
    }
    if (this.deps.limitClaim && clientAddress !== undefined) await this.deps.limitClaim(wallet, clientAddress);
    const addresses = [...new Set(list.map((a: string) => a.toLowerCase()))];
    const claimed = await this.deps.store.mlsClaim(addresses, mlsAt(this.deps.clock.now()));
    const have = new Set(claimed.map((c) => c.address));
    const missing = addresses.filter((a) => !have.has(a));
    this.signalLow(claimed, missing);
    if (claimed.length === 0) throw new AppError('MLS_NO_KEY_PACKAGE');
    return {
      keyPackages: claimed.map((c) => ({ address: c.address, deviceId: c.deviceId, keyPackage: c.keyPackage, lastResort: c.lastResort })),
      missing,
    };
  }

  /**
   * A device whose usable single-use packages fell below the low-water mark: its owner's /ws connections
   * are told. An address none of whose devices had a usable package (all expired, or never uploaded)
   * is told too, with `deviceId: null`: such a device is skipped by every claim, so no other push would
   * ever reach it while others try to start conversations with it.
   */
  private signalLow(claimed: readonly MlsClaimed[], missing: readonly string[]): void {
    for (const c of claimed) {
      if (c.available >= this.deps.lowWater) continue;
      this.deps.push.publish([c.address], { frame: JSON.stringify({ type: 'mls.keyPackagesLow', deviceId: c.deviceId, available: c.available }) });
    }
    for (const a of missing) this.deps.push.publish([a], { frame: JSON.stringify({ type: 'mls.keyPackagesLow', deviceId: null, available: 0 }) });
  }

  async group(wallet: string, chatId: string): Promise<Record<string, unknown>> {
    const cid = await this.deps.resolveChat(wallet, chatId);
    const g = await this.deps.store.mlsGroupRecord(cid);
    return { cid, epoch: g.epoch, groupInfo: g.groupInfo, groupInfoEpoch: g.groupInfoEpoch, externalSender: await this.externalSenderEntry() };
  }

  async putGroupInfo(wallet: string, chatId: string, body: unknown): Promise<{ cid: string; epoch: number }> {
    const cid = await this.deps.resolveChat(wallet, chatId);
    const o = objectOf(body, ['epoch', 'groupInfo']);
    const epoch = o['epoch'];
    if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw new AppError('INVALID_FIELD', 'epoch must be a non-negative integer', { field: 'epoch' });
    const info = o['groupInfo'];
    if (typeof info !== 'string') throw new AppError('INVALID_FIELD', 'groupInfo must be base64', { field: 'groupInfo' });
    let bytes: Buffer;
    let gi;
    try {
      bytes = strictBase64(info);
      const r = mlsMessageDecoder(bytes, 0);
      if (!r || r[1] !== bytes.length) throw new Error('trailing or missing bytes');
      gi = r[0];
    } catch {
      throw new AppError('MLS_MALFORMED', 'groupInfo is not one well-formed MLSMessage');
    }
    if (gi.wireformat !== wireformats.mls_group_info) throw new AppError('MLS_MALFORMED', 'groupInfo is not of wire format mls_group_info');
    const ctx = gi.groupInfo.groupContext;
    if (Buffer.from(ctx.groupId).toString('latin1') !== cid) throw new AppError('MLS_WRONG_GROUP');
    if (ctx.epoch !== BigInt(epoch)) throw new AppError('INVALID_FIELD', 'epoch is not the GroupInfo\'s epoch', { field: 'epoch' });
    const r = await this.deps.store.mlsPutGroupInfo(cid, epoch, info, this.deps.clock.now());
    if (!r.stored) throw new AppError('MLS_STALE_EPOCH', undefined, { currentEpoch: r.currentEpoch });
    this.deps.onGroupInfo?.(cid);
    return { cid, epoch };
  }

  async epochAuth(wallet: string, chatId: string, body: unknown): Promise<{ status: 'ok' } | { status: 'out_of_sync'; epoch: number }> {
    const cid = await this.deps.resolveChat(wallet, chatId);
    const o = objectOf(body, ['epoch', 'hash']);
    const epoch = o['epoch'];
    if (typeof epoch !== 'number' || !Number.isSafeInteger(epoch) || epoch < 0) throw new AppError('INVALID_FIELD', 'epoch must be a non-negative integer', { field: 'epoch' });
    const hash = o['hash'];
    if (typeof hash !== 'string' || !HASH.test(hash)) throw new AppError('INVALID_FIELD', 'hash must be 64 lowercase hex digits', { field: 'hash' });
    const first = await this.deps.store.mlsEpochAuth(cid, epoch, hash);
    return first === hash ? { status: 'ok' } : { status: 'out_of_sync', epoch };
  }

  /** The external sender's key pair (raw Ed25519 public key and seed), for the chain watcher's proposals only. */
  async externalSenderKeys(): Promise<{ signaturePublicKey: Uint8Array; signaturePrivateKey: Uint8Array }> {
    const stored = await this.storedExternalSender();
    return { signaturePublicKey: Buffer.from(stored.publicKey, 'base64url'), signaturePrivateKey: Buffer.from(stored.privateKey, 'base64url') };
  }

  private async storedExternalSender(): Promise<{ publicKey: string; privateKey: string }> {
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    const pub = publicKey.export({ format: 'jwk' }).x as string;
    const priv = privateKey.export({ format: 'jwk' }).d as string;
    return JSON.parse(await this.deps.store.metaGetOrSet('mls_external_sender', JSON.stringify({ publicKey: pub, privateKey: priv }))) as { publicKey: string; privateKey: string };
  }

  /** The proxy's external sender (docs/e2ee.md section 5): an Ed25519 key made once per store, kept in it, never logged. */
  externalSenderEntry(): Promise<{ signatureKey: string; credential: string }> {
    this.externalSender ??= (async () => {
      const stored = await this.storedExternalSender();
      const identity = Buffer.from(JSON.stringify({ v: 1, proxy: this.deps.proxyName }), 'utf8');
      return { signatureKey: Buffer.from(stored.publicKey, 'base64url').toString('base64'), credential: encodeBasicCredential(identity).toString('base64') };
    })();
    this.externalSender.catch(() => { this.externalSender = null; });
    return this.externalSender;
  }
}

function objectOf(body: unknown, fields: readonly string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AppError('INVALID_FIELD', 'the body must be a JSON object');
  for (const k of Object.keys(body)) {
    if (!fields.includes(k)) throw new AppError('UNKNOWN_FIELD', `unknown field "${k.slice(0, 64)}"`, { field: k.slice(0, 64) });
  }
  return body as Record<string, unknown>;
}
