import { createHash } from 'node:crypto';
import type { Wallet } from 'ethers';
import { delegationText } from '../../src/protocol/delegation.js';
import {
  createApplicationMessage, createCommit, createGroup, createProposal, defaultCredentialTypes, defaultProposalTypes, encode, generateKeyPackage, generateKeyPackageWithKey,
  getCiphersuiteImpl, mlsMessageEncoder, protocolVersions, unsafeTestingAuthenticationService, wireformats,
  type CiphersuiteImpl, type ClientState, type Credential, type MlsContext, type MlsMessage, type Proposal,
} from 'ts-mls';
import { signWithLabel } from 'ts-mls/dist/src/crypto/signature.js';
import { keyPackageTBSEncoder } from 'ts-mls/dist/src/keyPackage.js';

/**
 * Real MLS bytes for the Delivery Service's tests, made with ts-mls itself (the SDK's engine), and
 * credentials as docs/e2ee.md section 2 builds them (wallet -> session key -> MLS signature key).
 */
export type Suite = 'MLS_256_XWING_AES256GCM_SHA512_Ed25519' | 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519';
const impls = new Map<string, Promise<CiphersuiteImpl>>();
export function suite(name: Suite = 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519'): Promise<CiphersuiteImpl> {
  let p = impls.get(name);
  if (!p) impls.set(name, (p = getCiphersuiteImpl(name)));
  return p;
}
export async function context(name?: Suite): Promise<MlsContext> {
  return { cipherSuite: await suite(name), authService: unsafeTestingAuthenticationService };
}

export const b64 = (m: MlsMessage): string => Buffer.from(encode(mlsMessageEncoder, m)).toString('base64');
export const bytesB64 = (...parts: Uint8Array[]): string => Buffer.concat(parts.map((p) => Buffer.from(p))).toString('base64');
export const enc = (m: MlsMessage): Uint8Array => encode(mlsMessageEncoder, m);


export interface CredentialParts {
  wallet: Wallet;
  session: Wallet;
  createdAt?: number;
  expiresAt?: number;
  /** Who the identity names (default: the wallet). */
  claimWallet?: string;
  /** Sign keySig with this instead of the session key. */
  keySigner?: Wallet;
  delegationMessage?: string;
}

/** docs/e2ee.md section 2: the basic credential identity binding `publicKey` to the wallet. */
export function credentialIdentity(p: CredentialParts, publicKey: Uint8Array): string {
  const now = Date.now();
  const delegationMessage = p.delegationMessage ?? delegationText(p.session.address, p.createdAt ?? now - 60_000, p.expiresAt ?? now + 86_400_000);
  const delegationSig = p.wallet.signMessageSync(delegationMessage);
  const keySig = (p.keySigner ?? p.session).signMessageSync(`relation-mls-credential:v1:${Buffer.from(publicKey).toString('hex')}`);
  return JSON.stringify({ v: 1, wallet: (p.claimWallet ?? p.wallet.address).toLowerCase(), delegationMessage, delegationSig, keySig });
}

export interface Device {
  signaturePublicKey: Uint8Array;
  signaturePrivateKey: Uint8Array;
  credential: Credential;
  deviceId: string;
}

/** One device: an Ed25519 signature key and its credential. */
export async function device(p: CredentialParts, name?: Suite): Promise<Device> {
  const impl = await suite(name);
  const kp = await impl.signature.keygen();
  const identity = new TextEncoder().encode(credentialIdentity(p, kp.publicKey));
  return {
    signaturePublicKey: kp.publicKey, signaturePrivateKey: kp.signKey,
    credential: { credentialType: defaultCredentialTypes.basic, identity },
    deviceId: createHash('sha256').update(kp.publicKey).digest('hex').slice(0, 32),
  };
}

/** A KeyPackage of `d`; `lifetime` in seconds since the epoch (ts-mls's default: a day ago to 15 days ahead). */
export async function keyPackage(d: Device, name?: Suite, lifetime?: { notBefore: number; notAfter: number }): Promise<{ b64: string; pkg: Awaited<ReturnType<typeof generateKeyPackage>> }> {
  const impl = await suite(name);
  const pkg = await generateKeyPackageWithKey({
    credential: d.credential, cipherSuite: impl,
    signatureKeyPair: { publicKey: d.signaturePublicKey, signKey: d.signaturePrivateKey },
    ...(lifetime ? { lifetime: { notBefore: BigInt(lifetime.notBefore), notAfter: BigInt(lifetime.notAfter) } } : {}),
  });
  return { b64: b64({ wireformat: wireformats.mls_key_package, version: protocolVersions.mls10, keyPackage: pkg.publicPackage }), pkg };
}

/** A group with one member (a throwaway credential), at epoch 0. */
export async function soloGroup(groupId: string, name?: Suite): Promise<ClientState> {
  const impl = await suite(name);
  const credential: Credential = { credentialType: defaultCredentialTypes.basic, identity: new TextEncoder().encode('test') };
  const kp = await generateKeyPackage({ credential, cipherSuite: impl });
  return createGroup({ context: await context(name), groupId: new TextEncoder().encode(groupId), keyPackage: kp.publicPackage, privateKeyPackage: kp.privatePackage });
}

/** An empty commit (public message unless `privately`): its bytes and the state after it. */
export async function commit(state: ClientState, opts: { privately?: boolean; add?: boolean; name?: Suite } = {}): Promise<{ bytes: Uint8Array; welcome: Uint8Array | null; state: ClientState }> {
  const ctx = await context(opts.name);
  const extraProposals: Proposal[] = [];
  if (opts.add) {
    const impl = await suite(opts.name);
    const kp = await generateKeyPackage({ credential: { credentialType: defaultCredentialTypes.basic, identity: new TextEncoder().encode('joiner') }, cipherSuite: impl });
    extraProposals.push({ proposalType: defaultProposalTypes.add, add: { keyPackage: kp.publicPackage } });
  }
  const r = await createCommit({ context: ctx, state, extraProposals, wireAsPublicMessage: opts.privately !== true, ratchetTreeExtension: true });
  return { bytes: enc(r.commit), welcome: r.welcome ? enc(r.welcome) : null, state: r.newState };
}

export async function application(state: ClientState, text: string, name?: Suite): Promise<{ bytes: Uint8Array; state: ClientState }> {
  const r = await createApplicationMessage({ context: await context(name), state, message: new TextEncoder().encode(text) });
  return { bytes: enc(r.message), state: r.newState };
}

/** A (public) proposal to change nothing substantial: a group-context-extensions proposal with none. */
export async function proposal(state: ClientState, name?: Suite): Promise<{ bytes: Uint8Array; state: ClientState }> {
  const r = await createProposal({ context: await context(name), state, wireAsPublicMessage: true, proposal: { proposalType: defaultProposalTypes.group_context_extensions, groupContextExtensions: { extensions: [] } } });
  return { bytes: enc(r.message), state: r.newState };
}

type PublicPackage = Awaited<ReturnType<typeof generateKeyPackage>>['publicPackage'];
const kpMessage = (kp: PublicPackage): string => b64({ wireformat: wireformats.mls_key_package, version: protocolVersions.mls10, keyPackage: kp });
/** The KeyPackage signature (over KeyPackageTBS, RFC 9420 section 10.1) made anew with `signKey`. */
async function resignPackage(kp: PublicPackage, signKey: Uint8Array, name?: Suite): Promise<PublicPackage> {
  const impl = await suite(name);
  return { ...kp, signature: await signWithLabel(signKey, 'KeyPackageTBS', encode(keyPackageTBSEncoder, kp), impl.signature) };
}
const flipped = (b: Uint8Array, at = 7): Uint8Array => {
  const c = Uint8Array.from(b);
  c[at % c.length] = (c[at % c.length] as number) ^ 0x01;
  return c;
};

/**
 * KeyPackages of a genuine device (its credential binds the wallet) that a member must refuse (RFC 9420
 * section 10.1): each breaks one signature rule and nothing else.
 */
export async function badKeyPackages(d: Device, name?: Suite): Promise<Record<'flippedSignature' | 'signedByOtherKey' | 'leafSignatureBroken' | 'initKeyIsEncryptionKey' | 'nonMinimalLength', string>> {
  const impl = await suite(name);
  const base = (await keyPackage(d, name)).pkg.publicPackage;
  const other = await impl.signature.keygen();
  // the leaf's signature broken, the KeyPackage signed again over it with the device's own key: only the leaf check fails
  const leafBroken = await resignPackage({ ...base, leafNode: { ...base.leafNode, signature: flipped(base.leafNode.signature) } }, d.signaturePrivateKey, name);
  const sameInit = await resignPackage({ ...base, initKey: base.leafNode.hpkePublicKey }, d.signaturePrivateKey, name);
  // the signature's length (64) in four bytes instead of two: ts-mls decodes it, and the signature still verifies
  const raw = Buffer.from(kpMessage(base), 'base64');
  const at = raw.length - base.signature.length - 2;
  if (raw[at] !== 0x40 || raw[at + 1] !== base.signature.length) throw new Error('unexpected signature length prefix');
  const nonMinimal = Buffer.concat([raw.subarray(0, at), Buffer.from([0x80, 0, 0, base.signature.length]), raw.subarray(at + 2)]);
  return {
    flippedSignature: kpMessage({ ...base, signature: flipped(base.signature) }),
    signedByOtherKey: kpMessage(await resignPackage(base, other.signKey, name)),
    leafSignatureBroken: kpMessage(leafBroken),
    initKeyIsEncryptionKey: kpMessage(sameInit),
    nonMinimalLength: nonMinimal.toString('base64'),
  };
}
