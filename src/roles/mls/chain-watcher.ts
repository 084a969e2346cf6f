import { getBytes, keccak256, toUtf8Bytes, Wallet } from 'ethers';
import {
  bytesToBase64, base64ToBytes, decode, defaultProposalTypes, encode, getCiphersuiteImpl, mlsMessageDecoder, mlsMessageEncoder,
  proposeExternal, wireformats, type CiphersuiteImpl, type CiphersuiteName, type GroupInfo,
} from 'ts-mls';
import { ratchetTreeFromExtension } from 'ts-mls/dist/src/groupInfo.js';
import { delegationText } from '../../protocol/delegation.js';
import { idPreimage, type RelationMessage } from '../../protocol/message.js';
import type { Logger } from '../../log/logger.js';
import type { RelationReader } from '../relations/port.js';
import type { Store } from '../../store/port.js';

/** What the watcher needs of the store (docs/e2ee.md sections 4-6). */
export type WatcherStore = Pick<Store, 'mlsGroupRecord' | 'mlsSetPendingRemoval'>;

export interface ChainWatcherDeps {
  store: WatcherStore;
  relations: RelationReader;
  /** The proxy's external-sender key (the group's `external_senders` entry). */
  keys(): Promise<{ signaturePublicKey: Uint8Array; signaturePrivateKey: Uint8Array }>;
  /** The proxy's Ethereum key: signs the Relation ONE message that carries each proposal. */
  proxyKey(): Promise<Wallet>;
  /** The message service's entry for the proxy's own messages (skips name and membership checks for it). */
  submit(message: RelationMessage): Promise<unknown>;
  /** The group's pending removal changed: drop cached epochs (here and, through the bus, elsewhere). */
  changed(cid: string): void;
  log: Logger;
  now(): number;
}

const SUITES: Record<number, CiphersuiteName> = {
  0xf00d: 'MLS_256_XWING_AES256GCM_SHA512_Ed25519',
  0x0001: 'MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519',
};

/** The wallet a leaf's credential names (docs/e2ee.md section 2), lowercase, or null for another kind of leaf. */
export function walletOfIdentity(identity: Uint8Array): string | null {
  try {
    const o = JSON.parse(new TextDecoder().decode(identity)) as { v?: unknown; wallet?: unknown };
    return o.v === 1 && typeof o.wallet === 'string' ? o.wallet.toLowerCase() : null;
  } catch {
    return null;
  }
}

/**
 * The proxy's chain watcher (SPEC section 10): when a DAO token leaves a holder, the proxy, as the group's
 * external sender, proposes the removal of every leaf of that wallet, and refuses application messages at
 * that epoch until a member commits (MLS_COMMIT_REQUIRED). It reconciles from the latest GroupInfo, so a
 * restart, a missed chain event or a commit that left the proposals out is caught at the next look.
 */
export class ChainWatcher {
  private readonly suites = new Map<number, Promise<CiphersuiteImpl>>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly again = new Set<string>();
  /** Per group, the epoch at which proposals were already sent (never twice for one epoch). */
  private readonly proposedAt = new Map<string, number>();

  constructor(private readonly deps: ChainWatcherDeps) {}

  /** A membership change of `group` (from the chain reader), or a new GroupInfo for it: look again. */
  poke(group: string): void {
    const cid = group.toLowerCase();
    if (this.running.has(cid)) {
      this.again.add(cid);
      return;
    }
    const p = this.reconcile(cid)
      .catch((e: unknown) => this.deps.log.warn({ err: e, cid }, 'mls chain watcher: reconcile failed'))
      .finally(() => {
        this.running.delete(cid);
        if (this.again.delete(cid)) this.poke(cid);
      });
    this.running.set(cid, p);
  }

  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running.values()]);
  }

  private suite(id: number): Promise<CiphersuiteImpl> {
    const name = SUITES[id];
    if (!name) throw new Error(`unsupported cipher suite ${id}`);
    let s = this.suites.get(id);
    if (!s) {
      s = getCiphersuiteImpl(name);
      this.suites.set(id, s);
    }
    return s;
  }

  /** Leaves of the group whose wallet no longer holds the DAO's token (nor owns it). */
  async staleLeaves(cid: string, gi: GroupInfo): Promise<number[]> {
    const tree = ratchetTreeFromExtension(gi);
    if (!tree) return [];
    const group = await this.deps.relations.group(cid);
    if (!group) return [];
    const verdict = new Map<string, boolean>();
    const out: number[] = [];
    for (let node = 0; node < tree.length; node += 2) {
      const n = tree[node];
      if (!n || n.nodeType !== 1 /* leaf */) continue;
      const leaf = (n as { leaf: { credential: { credentialType: number; identity?: Uint8Array } } }).leaf;
      const identity = leaf.credential.identity;
      if (!identity) continue;
      const wallet = walletOfIdentity(identity);
      if (!wallet) continue;
      let ok = verdict.get(wallet);
      if (ok === undefined) {
        ok = wallet === group.owner || (await this.deps.relations.isMember(cid, wallet));
        verdict.set(wallet, ok);
      }
      if (!ok) out.push(node / 2);
    }
    return out;
  }

  private async reconcile(cid: string): Promise<void> {
    const { store } = this.deps;
    const state = await store.mlsGroupRecord(cid);
    // Members upload the GroupInfo of each new epoch (the committer does); the watcher looks again then.
    if (state.groupInfo === null || state.groupInfoEpoch !== state.epoch) return;
    if (this.proposedAt.get(cid) === state.epoch || state.pendingRemovalEpoch === state.epoch) return;
    const msg = decode(mlsMessageDecoder, base64ToBytes(state.groupInfo));
    if (!msg || msg.wireformat !== wireformats.mls_group_info) return;
    const gi = msg.groupInfo;
    const stale = await this.staleLeaves(cid, gi);
    if (stale.length === 0) return;
    const cs = await this.suite(gi.groupContext.cipherSuite);
    const { signaturePublicKey, signaturePrivateKey } = await this.deps.keys();
    const proxyKey = await this.deps.proxyKey();
    // Pending first: from now on nobody sends at this epoch before the removal is committed.
    if (!(await store.mlsSetPendingRemoval(cid, state.epoch))) return; // a commit moved the group on: look at its GroupInfo
    this.proposedAt.set(cid, state.epoch);
    this.deps.changed(cid);
    for (const leafIndex of stale) {
      const proposal = await proposeExternal(gi, { proposalType: defaultProposalTypes.remove, remove: { removed: leafIndex as never } }, signaturePublicKey, signaturePrivateKey, cs);
      const payload = bytesToBase64(encode(mlsMessageEncoder, proposal));
      try {
        await this.deps.submit(this.sign(proxyKey, cid, payload));
      } catch (e) {
        // Another process proposed the same removal (identical bytes: MLS_REPLAY), or a commit won the
        // epoch meanwhile (MLS_STALE_EPOCH: the next GroupInfo brings the watcher back).
        const code = (e as { code?: string }).code;
        if (code !== 'MLS_REPLAY' && code !== 'MLS_STALE_EPOCH') throw e;
      }
    }
    this.deps.log.info({ cid, epoch: state.epoch, leaves: stale.length }, 'mls chain watcher: proposed removal of leaves whose token left');
  }

  /** A Relation ONE message from the proxy's own key (its own delegation: wallet and session key are one). */
  sign(key: Wallet, cid: string, payload: string): RelationMessage {
    const now = this.deps.now();
    const delegationMessage = delegationText(key.address, now - 60_000, now + 86_400_000);
    const m: RelationMessage = {
      id: '', encryptedBy: 'MLS', sender: key.address, receiver: cid, timestamp: now, kind: 1, tags: [], type: 'MLS' as never,
      payload, encryptedSymmetricKey: '', delegationMessage, delegationSig: key.signMessageSync(delegationMessage), sig: '',
    };
    m.id = keccak256(toUtf8Bytes(idPreimage(m)));
    m.sig = key.signMessageSync(getBytes(m.id));
    return m;
  }
}
