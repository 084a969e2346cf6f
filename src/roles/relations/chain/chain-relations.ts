import { isAddress, isError, type Contract, type Provider } from 'ethers';
import { AppError } from '../../../errors/app-error.js';
import type { Logger } from '../../../log/logger.js';
import type { GroupInfo, Profile, RelationReader } from '../port.js';
import { relationContract } from './abi.js';
import type { RelationAddresses } from './deploy.js';
import { LogTracker, TRANSFER_TOPIC, addressTopic, type TokenHolders, type TrackerEvent } from './log-tracker.js';
import { withTimeout } from './rpc-timeout.js';

export interface ChainRelationsOptions {
  /** An ethers v6 provider (see `ethersProvider`): the in-process chain or an RPC endpoint. */
  provider: Provider;
  addresses: RelationAddresses;
  /** Event poll interval: how often new Transfer/UpdateRDF logs are applied to the cached sets. */
  refreshMs: number;
  /** Longest time state without events (DAO name, owner, free-join; also names and avatars) is served unchecked. */
  stateTtlMs: number;
  /** Bound on every RPC call and on every read of this reader. */
  rpcTimeoutMs: number;
  /** While the chain cannot be read, cached views younger than this are still served; older ones fail. */
  maxStaleMs: number;
  /** First block whose logs matter (the block the relation contracts were deployed in). */
  fromBlock: number;
  /** Most blocks per eth_getLogs request. */
  logRange: number;
  /** Blocks behind the head that are read (CHAIN_CONFIRMATIONS); default 0. */
  confirmations?: number;
  /** Most cached profiles and groups (least recently stored ones are dropped first). */
  cacheSize?: number;
  now?: () => number;
  log?: Logger;
}

interface Entry<T> {
  value: T;
  /** When the read that produced `value` started. */
  at: number;
  /** An event said the value changed: re-read before serving it again (it stays a fallback). */
  invalid?: boolean;
}

/** A Map that forgets its oldest entries past `capacity`. */
class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly capacity: number) {
    super();
  }
  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    if (this.size > this.capacity) {
      const oldest = this.keys().next();
      if (!oldest.done) this.delete(oldest.value);
    }
    return this;
  }
}

interface FollowingScan {
  scannedTo: number;
  at: number;
  /** Follow contracts (verified through the FollowRegister) that the user has held a token of. */
  contracts: Set<string>;
}

const ZERO = '0x0000000000000000000000000000000000000000';
const SOUL = /:Soul_(0x[0-9a-f]{40})/g;

/** A revert or an undecodable answer: the contract exists but is not what we asked (e.g. not a DAO). */
function isContractAnswer(e: unknown): boolean {
  return isError(e, 'CALL_EXCEPTION') || isError(e, 'BAD_DATA');
}

function norm(address: string): string | undefined {
  return isAddress(address) ? address.toLowerCase() : undefined;
}

/**
 * The relation reader over the Relation Protocol contracts (SPEC section 7), for the in-process chain and for
 * a real network alike. Reads use the interfaces in contracts-abi/.
 *
 * Caching:
 * - Membership (DAO token holders) and followers (Follow-contract token holders) are sets built from the
 *   Transfer mint/burn logs of each contract the first time it is asked about, then advanced by one shared
 *   eth_getLogs poll every `refreshMs` (Transfer and UpdateRDF of every tracked contract). A removed member
 *   stops being a member at most `refreshMs` + one poll's duration (each call bounded by `rpcTimeoutMs`)
 *   after the removal is mined.
 * - State without events (DAO name, `ownerOfDao()`, `isFreeJoin()`) is re-read when older than `stateTtlMs`.
 *   Names and avatars are re-read on the same bound, and at once after a NameService Transfer/UpdateRDF that
 *   names the address; a DAO's avatar after its UpdateRDF.
 * - When the chain is slow or down, a read waits at most `rpcTimeoutMs`, then serves the cached value if it is
 *   younger than `maxStaleMs` (membership: if the last successful poll is), else throws
 *   `AppError('RELATIONS_UNAVAILABLE')`. With the chain down, a removed member can therefore keep access for
 *   at most `maxStaleMs`; after that every group read fails closed.
 */
export class ChainRelations implements RelationReader {
  readonly available = true;
  readonly #opts: Required<Omit<ChainRelationsOptions, 'log'>> & { log?: Logger };
  readonly #tracker: LogTracker;
  readonly #profiles: BoundedMap<string, Entry<Profile>>;
  readonly #groups: BoundedMap<string, Entry<GroupInfo | null>>;
  readonly #followContracts: BoundedMap<string, Entry<string | null>>;
  /** Contract -> the address its Follow contract represents, or null when it is not a registered Follow contract. */
  readonly #followRep = new Map<string, string | null>();
  readonly #followingScans: BoundedMap<string, FollowingScan>;
  readonly #inflight = new Map<string, Promise<unknown>>();
  readonly #membershipListeners = new Set<(group: string, user: string | undefined) => void>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: ChainRelationsOptions) {
    this.#opts = { cacheSize: 100_000, confirmations: 0, now: () => Date.now(), ...options };
    const size = this.#opts.cacheSize;
    this.#profiles = new BoundedMap(size);
    this.#groups = new BoundedMap(size);
    this.#followContracts = new BoundedMap(size);
    this.#followingScans = new BoundedMap(size);
    this.#tracker = new LogTracker({
      provider: options.provider,
      rpcTimeoutMs: options.rpcTimeoutMs,
      fromBlock: options.fromBlock,
      logRange: options.logRange,
      confirmations: this.#opts.confirmations,
      now: this.#opts.now,
      onEvent: (address, event) => this.#onEvent(address, event),
    });
    this.#tracker.watch(options.addresses.nameService.toLowerCase());
  }

  /** Starts the background event poll (every `refreshMs`; the timer does not keep the process alive). */
  start(): this {
    if (this.#timer || this.#closed) return this;
    this.#timer = setInterval(() => {
      this.refresh().catch((err: unknown) => this.#opts.log?.warn({ err }, 'relation event poll failed; serving cached view'));
    }, this.#opts.refreshMs);
    this.#timer.unref();
    return this;
  }

  /**
   * One event poll now (what the timer runs): applies every Transfer/UpdateRDF since the last poll. Tests and
   * jobs call it to make "after a refresh" deterministic. Rejects when the chain cannot be read.
   */
  async refresh(): Promise<void> {
    await this.#tracker.poll();
  }

  async hasName(address: string): Promise<boolean> {
    return (await this.profile(address)).name !== '';
  }

  async profile(address: string): Promise<Profile> {
    const a = norm(address);
    if (!a) return { name: '', avatar: '' };
    return this.#cached(this.#profiles, a, 'profile', async () => {
      const ns = this.#contract('NameService', this.#opts.addresses.nameService);
      const [name, avatar] = await Promise.all([this.#call<string>(ns, 'nameOf', a), this.#call<string>(ns, 'profileURI', a)]);
      return { name, avatar };
    });
  }

  async group(address: string): Promise<GroupInfo | null> {
    const a = norm(address);
    if (!a) return null;
    return this.#cached(this.#groups, a, 'group', async () => {
      const code = await this.#bounded(this.#opts.provider.getCode(a), 'eth_getCode');
      if (code === '0x') return null;
      const dao = this.#contract('Dao', a);
      try {
        const [name, avatar, owner, freeJoin] = await Promise.all([
          this.#call<string>(dao, 'name'),
          this.#call<string>(dao, 'daoURI'),
          this.#call<string>(dao, 'ownerOfDao'),
          this.#call<boolean>(dao, 'isFreeJoin'),
        ]);
        return { address: a, name, avatar, owner: owner.toLowerCase(), freeJoin };
      } catch (e) {
        if (isContractAnswer(e)) return null; // a contract, but not a DAO
        throw e;
      }
    });
  }

  async isMember(group: string, address: string): Promise<boolean> {
    const holders = await this.#daoHolders(group);
    const a = norm(address);
    return holders !== undefined && a !== undefined && holders.has(a);
  }

  async members(group: string): Promise<string[]> {
    return (await this.#daoHolders(group))?.list() ?? [];
  }

  async followers(address: string): Promise<string[]> {
    const a = norm(address);
    if (!a) return [];
    const contract = await this.#cached(this.#followContracts, a, 'follow contract', async () => {
      const register = this.#contract('FollowRegister', this.#opts.addresses.followRegister);
      const c = (await this.#call<string>(register, 'ownedFollowContract', a)).toLowerCase();
      return c === ZERO ? null : c;
    });
    if (!contract) return [];
    return (await this.#holders(contract)).list();
  }

  async following(address: string): Promise<string[]> {
    const a = norm(address);
    if (!a) return [];
    const scan = await this.#followingScan(a);
    await this.#fresh();
    const out: string[] = [];
    for (const c of scan.contracts) {
      const rep = this.#followRep.get(c);
      if (rep && this.#tracker.peek(c)?.has(a)) out.push(rep);
    }
    return out;
  }

  async friends(address: string): Promise<string[]> {
    const [following, followers] = await Promise.all([this.following(address), this.followers(address)]);
    const back = new Set(followers);
    return following.filter((f) => back.has(f));
  }

  /** Told of every Transfer a poll applies to a tracked contract (per holder), and of a whole contract after a reorg. */
  watchMembership(listener: (group: string, user: string | undefined) => void): () => void {
    this.#membershipListeners.add(listener);
    return () => this.#membershipListeners.delete(listener);
  }

  #membershipChanged(group: string, user: string | undefined): void {
    for (const l of this.#membershipListeners) {
      try {
        l(group, user);
      } catch (err) {
        this.#opts.log?.error({ err }, 'membership listener failed');
      }
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /* ---------------- internals ---------------- */

  /** The member set of `group`, or undefined when it is not a DAO. */
  async #daoHolders(group: string): Promise<TokenHolders | undefined> {
    const info = await this.group(group);
    if (!info) return undefined;
    return this.#holders(info.address);
  }

  /** The holder set of a contract: loaded cold on first use, then current to the last successful poll. */
  async #holders(contract: string): Promise<TokenHolders> {
    const known = this.#tracker.peek(contract);
    if (known) {
      await this.#fresh();
      return known;
    }
    try {
      return await this.#bounded(this.#tracker.track(contract), `loading the holders of ${contract}`);
    } catch (e) {
      throw this.#unavailable(e);
    }
  }

  /** Serves the sets while the last successful poll is younger than maxStaleMs; else polls now or fails. */
  async #fresh(): Promise<void> {
    const now = this.#opts.now();
    if (now - this.#tracker.syncedAt <= this.#opts.maxStaleMs) return;
    try {
      await this.#bounded(this.#tracker.poll(), 'relation event poll');
    } catch (e) {
      throw this.#unavailable(e);
    }
  }

  async #followingScan(a: string): Promise<FollowingScan> {
    const previous = this.#followingScans.get(a);
    const now = this.#opts.now();
    if (previous && now - previous.at <= this.#opts.refreshMs) return previous;
    try {
      return await this.#bounded(this.#dedupe(`following:${a}`, () => this.#scanFollowing(a, previous)), 'following scan');
    } catch (e) {
      if (previous && now - previous.at <= this.#opts.maxStaleMs) return previous;
      throw this.#unavailable(e);
    }
  }

  /**
   * Finds the Follow contracts `a` has held tokens of: Transfer logs to or from `a` on any contract since the
   * last scan, kept when the FollowRegister confirms the contract. Found contracts join the shared poll.
   */
  async #scanFollowing(a: string, previous: FollowingScan | undefined): Promise<FollowingScan> {
    const started = this.#opts.now();
    const latest = await this.#tracker.blockNumber();
    const from = previous ? previous.scannedTo + 1 : this.#opts.fromBlock;
    const contracts = new Set(previous?.contracts);
    if (from <= latest) {
      const topic = addressTopic(a);
      const logs = [
        ...(await this.#tracker.logsByTopics([TRANSFER_TOPIC, null, topic], from, latest)),
        ...(await this.#tracker.logsByTopics([TRANSFER_TOPIC, topic], from, latest)),
      ];
      for (const c of new Set(logs.map((l) => l.address.toLowerCase()))) {
        if (contracts.has(c)) continue;
        if ((await this.#followContractRep(c)) === null) continue;
        await this.#tracker.track(c);
        contracts.add(c);
      }
      // The holder sets must be at least as new as the scan, or a follow seen by the scan could be missing.
      if (this.#tracker.cursor < latest) await this.#tracker.poll();
    }
    const scan = { scannedTo: latest, at: started, contracts };
    this.#followingScans.set(a, scan);
    return scan;
  }

  /** Who the Follow contract `c` represents, if the FollowRegister vouches for it (cached for good). */
  async #followContractRep(c: string): Promise<string | null> {
    const known = this.#followRep.get(c);
    if (known !== undefined) return known;
    let rep: string | null = null;
    try {
      const represented = (await this.#call<string>(this.#contract('Follow', c), 'representedAddress')).toLowerCase();
      const register = this.#contract('FollowRegister', this.#opts.addresses.followRegister);
      const owned = (await this.#call<string>(register, 'ownedFollowContract', represented)).toLowerCase();
      rep = owned === c ? represented : null;
    } catch (e) {
      if (!isContractAnswer(e)) throw e;
    }
    this.#followRep.set(c, rep);
    return rep;
  }

  /**
   * A value from `cache`: fresh (younger than stateTtlMs, not invalidated) is served as is; otherwise it is
   * re-read within rpcTimeoutMs, and on failure the old value is served if younger than maxStaleMs.
   */
  async #cached<T>(cache: Map<string, Entry<T>>, key: string, what: string, load: () => Promise<T>): Promise<T> {
    const now = this.#opts.now();
    const entry = cache.get(key);
    if (entry && !entry.invalid && now - entry.at <= this.#opts.stateTtlMs) return entry.value;
    try {
      const value = await this.#bounded(this.#dedupe(`${what}:${key}`, load), what);
      cache.set(key, { value, at: now });
      return value;
    } catch (e) {
      if (entry && now - entry.at <= this.#opts.maxStaleMs) return entry.value;
      throw this.#unavailable(e);
    }
  }

  /** Concurrent reads of the same key share one load. */
  #dedupe<T>(key: string, load: () => Promise<T>): Promise<T> {
    const running = this.#inflight.get(key) as Promise<T> | undefined;
    if (running) return running;
    const p = load().finally(() => this.#inflight.delete(key));
    this.#inflight.set(key, p);
    return p;
  }

  #onEvent(address: string, event: TrackerEvent): void {
    if (event.kind === 'reorg') {
      // Anything read from the replaced blocks may be wrong: names, avatars and DAO state are read again.
      for (const entry of this.#profiles.values()) entry.invalid = true;
      for (const entry of this.#groups.values()) entry.invalid = true;
      this.#followingScans.clear();
      if (this.#tracker.peek(address)) this.#membershipChanged(address, undefined);
      return;
    }
    if (address === this.#opts.addresses.nameService.toLowerCase()) {
      const touched = event.kind === 'transfer' ? [event.from, event.to] : [...event.rdf.matchAll(SOUL)].map((m) => m[1] ?? '');
      for (const a of touched) {
        const entry = this.#profiles.get(a);
        if (entry) entry.invalid = true;
      }
    } else if (event.kind === 'rdf') {
      const entry = this.#groups.get(address);
      if (entry) entry.invalid = true; // daoURI changed
    } else {
      // A member token minted, burnt or moved: the holders' access changed.
      for (const a of [event.from, event.to]) if (a !== ZERO) this.#membershipChanged(address, a);
    }
  }

  #contract(kind: 'NameService' | 'FollowRegister' | 'Follow' | 'Dao', address: string): Contract {
    return relationContract(kind, address, this.#opts.provider);
  }

  #call<T>(contract: Contract, method: string, ...args: unknown[]): Promise<T> {
    return this.#bounded(contract.getFunction(method).staticCall(...args) as Promise<T>, `${method}()`);
  }

  #bounded<T>(work: Promise<T>, what: string): Promise<T> {
    return withTimeout(work, this.#opts.rpcTimeoutMs, what);
  }

  #unavailable(e: unknown): AppError {
    if (e instanceof AppError) return e;
    this.#opts.log?.warn({ err: e }, 'relation chain read failed');
    return new AppError('RELATIONS_UNAVAILABLE', undefined, { cause: e instanceof Error ? e.message : String(e) });
  }
}
