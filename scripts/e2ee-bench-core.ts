/**
 * The MLS benchmark of issue 17 ("Speed"), platform-neutral: the same code runs in Node
 * (scripts/bench-e2ee.ts) and bundled in Chromium (scripts/bench-e2ee-browser.ts).
 *
 * Everything is ts-mls 2.0.0-rc.10 used directly, with a real Authentication Service: the credential
 * of docs/e2ee.md section 2 (wallet -> session key -> MLS key), checked by two secp256k1 EIP-191
 * recoveries per leaf (ethers' verifyMessage). Nothing here writes message text or keys anywhere.
 */
import { verifyMessage, Wallet, sha256, hexlify, randomBytes } from 'ethers';
import {
  clientStateDecoder,
  clientStateEncoder,
  createApplicationMessage,
  createCommit,
  createGroup,
  createGroupInfoWithExternalPubAndRatchetTree,
  decode,
  defaultCredentialTypes,
  defaultProposalTypes,
  encode,
  generateKeyPackageWithKey,
  getCiphersuiteImpl,
  joinGroup,
  joinGroupExternal,
  mlsMessageDecoder,
  mlsMessageEncoder,
  nobleCryptoProvider,
  defaultCryptoProvider,
  processMessage,
  protocolVersions,
  wireformats,
  type AuthenticationService,
  type CiphersuiteImpl,
  type CiphersuiteName,
  type ClientState,
  type Credential,
  type CryptoProvider,
  type KeyPackage,
  type MlsContext,
  type MlsFramedMessage,
  type PrivateKeyPackage,
  type Welcome,
  type GroupInfo,
} from 'ts-mls';
import { browserCryptoProvider } from '../sdk/src/mls/crypto.js';

export const SUITES: Record<string, CiphersuiteName> = {
  xwing: 'MLS_256_XWING_AES256GCM_SHA512_Ed25519',
  classical: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
};
export const SUITE_ID: Record<string, string> = { xwing: '0xF00D', classical: '0x0001' };

/**
 * `sdk` is what the SDK runs on (`TsMlsEngine`'s default, sdk/src/mls/crypto.ts): `browser` here, the
 * `node` provider once the Node script registers it (the browser bundle has no `node:crypto`).
 * `ts-mls-default` and `noble` are ts-mls's own providers, for comparison.
 */
const browser = browserCryptoProvider();
export const PROVIDERS: Record<string, CryptoProvider> = {
  sdk: browser, browser, noble: nobleCryptoProvider, 'ts-mls-default': defaultCryptoProvider,
  // the browser provider with every digest on noble, or every digest on WebCrypto (for comparison)
  'browser-noble-digest': browserCryptoProvider({ nativeDigestMin: Infinity }), 'browser-web-digest': browserCryptoProvider({ nativeDigestMin: 0 }),
};
export function registerProvider(name: string, p: CryptoProvider): void { PROVIDERS[name] = p; }

export const now = (): number => performance.now();
/**
 * The clock figures are read from. Node sets it to the process's CPU time (user + system, ms), which
 * a busy shared machine inflates far less than wall time; the browser has no such clock and keeps
 * wall time. Wall time is printed beside it either way.
 */
let cpuClock: (() => number) | null = null;
export function setCpuClock(c: (() => number) | null): void { cpuClock = c; }
interface Stamp { wall: number; cpu: number }
const stamp = (): Stamp => ({ wall: performance.now(), cpu: cpuClock ? cpuClock() : NaN });
interface Span { wall: number; cpu: number }
const since = (s: Stamp): Span => ({ wall: performance.now() - s.wall, cpu: cpuClock ? cpuClock() - s.cpu : NaN });
const main = (x: Span): number => (Number.isNaN(x.cpu) ? x.wall : x.cpu);
const te = new TextEncoder();
const td = new TextDecoder();
const hex = (b: Uint8Array): string => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');

export function b64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
export function unb64(s: string): Uint8Array {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
/** Bytes of the standard base64 of n bytes (what goes into `payload`). */
export const b64Len = (n: number): number => 4 * Math.ceil(n / 3);

// ---------------------------------------------------------------- credentials (docs/e2ee.md section 2)

function delegationMessage(session: string, from: Date, to: Date): string {
  const f = (d: Date): string => d.toISOString().replace('T', ' ').slice(0, 19);
  return `授权 ${session.toLowerCase()} 代理签名，创建时间：${f(from)}, 过期时间：${f(to)}`;
}
const DELEGATION = /^授权 (0x[0-9a-f]{40}) 代理签名，创建时间：([0-9: -]{19}), 过期时间：([0-9: -]{19})$/;

/** A secp256k1 key that signs EIP-191 messages (a wallet or a session key of a fixture's device). */
export interface EipKey { address: string; sign(message: string): string }
/**
 * Where fixture keys come from: ethers by default (pure JS; a random private key, not
 * `Wallet.createRandom()`, which derives an HD wallet from a mnemonic for each key); Node plugs in
 * libsecp256k1 (scripts/bench-e2ee.ts), which is what makes a 10,000-member fixture affordable. Setup
 * only: the measured figures never sign with these.
 */
const ethersKey = (): EipKey => {
  const w = new Wallet(hexlify(randomBytes(32)));
  return { address: w.address, sign: (m) => w.signMessageSync(m) };
};
let newKey: () => EipKey = ethersKey;
export function setKeyFactory(f: (() => EipKey) | null): void { newKey = f ?? ethersKey; }
export const newEipKey = (): EipKey => newKey();

/**
 * One device credential: a fresh wallet, a fresh session key, an Ed25519 MLS key. Costs two secp256k1
 * signatures (setup only; the fixture is cached).
 */
export async function makeDevice(cs: CiphersuiteImpl): Promise<{ credential: Credential; signatureKeyPair: { signKey: Uint8Array; publicKey: Uint8Array } }> {
  const wallet = newKey();
  const session = newKey();
  const t = Date.now();
  const delegation = delegationMessage(session.address, new Date(t - 60_000), new Date(t + 30 * 86_400_000));
  const kp = await cs.signature.keygen();
  const identity = JSON.stringify({
    v: 1,
    wallet: wallet.address.toLowerCase(),
    delegationMessage: delegation,
    delegationSig: wallet.sign(delegation),
    keySig: session.sign(`relation-mls-credential:v1:${hex(kp.publicKey)}`),
  });
  return { credential: { credentialType: defaultCredentialTypes.basic, identity: te.encode(identity) }, signatureKeyPair: { signKey: kp.signKey, publicKey: kp.publicKey } };
}

/** Counts what the Authentication Service did, so a join's figure can say how many recoveries it paid. */
export const asStats = { checks: 0, recoveries: 0, cacheHits: 0 };

/** The Authentication Service of docs/e2ee.md section 2: two EIP-191 recoveries and the delegation window. */
export function credentialValid(credential: Credential, signaturePublicKey: Uint8Array, at = Date.now()): boolean {
  asStats.checks++;
  if (credential.credentialType !== defaultCredentialTypes.basic) return false;
  let c: { v?: unknown; wallet?: unknown; delegationMessage?: unknown; delegationSig?: unknown; keySig?: unknown };
  try {
    c = JSON.parse(td.decode((credential as { identity: Uint8Array }).identity));
  } catch {
    return false;
  }
  if (c.v !== 1 || typeof c.wallet !== 'string' || typeof c.delegationMessage !== 'string' || typeof c.delegationSig !== 'string' || typeof c.keySig !== 'string') return false;
  const m = DELEGATION.exec(c.delegationMessage);
  if (!m) return false;
  const from = Date.parse(`${m[2]!.replace(' ', 'T')}Z`);
  const to = Date.parse(`${m[3]!.replace(' ', 'T')}Z`);
  if (!(from <= at && at <= to)) return false;
  asStats.recoveries += 2;
  if (recover(c.delegationMessage, c.delegationSig).toLowerCase() !== c.wallet) return false;
  return recover(`relation-mls-credential:v1:${hex(signaturePublicKey)}`, c.keySig).toLowerCase() === m[1];
}

/** EIP-191 recovery: ethers (pure JS, noble) by default; Node may plug in libsecp256k1. */
let recover: (message: string, sig: string) => string = verifyMessage;
export function setRecover(f: ((message: string, sig: string) => string) | null): void { recover = f ?? verifyMessage; }

export const realAuthService: AuthenticationService = {
  async validateCredential(credential, signaturePublicKey) {
    return credentialValid(credential, signaturePublicKey);
  },
};

/**
 * The same check with a cache of credentials already validated (key: SHA-256 of the identity bytes and
 * the signature key). A cached answer is re-checked only for the delegation window (cheap), so an
 * expired delegation is still refused.
 */
export function cachingAuthService(cache: Map<string, number>): AuthenticationService {
  return {
    async validateCredential(credential, signaturePublicKey) {
      const identity = (credential as { identity?: Uint8Array }).identity;
      if (!identity) return false;
      const key = sha256(new Uint8Array([...identity, ...signaturePublicKey]));
      const until = cache.get(key);
      if (until !== undefined) {
        asStats.cacheHits++;
        return Date.now() <= until;
      }
      if (!credentialValid(credential, signaturePublicKey)) return false;
      const m = DELEGATION.exec(JSON.parse(td.decode(identity)).delegationMessage as string)!;
      cache.set(key, Date.parse(`${m[3]!.replace(' ', 'T')}Z`));
      return true;
    },
  };
}

/** Only for building fixtures (the setup is not a measured figure): accepts every credential. */
const trustingAuthService: AuthenticationService = { async validateCredential() { return true; } };

// ---------------------------------------------------------------- members and groups

export interface Member { publicPackage: KeyPackage; privatePackage: PrivateKeyPackage }

export async function makeMember(cs: CiphersuiteImpl): Promise<Member> {
  const d = await makeDevice(cs);
  return generateKeyPackageWithKey({ credential: d.credential, signatureKeyPair: d.signatureKeyPair, cipherSuite: cs });
}

export const encodeState = (s: ClientState): Uint8Array => encode(clientStateEncoder, s);
export const decodeState = (b: Uint8Array): ClientState => decode(clientStateDecoder, b)!;
const msgBytes = (m: Parameters<typeof mlsMessageEncoder>[0]): Uint8Array => encode(mlsMessageEncoder, m);

function asFramed(bytes: Uint8Array): MlsFramedMessage {
  const m = decode(mlsMessageDecoder, bytes)!;
  if (m.wireformat !== wireformats.mls_private_message && m.wireformat !== wireformats.mls_public_message) throw new Error('expected a framed message');
  return m as MlsFramedMessage;
}
function asWelcome(bytes: Uint8Array): Welcome {
  const m = decode(mlsMessageDecoder, bytes)!;
  if (m.wireformat !== wireformats.mls_welcome) throw new Error('expected a Welcome');
  return m.welcome;
}
function asGroupInfo(bytes: Uint8Array): GroupInfo {
  const m = decode(mlsMessageDecoder, bytes)!;
  if (m.wireformat !== wireformats.mls_group_info) throw new Error('expected a GroupInfo');
  return m.groupInfo;
}

/** A group of `size` members: A (creator) and B (joined by a Welcome), as serialized states. */
export interface Fixture { suite: string; size: number; a: Uint8Array; b: Uint8Array; setupMs: number; setupDetail: string; shape?: Shape }

/**
 * `sparse`: the tree as batched adds leave it (only A's direct path set). `filled`: then members in each
 * subtree next to A's direct path and to the next free leaf's commit once (an empty commit, which carries
 * an UpdatePath), as a group whose members have committed leaves it: those subtrees' roots hold keys, so a
 * path commit by A (a removal) or by a newcomer (an external join) encrypts to about log2(n) nodes instead
 * of to every leaf of a blank subtree.
 */
export type Shape = 'sparse' | 'filled';

/**
 * The leaves whose commits fill the subtrees beside the direct paths of leaf 0 (A) and of leaf `size`
 * (the next member): for each level, the leftmost leaf of the sibling subtree, if it exists.
 */
export function fillerLeaves(size: number): number[] {
  const out = new Set<number>();
  for (const leaf of [0, size]) {
    for (let k = 1; 2 ** k < 2 * size; k++) {
      const sibling = (Math.floor(leaf / 2 ** k) ^ 1) * 2 ** k;
      if (sibling < size && sibling !== 0) out.add(sibling);
    }
  }
  return [...out].sort((x, y) => y - x);
}

/**
 * Builds a group of `size` members by batched adds (commits of up to `batch` KeyPackages each, which
 * carry no UpdatePath, so the tree's parents stay blank but for A's direct path: the shape of a group
 * that grew by adds, and the worst case for later path commits, which encrypt to every leaf of a blank
 * subtree). B is a member of the last batch and joins by its Welcome, so it never has to process the
 * earlier batches (each costs O(batch x size) in ts-mls's uniqueness checks). With `shape: 'filled'`
 * (one batch only), the members of `fillerLeaves(size)` then join from the same Welcome and commit in
 * turn; A, B and the fillers still to commit process each commit.
 */
export async function buildFixture(suite: string, size: number, provider: CryptoProvider, batch = 1000, log: (s: string) => void = () => {}, shape: Shape = 'sparse'): Promise<Fixture> {
  if (shape === 'filled' && size > batch) throw new Error(`a filled fixture is built from one batch: size ${size} > batch ${batch}`);
  const t0 = now();
  const cs = await getCiphersuiteImpl(SUITES[suite]!, provider);
  const ctx: MlsContext = { cipherSuite: cs, authService: trustingAuthService };
  const creator = await makeMember(cs);
  let a = await createGroup({ context: ctx, groupId: te.encode('0x00000000000000000000000000000000000000b1'), keyPackage: creator.publicPackage, privateKeyPackage: creator.privatePackage });
  let b: ClientState | undefined;
  let kpMs = 0;
  let commitMs = 0;
  let fillMs = 0;
  let remaining = size - 1;
  while (remaining > 0) {
    const n = Math.min(batch, remaining);
    const k0 = now();
    const members: Member[] = [];
    for (let i = 0; i < n; i++) members.push(await makeMember(cs));
    kpMs += now() - k0;
    const c0 = now();
    const res = await createCommit({ context: ctx, state: a, extraProposals: members.map((m) => ({ proposalType: defaultProposalTypes.add, add: { keyPackage: m.publicPackage } })) });
    a = res.newState;
    remaining -= n;
    if (remaining === 0) {
      const join = (m: Member): Promise<ClientState> => joinGroup({ context: ctx, welcome: res.welcome!.welcome, keyPackage: m.publicPackage, privateKeys: m.privatePackage, ratchetTree: a.ratchetTree });
      b = await join(members[0]!);
      commitMs += now() - c0;
      if (shape === 'filled') {
        const f0 = now();
        // One batch into a fresh group: member i of the batch is leaf i + 1.
        const fillers: ClientState[] = [];
        for (const leaf of fillerLeaves(size)) {
          const st = await join(members[leaf - 1]!);
          if (st.privatePath.leafIndex !== leaf) throw new Error(`filler expected at leaf ${leaf}, joined at ${st.privatePath.leafIndex}`);
          fillers.push(st);
        }
        for (let i = 0; i < fillers.length; i++) {
          const c = await createCommit({ context: ctx, state: fillers[i]! });
          const framed = asFramed(msgBytes(c.commit));
          const apply = async (st: ClientState): Promise<ClientState> => {
            const p = await processMessage({ context: ctx, state: st, message: framed });
            if (p.kind !== 'newState') throw new Error('filler commit not applied');
            return p.newState;
          };
          a = await apply(a);
          b = await apply(b);
          for (let j = i + 1; j < fillers.length; j++) fillers[j] = await apply(fillers[j]!);
          log(`  setup ${suite} ${size} filled: ${i + 1}/${fillers.length} commits (${((now() - t0) / 1000).toFixed(1)} s)`);
        }
        fillMs = now() - f0;
      }
    } else {
      commitMs += now() - c0;
    }
    log(`  setup ${suite} ${size}: ${size - remaining}/${size} members (${((now() - t0) / 1000).toFixed(1)} s)`);
  }
  const setupMs = now() - t0;
  const fill = shape === 'filled' ? `, ${fillerLeaves(size).length} members' commits ${(fillMs / 1000).toFixed(1)} s` : '';
  return { suite, size, shape, a: encodeState(a), b: encodeState(b!), setupMs, setupDetail: `key packages + credentials ${(kpMs / 1000).toFixed(1)} s, batched commits + B's join ${(commitMs / 1000).toFixed(1)} s${fill}` };
}

// ---------------------------------------------------------------- measurements

export interface Row { key: string; target: string; figure: string; ok: boolean | null; ms?: number }

export interface RunOptions {
  provider: CryptoProvider;
  /** how many times to repeat the add/process and the joins (median) */
  reps: number;
  /** also measure the joins with a credential cache already holding every leaf the joiner saw */
  withCache: boolean;
  log?: (s: string) => void;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : x >= 10 ? `${x.toFixed(0)} ms` : `${x.toFixed(2)} ms`);

export const TARGETS = {
  message: 1,
  add: { 100: 40, 1000: 100, 10000: 300 } as Record<number, number>,
  join: { 100: 100, 1000: 600, 10000: 8000 } as Record<number, number>,
};
const targetFor = (t: Record<number, number>, size: number): number => {
  const keys = Object.keys(t).map(Number).sort((x, y) => x - y);
  return t[keys.find((k) => k >= size) ?? keys[keys.length - 1]!]!;
};

/** Measures one suite at one size from a fixture. Returns the rows and the payload sizes. */
export async function measure(fx: Fixture, opts: RunOptions): Promise<{ rows: Row[]; sizes: Record<string, number> }> {
  const log = opts.log ?? (() => {});
  const cs = await getCiphersuiteImpl(SUITES[fx.suite]!, opts.provider);
  const ctx: MlsContext = { cipherSuite: cs, authService: realAuthService };
  const rows: Row[] = [];
  const sizes: Record<string, number> = {};
  const tag = `${fx.suite}${fx.shape === 'filled' ? ' filled' : ''} n=${fx.size}`;
  const push = (key: string, target: number | null, spans: Span[], extra = ''): void => {
    const cpu = median(spans.map((x) => x.cpu));
    const wall = median(spans.map((x) => x.wall));
    const value = Number.isNaN(cpu) ? wall : cpu;
    const fig = Number.isNaN(cpu) ? ms(wall) : `${ms(cpu)} cpu (${ms(wall)} wall)`;
    rows.push({ key: `${tag} ${key}`, target: target === null ? '-' : `<= ${ms(target)}`, figure: `${fig}${extra}`, ok: target === null ? null : value <= target, ms: value });
  };

  let a = decodeState(fx.a);
  let b = decodeState(fx.b);

  // Messages: the first of an epoch for a sender and a receiver, then steady state (median of 50).
  const text = new Uint8Array(1024).fill(0x61);
  const encT: Span[] = [];
  const decT: Span[] = [];
  const first: Span[][] = [[], []];
  for (let i = 0; i < 51; i++) {
    const e = stamp();
    const r = await createApplicationMessage({ context: ctx, state: a, message: text });
    const bytes = msgBytes(r.message);
    const es = since(e);
    a = r.newState;
    if (i === 0) sizes['1 KB message (base64)'] = b64Len(bytes.length);
    const d = stamp();
    const p = await processMessage({ context: ctx, state: b, message: asFramed(bytes) });
    const ds = since(d);
    b = p.newState;
    if (p.kind !== 'applicationMessage' || p.message.length !== 1024) throw new Error('decrypt failed');
    if (i === 0) { first[0]!.push(es); first[1]!.push(ds); } else { encT.push(es); decT.push(ds); }
  }
  push('encrypt 1 KB (steady)', TARGETS.message, encT);
  push('decrypt 1 KB (steady)', TARGETS.message, decT);
  push('encrypt 1 KB (first of epoch)', null, first[0]!);
  push('decrypt 1 KB (first of epoch)', null, first[1]!);
  log(`  ${tag}: messages done`);

  // Add one member: A creates the commit (+ Welcome with the ratchet tree), B processes it,
  // the new member C joins by the Welcome with every leaf's credential checked.
  const addT: Span[] = [];
  const procT: Span[] = [];
  const joinT: Span[] = [];
  const joinCachedT: Span[] = [];
  let joinChecks = 0;
  const aStart = a;
  const bStart = b;
  for (let rep = 0; rep < opts.reps; rep++) {
    const c = await makeMember(cs);
    const t0 = stamp();
    const res = await createCommit({ context: ctx, state: aStart, ratchetTreeExtension: true, extraProposals: [{ proposalType: defaultProposalTypes.add, add: { keyPackage: c.publicPackage } }] });
    const commitBytes = msgBytes(res.commit);
    const welcomeBytes = msgBytes(res.welcome!);
    addT.push(since(t0));
    const t1 = stamp();
    const p = await processMessage({ context: ctx, state: bStart, message: asFramed(commitBytes) });
    procT.push(since(t1));
    if (p.kind !== 'newState') throw new Error('commit not applied');
    sizes['add-one commit (base64)'] = b64Len(commitBytes.length);
    sizes['Welcome with ratchet tree (base64)'] = b64Len(welcomeBytes.length);
    const checks0 = asStats.checks;
    const j0 = stamp();
    const joined = await joinGroup({ context: ctx, welcome: asWelcome(welcomeBytes), keyPackage: c.publicPackage, privateKeys: c.privatePackage });
    joinT.push(since(j0));
    joinChecks = asStats.checks - checks0;
    if (joined.groupContext.epoch !== res.newState.groupContext.epoch) throw new Error('join: wrong epoch');
    if (opts.withCache) {
      // A joiner whose cache already holds these credentials (validated before: it was a member of
      // another group with them, or validated them in the background): only the cache is consulted.
      // joinGroup is pure, so the same Welcome and KeyPackage serve twice.
      const cache = new Map<string, number>();
      const cctx = { ...ctx, authService: cachingAuthService(cache) };
      await joinGroup({ context: cctx, welcome: asWelcome(welcomeBytes), keyPackage: c.publicPackage, privateKeys: c.privatePackage });
      const k0 = stamp();
      await joinGroup({ context: cctx, welcome: asWelcome(welcomeBytes), keyPackage: c.publicPackage, privateKeys: c.privatePackage });
      joinCachedT.push(since(k0));
    }
  }
  // The same add with the Welcome carrying no ratchet tree (the joiner takes the tree from the
  // GroupInfo the Delivery Service keeps), and that join with the credential cache warm.
  const addNoTreeT: Span[] = [];
  const joinOobT: Span[] = [];
  for (let rep = 0; rep < opts.reps; rep++) {
    const c = await makeMember(cs);
    const t0 = stamp();
    const res = await createCommit({ context: ctx, state: aStart, extraProposals: [{ proposalType: defaultProposalTypes.add, add: { keyPackage: c.publicPackage } }] });
    const welcomeBytes = msgBytes(res.welcome!);
    msgBytes(res.commit);
    addNoTreeT.push(since(t0));
    sizes['Welcome without ratchet tree (base64)'] = b64Len(welcomeBytes.length);
    if (opts.withCache) {
      const cache = new Map<string, number>();
      const cctx = { ...ctx, authService: cachingAuthService(cache) };
      const tree = res.newState.ratchetTree;
      await joinGroup({ context: cctx, welcome: asWelcome(welcomeBytes), keyPackage: c.publicPackage, privateKeys: c.privatePackage, ratchetTree: tree });
      const k0 = stamp();
      await joinGroup({ context: cctx, welcome: asWelcome(welcomeBytes), keyPackage: c.publicPackage, privateKeys: c.privatePackage, ratchetTree: tree });
      joinOobT.push(since(k0));
    }
  }
  push('add one member: create commit', targetFor(TARGETS.add, fx.size), addT, ' (Welcome with tree)');
  push('add one member: create commit, Welcome without tree', targetFor(TARGETS.add, fx.size), addNoTreeT);
  push('add one member: process commit', targetFor(TARGETS.add, fx.size), procT);
  push('join by Welcome (all credentials checked)', targetFor(TARGETS.join, fx.size), joinT, ` (${joinChecks} leaves, ${2 * joinChecks} recoveries)`);
  if (opts.withCache) push('join by Welcome, credentials cached', targetFor(TARGETS.join, fx.size), joinCachedT);
  if (opts.withCache) push('join by Welcome, tree out of band, credentials cached', targetFor(TARGETS.join, fx.size), joinOobT);
  log(`  ${tag}: add/process/join done`);

  // Remove one member (a commit with an UpdatePath, encrypted to the resolution of the committer's
  // copath: in the sparse tree, most leaves; in the filled one, about log2(n) nodes) and process it.
  {
    const rmT: Span[] = [];
    const rmP: Span[] = [];
    for (let rep = 0; rep < opts.reps; rep++) {
      // Fresh copies of the states: reusing aStart after the blocks above once gave a single-Remove
      // commit without its UpdatePath (480 bytes); from a freshly decoded state it always has one.
      const a0 = decodeState(fx.a);
      const b0 = decodeState(fx.b);
      const t0 = stamp();
      const res = await createCommit({ context: ctx, state: a0, extraProposals: [{ proposalType: defaultProposalTypes.remove, remove: { removed: 2 } }] });
      const bytes = msgBytes(res.commit);
      rmT.push(since(t0));
      const t1 = stamp();
      const p = await processMessage({ context: ctx, state: b0, message: asFramed(bytes) });
      rmP.push(since(t1));
      if (p.kind !== 'newState') throw new Error('remove not applied');
      sizes['remove-one commit (base64)'] = b64Len(bytes.length);
    }
    push('remove one member: create commit', targetFor(TARGETS.add, fx.size), rmT);
    push('remove one member: process commit', targetFor(TARGETS.add, fx.size), rmP);
    log(`  ${tag}: remove done`);
  }

  // External join: A publishes the GroupInfo (with the ratchet tree and external public key); D joins
  // by external commit (checking every leaf's credential), A processes that commit.
  {
    const extT: Span[] = [];
    const extCachedT: Span[] = [];
    const extP: Span[] = [];
    const giT: Span[] = [];
    let checks = 0;
    for (let rep = 0; rep < opts.reps; rep++) {
      const g0 = stamp();
      const gi = await createGroupInfoWithExternalPubAndRatchetTree(aStart, [], cs);
      const giBytes = msgBytes({ wireformat: wireformats.mls_group_info, version: protocolVersions.mls10, groupInfo: gi });
      giT.push(since(g0));
      sizes['GroupInfo with ratchet tree (base64)'] = b64Len(giBytes.length);
      const d = await makeMember(cs);
      const checks0 = asStats.checks;
      const t0 = stamp();
      const { publicMessage } = await joinGroupExternal({ context: ctx, groupInfo: asGroupInfo(giBytes), keyPackage: d.publicPackage, privateKeys: d.privatePackage, resync: false });
      const commitBytes = msgBytes({ wireformat: wireformats.mls_public_message, version: protocolVersions.mls10, publicMessage });
      extT.push(since(t0));
      checks = asStats.checks - checks0;
      if (opts.withCache) {
        const cache = new Map<string, number>();
        const cctx = { ...ctx, authService: cachingAuthService(cache) };
        await joinGroupExternal({ context: cctx, groupInfo: asGroupInfo(giBytes), keyPackage: d.publicPackage, privateKeys: d.privatePackage, resync: false });
        const k0 = stamp();
        await joinGroupExternal({ context: cctx, groupInfo: asGroupInfo(giBytes), keyPackage: d.publicPackage, privateKeys: d.privatePackage, resync: false });
        extCachedT.push(since(k0));
      }
      const t1 = stamp();
      const p = await processMessage({ context: ctx, state: aStart, message: asFramed(commitBytes) });
      extP.push(since(t1));
      if (p.kind !== 'newState') throw new Error('external commit not applied');
      sizes['external commit (base64)'] = b64Len(commitBytes.length);
    }
    push('join by external commit (all credentials checked)', targetFor(TARGETS.join, fx.size), extT, ` (${checks} leaves)`);
    if (opts.withCache) push('join by external commit, credentials cached', targetFor(TARGETS.join, fx.size), extCachedT);
    push('external commit: a member processes it', targetFor(TARGETS.add, fx.size), extP);
    push('GroupInfo with ratchet tree: create', null, giT);
    log(`  ${tag}: external join done`);
  }
  return { rows, sizes };
}

/** The per-leaf cost of the Authentication Service (two recoveries), median of `n` fresh credentials. */
export async function credentialCost(n: number): Promise<{ perLeafMs: number; cachedMs: number }> {
  const cs = await getCiphersuiteImpl(SUITES['classical']!, nobleCryptoProvider);
  const devices = [];
  for (let i = 0; i < n; i++) {
    const d = await makeDevice(cs);
    devices.push({ credential: d.credential, pub: d.signatureKeyPair.publicKey });
  }
  const t0 = stamp();
  for (const d of devices) if (!credentialValid(d.credential, d.pub)) throw new Error('credential refused');
  const perLeafMs = main(since(t0)) / n;
  const cache = new Map<string, number>();
  const as = cachingAuthService(cache);
  for (const d of devices) await as.validateCredential(d.credential, d.pub);
  const c0 = stamp();
  for (const d of devices) await as.validateCredential(d.credential, d.pub);
  const cachedMs = main(since(c0)) / n;
  return { perLeafMs, cachedMs };
}
