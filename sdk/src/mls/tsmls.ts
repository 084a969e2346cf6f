import {
  clientStateDecoder, clientStateEncoder, contentTypes, createApplicationMessage, createCommit, createGroup,
  createGroupInfoWithExternalPubAndRatchetTree, decode, defaultCredentialTypes, defaultExtensionTypes, defaultProposalTypes, encode,
  generateKeyPackageWithKey, getCiphersuiteImpl, joinGroupExternal, joinGroupWithExtensions, makeKeyPackageRef, mlsMessageDecoder,
  mlsMessageEncoder, nodeTypes, privateKeyPackageDecoder, privateKeyPackageEncoder, processMessage, protocolVersions, wireformats,
  type AuthenticationService, type CiphersuiteImpl, type CiphersuiteName, type ClientState, type Credential, type GroupContextExtension,
  type CryptoProvider, type KeyPackage, type MlsContext, type MlsMessage, type PrivateKeyPackage, type Proposal,
} from 'ts-mls';
import { defaultCryptoProvider } from './crypto.js';
import type { ExternalSenderEntry, KeyPackagePair, MlsDevice, MlsEngine, MlsGroup, MlsHeader, MlsMember, ProcessResult } from './engine.js';

export const DEFAULT_SUITE: CiphersuiteName = 'MLS_256_XWING_AES256GCM_SHA512_Ed25519';

/** A group state of this adapter: the ts-mls ClientState behind the port's opaque type. */
class TsGroup implements MlsGroup {
  constructor(readonly state: ClientState) {}
  get groupId(): string { return new TextDecoder().decode(this.state.groupContext.groupId); }
  get epoch(): bigint { return this.state.groupContext.epoch; }
}

function st(g: MlsGroup): ClientState {
  if (!(g instanceof TsGroup)) throw new Error('not a ts-mls group state');
  return g.state;
}

// --- TLS encoding of a basic Credential (ts-mls does not export its credential codec) ---

function varint(n: number): Uint8Array {
  if (n < 64) return Uint8Array.of(n);
  if (n < 16384) return Uint8Array.of(0x40 | (n >> 8), n & 0xff);
  return Uint8Array.of(0x80 | ((n >>> 24) & 0x3f), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

export function encodeCredential(c: Credential): Uint8Array {
  if (c.credentialType !== defaultCredentialTypes.basic || !('identity' in c)) throw new Error('only basic credentials are encoded');
  const len = varint(c.identity.length);
  const out = new Uint8Array(2 + len.length + c.identity.length);
  out[0] = 0; out[1] = defaultCredentialTypes.basic;
  out.set(len, 2);
  out.set(c.identity, 2 + len.length);
  return out;
}

export function decodeCredential(b: Uint8Array): Credential | null {
  if (b.length < 3) return null;
  const type = (b[0]! << 8) | b[1]!;
  if (type !== defaultCredentialTypes.basic) return null;
  const first = b[2]!;
  const prefix = first >> 6;
  let len: number; let off: number;
  if (prefix === 0) { len = first & 0x3f; off = 3; }
  else if (prefix === 1) { len = ((first & 0x3f) << 8) | (b[3] ?? 0); off = 4; }
  else if (prefix === 2) { len = ((first & 0x3f) * 2 ** 24) + ((b[3] ?? 0) << 16) + ((b[4] ?? 0) << 8) + (b[5] ?? 0); off = 6; }
  else return null;
  if (off + len !== b.length) return null;
  return { credentialType: defaultCredentialTypes.basic, identity: b.slice(off, off + len) };
}

function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

function eq(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

export interface TsMlsOptions {
  suite?: CiphersuiteName;
  /**
   * The Authentication Service for members' credentials: true when `identity` vouches for `signaturePublicKey`.
   * `member`: the leaf is already a member's (in the tree being joined, or unchanged in the group's own
   * tree); false for a leaf entering the group (an added KeyPackage, an external joiner, a changed leaf).
   */
  validateIdentity: (identity: Uint8Array, signaturePublicKey: Uint8Array, opts: { member: boolean }) => boolean | Promise<boolean>;
  /** The clock KeyPackage lifetimes are made from, in ms (default Date.now; tests pass a fake one). */
  now?: () => number;
  /**
   * The crypto ts-mls runs on (default `defaultCryptoProvider()`: `node:crypto` in Node, WebCrypto and
   * noble in a browser; see ./crypto.ts). Every provider computes the same bytes.
   */
  cryptoProvider?: CryptoProvider;
}

/**
 * The lifetime of the KeyPackages this device makes (docs/e2ee.md section 5), in seconds: valid from an
 * hour ago (a clock behind ours still accepts it) for 30 days. The proxy refuses more than 5 minutes
 * ahead, 1 hour or less left and more than 90 days in all; ts-mls's own default is 15 days.
 */
export const KP_NOT_BEFORE_SKEW_S = 3600;
export const KP_LIFETIME_S = 30 * 86_400;

/** The leaf node lifetime of a KeyPackage MLSMessage, in seconds since the epoch; null for anything else. */
export function keyPackageLifetime(publicMessage: Uint8Array): { notBefore: number; notAfter: number } | null {
  try {
    const r = mlsMessageDecoder(publicMessage, 0);
    if (!r || r[0].wireformat !== wireformats.mls_key_package) return null;
    const leaf = r[0].keyPackage.leafNode;
    if (!('lifetime' in leaf)) return null;
    return { notBefore: Number(leaf.lifetime.notBefore), notAfter: Number(leaf.lifetime.notAfter) };
  } catch {
    return null;
  }
}

/** Whether (credential, key) is a leaf of `tree`, byte for byte. */
type LeafTest = (credential: Credential, signaturePublicKey: Uint8Array) => boolean;

/**
 * The ts-mls adapter of the MlsEngine port. Commits and proposals travel as private messages (their
 * content type stays readable for the Delivery Service), external commits as public ones (RFC 9420).
 */
export class TsMlsEngine implements MlsEngine {
  private constructor(readonly suite: string, private readonly cs: CiphersuiteImpl, private readonly ctx: MlsContext, private readonly trusted: ExternalSenderEntry[],
    private readonly now: () => number) {}

  static async create(o: TsMlsOptions): Promise<TsMlsEngine> {
    const suite = o.suite ?? DEFAULT_SUITE;
    const cs = await getCiphersuiteImpl(suite, o.cryptoProvider ?? await defaultCryptoProvider());
    const trusted: ExternalSenderEntry[] = [];
    const authService = (isMember: LeafTest): AuthenticationService => ({
      async validateCredential(credential, signaturePublicKey) {
        if (credential.credentialType !== defaultCredentialTypes.basic || !('identity' in credential)) return false;
        // An external sender the client was told to trust (the proxy's, from GET /mls/external-sender).
        for (const t of trusted) {
          if (eq(t.signatureKey, signaturePublicKey) && eq(t.credential, encodeCredential(credential))) return true;
        }
        return o.validateIdentity(credential.identity, signaturePublicKey, { member: isMember(credential, signaturePublicKey) });
      },
    });
    const engine = new TsMlsEngine(suite, cs, { cipherSuite: cs, authService: authService(() => false) }, trusted, o.now ?? Date.now);
    engine.contextFor = (isMember) => ({ cipherSuite: cs, authService: authService(isMember) });
    return engine;
  }

  /** A context whose Authentication Service knows which leaves are members' already. */
  private contextFor: (isMember: LeafTest) => MlsContext = () => this.ctx;

  /**
   * The context for processing a message of `state`'s group: a leaf unchanged in the group's tree is a
   * member's (its delegation was checked when it entered; members offline past their session key's
   * expiry stay members), anything else is entering and checked in full.
   */
  private groupContext(state: ClientState): MlsContext {
    return this.contextFor((credential, key) => {
      const bytes = encodeCredential(credential);
      return state.ratchetTree.some((n) => n !== undefined && n.nodeType === nodeTypes.leaf && eq(n.leaf.signaturePublicKey, key) && eq(encodeCredential(n.leaf.credential), bytes));
    });
  }

  /**
   * The context for joining: every leaf of the tree being joined is a member's (a member signed the
   * GroupInfo, or encrypted the Welcome to this device, after checking each leaf when it entered).
   */
  private joinContext(): MlsContext {
    return this.contextFor(() => true);
  }

  /** Trusts an external sender (signature key and credential) in the Authentication Service. */
  trustExternalSender(e: ExternalSenderEntry): void {
    if (!this.trusted.some((t) => eq(t.signatureKey, e.signatureKey))) this.trusted.push(e);
  }

  async generateSignatureKey(): Promise<{ publicKey: Uint8Array; privateKey: Uint8Array }> {
    const k = await this.cs.signature.keygen();
    return { publicKey: k.publicKey, privateKey: k.signKey };
  }

  async generateKeyPackage(device: MlsDevice): Promise<KeyPackagePair> {
    const now = Math.floor(this.now() / 1000);
    const { publicPackage, privatePackage } = await generateKeyPackageWithKey({
      credential: { credentialType: defaultCredentialTypes.basic, identity: device.identity },
      signatureKeyPair: { signKey: device.signaturePrivateKey, publicKey: device.signaturePublicKey },
      cipherSuite: this.cs,
      lifetime: { notBefore: BigInt(now - KP_NOT_BEFORE_SKEW_S), notAfter: BigInt(now + KP_LIFETIME_S) },
    });
    return {
      publicMessage: encode(mlsMessageEncoder, { wireformat: wireformats.mls_key_package, version: protocolVersions.mls10, keyPackage: publicPackage }),
      privateKeys: encode(privateKeyPackageEncoder, privatePackage),
    };
  }

  private unpack(kp: KeyPackagePair): { pub: KeyPackage; priv: PrivateKeyPackage } {
    const m = decode(mlsMessageDecoder, kp.publicMessage);
    if (!m || m.wireformat !== wireformats.mls_key_package) throw new Error('not a KeyPackage');
    const priv = decode(privateKeyPackageDecoder, kp.privateKeys);
    if (!priv) throw new Error('unreadable private KeyPackage');
    return { pub: m.keyPackage, priv };
  }

  async createGroup(groupId: string, _device: MlsDevice, kp: KeyPackagePair, opts: { externalSenders?: ExternalSenderEntry[] } = {}): Promise<MlsGroup> {
    const { pub, priv } = this.unpack(kp);
    const extensions: GroupContextExtension[] = [];
    for (const e of opts.externalSenders ?? []) {
      const credential = decodeCredential(e.credential);
      if (!credential) throw new Error('unreadable external sender credential');
      this.trustExternalSender(e);
      extensions.push({ extensionType: defaultExtensionTypes.external_senders, extensionData: { signaturePublicKey: e.signatureKey, credential } });
    }
    const state = await createGroup({ context: this.ctx, groupId: new TextEncoder().encode(groupId), keyPackage: pub, privateKeyPackage: priv, extensions });
    return new TsGroup(state);
  }

  /** The signature keys of the group's external senders (its `external_senders` extension). */
  externalSenders(group: MlsGroup): Uint8Array[] {
    return st(group).groupContext.extensions
      .filter((x) => x.extensionType === defaultExtensionTypes.external_senders)
      .map((x) => (x.extensionData as { signaturePublicKey: Uint8Array }).signaturePublicKey);
  }

  async commit(group: MlsGroup, opts: { add?: Uint8Array[]; remove?: number[]; externalSenders?: ExternalSenderEntry[]; identity?: Uint8Array } = {}): Promise<{ group: MlsGroup; commit: Uint8Array; welcome: Uint8Array | null }> {
    const extraProposals: Proposal[] = [];
    for (const b of opts.add ?? []) {
      const m = decode(mlsMessageDecoder, b);
      if (!m || m.wireformat !== wireformats.mls_key_package) throw new Error('not a KeyPackage');
      extraProposals.push({ proposalType: defaultProposalTypes.add, add: { keyPackage: m.keyPackage } });
    }
    for (const leaf of opts.remove ?? []) extraProposals.push({ proposalType: defaultProposalTypes.remove, remove: { removed: leaf } });
    if (opts.externalSenders) {
      // A GroupContextExtensions proposal: every extension of the group kept, the external senders replaced.
      const extensions: GroupContextExtension[] = st(group).groupContext.extensions.filter((x) => x.extensionType !== defaultExtensionTypes.external_senders);
      for (const e of opts.externalSenders) {
        const credential = decodeCredential(e.credential);
        if (!credential) throw new Error('unreadable external sender credential');
        this.trustExternalSender(e);
        extensions.push({ extensionType: defaultExtensionTypes.external_senders, extensionData: { signaturePublicKey: e.signatureKey, credential } });
      }
      extraProposals.push({ proposalType: defaultProposalTypes.group_context_extensions, groupContextExtensions: { extensions } });
    }
    let state = st(group);
    if (opts.identity) {
      // ts-mls rc.10 has no option for a committer's new leaf credential: its UpdatePath's leaf node copies
      // the credential of the committer's leaf in the tree it starts from (createUpdatePath). So the commit
      // starts from a copy of the state whose own leaf carries the new credential; the path's leaf node is
      // then signed with it, and every member validates it as a changed leaf (in full: the delegation window
      // too). Only the credential of this device's own leaf differs, and that leaf is replaced by the path.
      if (extraProposals.some((p) => p.proposalType === defaultProposalTypes.add)) throw new Error('a credential update commits no Add');
      const i = state.privatePath.leafIndex * 2;
      const node = state.ratchetTree[i];
      if (!node || node.nodeType !== nodeTypes.leaf) throw new Error('this device has no leaf');
      const tree = state.ratchetTree.slice();
      tree[i] = { ...node, leaf: { ...node.leaf, credential: { credentialType: defaultCredentialTypes.basic, identity: opts.identity } } };
      state = { ...state, ratchetTree: tree };
    }
    const r = await createCommit({ context: this.groupContext(st(group)), state, extraProposals, ratchetTreeExtension: true });
    if (opts.identity) {
      // Without a path (a commit of Adds only) the new credential would stay local: a fork. Refuse it.
      const before = state.ratchetTree[state.privatePath.leafIndex * 2];
      const after = r.newState.ratchetTree[r.newState.privatePath.leafIndex * 2];
      if (!before || !after || before.nodeType !== nodeTypes.leaf || after.nodeType !== nodeTypes.leaf || eq(before.leaf.hpkePublicKey, after.leaf.hpkePublicKey)) {
        throw new Error('the credential update commit carries no path');
      }
    }
    return { group: new TsGroup(r.newState), commit: encode(mlsMessageEncoder, r.commit), welcome: r.welcome ? encode(mlsMessageEncoder, r.welcome) : null };
  }

  async joinWelcome(welcome: Uint8Array, candidates: KeyPackagePair[]): Promise<{ group: MlsGroup; used: KeyPackagePair } | null> {
    const m = decode(mlsMessageDecoder, welcome);
    if (!m || m.wireformat !== wireformats.mls_welcome) throw new Error('not a Welcome');
    for (const c of candidates) {
      const { pub, priv } = this.unpack(c);
      const ref = await makeKeyPackageRef(pub, this.cs.hash);
      if (!m.welcome.secrets.some((s) => eq(s.newMember, ref))) continue;
      const r = await joinGroupWithExtensions({ context: this.joinContext(), welcome: m.welcome, keyPackage: pub, privateKeys: priv });
      return { group: new TsGroup(r.state), used: c };
    }
    return null;
  }

  async joinExternal(groupInfo: Uint8Array, _device: MlsDevice, kp: KeyPackagePair, resync: boolean): Promise<{ group: MlsGroup; commit: Uint8Array }> {
    const m = decode(mlsMessageDecoder, groupInfo);
    if (!m || m.wireformat !== wireformats.mls_group_info) throw new Error('not a GroupInfo');
    const { pub, priv } = this.unpack(kp);
    // ts-mls resyncs by finding a leaf with this signature key; without one there is nothing to replace.
    // The ratchet tree extension carries every leaf's raw signature key, so its bytes tell.
    const doResync = resync && contains(groupInfo, pub.leafNode.signaturePublicKey);
    const r = await joinGroupExternal({ context: this.joinContext(), groupInfo: m.groupInfo, keyPackage: pub, privateKeys: priv, resync: doResync });
    return { group: new TsGroup(r.newState), commit: encode(mlsMessageEncoder, { wireformat: wireformats.mls_public_message, version: protocolVersions.mls10, publicMessage: r.publicMessage }) };
  }

  async encrypt(group: MlsGroup, plaintext: Uint8Array): Promise<{ group: MlsGroup; message: Uint8Array }> {
    const r = await createApplicationMessage({ context: this.ctx, state: st(group), message: plaintext });
    return { group: new TsGroup(r.newState), message: encode(mlsMessageEncoder, r.message) };
  }

  async process(group: MlsGroup, message: Uint8Array): Promise<ProcessResult> {
    const m = decode(mlsMessageDecoder, message);
    if (!m || (m.wireformat !== wireformats.mls_private_message && m.wireformat !== wireformats.mls_public_message)) throw new Error('not a framed MLS message');
    const before = st(group);
    if (before.groupActiveState.kind === 'removedFromGroup') throw new Error('this device was removed from the group');
    const r = await processMessage({ context: this.groupContext(before), state: before, message: m });
    if (r.kind === 'applicationMessage') return { kind: 'application', group: new TsGroup(r.newState), plaintext: r.message, senderLeaf: null };
    const g = new TsGroup(r.newState);
    const ct = m.wireformat === wireformats.mls_private_message ? m.privateMessage.contentType : m.publicMessage.content.contentType;
    if (ct === contentTypes.commit) return { kind: 'commit', group: g, removedSelf: r.newState.groupActiveState.kind !== 'active' };
    const external = m.wireformat === wireformats.mls_public_message && m.publicMessage.content.sender.senderType !== 1;
    return { kind: 'proposal', group: g, external };
  }

  async groupInfo(group: MlsGroup): Promise<Uint8Array> {
    const gi = await createGroupInfoWithExternalPubAndRatchetTree(st(group), [], this.cs);
    return encode(mlsMessageEncoder, { wireformat: wireformats.mls_group_info, version: protocolVersions.mls10, groupInfo: gi });
  }

  epochAuthenticator(group: MlsGroup): Uint8Array {
    return st(group).keySchedule.epochAuthenticator;
  }

  members(group: MlsGroup): MlsMember[] {
    const out: MlsMember[] = [];
    st(group).ratchetTree.forEach((n, i) => {
      if (n && n.nodeType === nodeTypes.leaf && n.leaf.credential.credentialType === defaultCredentialTypes.basic && 'identity' in n.leaf.credential) {
        out.push({ leafIndex: i / 2, signaturePublicKey: n.leaf.signaturePublicKey, identity: n.leaf.credential.identity });
      }
    });
    return out;
  }

  ownLeaf(group: MlsGroup): number {
    return st(group).privatePath.leafIndex;
  }

  pendingProposals(group: MlsGroup): number {
    return Object.keys(st(group).unappliedProposals).length;
  }

  serialize(group: MlsGroup): Uint8Array {
    return encode(clientStateEncoder, st(group));
  }

  deserialize(bytes: Uint8Array): MlsGroup {
    const s = decode(clientStateDecoder, bytes);
    if (!s) throw new Error('unreadable MLS group state');
    return new TsGroup(s);
  }

  header(bytes: Uint8Array): { header: MlsHeader; length: number } | null {
    let r: [MlsMessage, number] | undefined;
    try {
      r = mlsMessageDecoder(bytes, 0);
    } catch {
      return null;
    }
    if (!r) return null;
    const [m, length] = r;
    const td = new TextDecoder();
    const ctName = (c: number): MlsHeader['contentType'] => (c === contentTypes.application ? 'application' : c === contentTypes.proposal ? 'proposal' : c === contentTypes.commit ? 'commit' : null);
    switch (m.wireformat) {
      case wireformats.mls_private_message:
        return { length, header: { wireformat: 'private', groupId: td.decode(m.privateMessage.groupId), epoch: m.privateMessage.epoch, contentType: ctName(m.privateMessage.contentType) } };
      case wireformats.mls_public_message:
        return { length, header: { wireformat: 'public', groupId: td.decode(m.publicMessage.content.groupId), epoch: m.publicMessage.content.epoch, contentType: ctName(m.publicMessage.content.contentType) } };
      case wireformats.mls_welcome:
        return { length, header: { wireformat: 'welcome', groupId: null, epoch: null, contentType: null } };
      case wireformats.mls_group_info:
        return { length, header: { wireformat: 'group_info', groupId: td.decode(m.groupInfo.groupContext.groupId), epoch: m.groupInfo.groupContext.epoch, contentType: null } };
      default:
        return { length, header: { wireformat: 'key_package', groupId: null, epoch: null, contentType: null } };
    }
  }
}
