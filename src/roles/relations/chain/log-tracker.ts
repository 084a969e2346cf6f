import { AbiCoder, id, zeroPadValue, type Log, type Provider } from 'ethers';
import { withTimeout } from './rpc-timeout.js';

export const TRANSFER_TOPIC = id('Transfer(address,address,uint256)');
export const UPDATE_RDF_TOPIC = id('UpdateRDF(uint256,string)');
const ZERO = '0x0000000000000000000000000000000000000000';

/** Who holds which token of one soulbound contract (a DAO's members, a Follow contract's followers). */
export class TokenHolders {
  readonly #holderOf = new Map<string, string>();
  readonly #count = new Map<string, number>();

  /** Applies one Transfer: a mint adds `to`, a burn removes `from`, a transfer does both. */
  transfer(from: string, to: string, tokenId: string): void {
    const previous = this.#holderOf.get(tokenId);
    if (previous !== undefined) {
      const left = (this.#count.get(previous) ?? 1) - 1;
      if (left > 0) this.#count.set(previous, left);
      else this.#count.delete(previous);
      this.#holderOf.delete(tokenId);
    }
    if (to !== ZERO) {
      this.#holderOf.set(tokenId, to);
      this.#count.set(to, (this.#count.get(to) ?? 0) + 1);
    }
    void from;
  }

  has(address: string): boolean {
    return this.#count.has(address);
  }

  list(): string[] {
    return [...this.#count.keys()];
  }

  get size(): number {
    return this.#count.size;
  }

  /** Takes over `other`'s holdings (a rebuild after a reorganisation); returns who joined and who left. */
  replaceWith(other: TokenHolders): { joined: string[]; left: string[] } {
    const before = new Set(this.#count.keys());
    this.#holderOf.clear();
    this.#count.clear();
    for (const [k, v] of other.#holderOf) this.#holderOf.set(k, v);
    for (const [k, v] of other.#count) this.#count.set(k, v);
    return { joined: other.list().filter((a) => !before.has(a)), left: [...before].filter((a) => !other.has(a)) };
  }
}

/** What a poll tells the reader: a Transfer, an UpdateRDF, or that a reorganisation rebuilt everything. */
export type TrackerEvent = { kind: 'transfer'; from: string; to: string } | { kind: 'rdf'; rdf: string } | { kind: 'reorg' };

export interface LogTrackerOptions {
  provider: Provider;
  rpcTimeoutMs: number;
  /** First block to read history from (where the relation contracts were deployed). */
  fromBlock: number;
  /** Most blocks asked for in one eth_getLogs (public RPCs cap the range). */
  logRange: number;
  now: () => number;
  /** Blocks behind the head that are read (0: the head itself); default 0. */
  confirmations?: number;
  /**
   * Called for each UpdateRDF and Transfer seen by a poll on a tracked or watched contract; after a
   * reorganisation, once with `reorg` per tracked and watched contract, then a Transfer-like event
   * (from or to the zero address) for each holder the rebuild added or removed.
   */
  onEvent?: (address: string, event: TrackerEvent) => void;
}

/**
 * Keeps token-holder sets of many contracts current with one eth_getLogs per poll. A contract is loaded
 * cold once (its Transfer history from `fromBlock`), then advanced with every other tracked contract from
 * a shared cursor (the last block applied). Operations run one at a time, and every RPC call is bounded.
 *
 * Canonical chain only: the cursor is `confirmations` blocks behind the head, and the hash of the cursor
 * block is remembered. Each poll first checks that block's hash; when it changed or the block is gone (a
 * reorganisation reached it), every tracked set is rebuilt from its history on the canonical chain and
 * the reader is told who joined and left. (eth_getLogs polling never sees `removed: true` logs, which only
 * filters and subscriptions deliver; the hash check is what catches a reorganisation.)
 */
export class LogTracker {
  readonly #tracked = new Map<string, TokenHolders>();
  readonly #watched = new Set<string>();
  #cursor: number | undefined;
  /** Hash of block `#cursor` as it was applied (undefined before the first block). */
  #cursorHash: string | undefined;
  #syncedAt = Number.NEGATIVE_INFINITY;
  #queue: Promise<unknown> = Promise.resolve();
  #polling: Promise<void> | undefined;

  constructor(private readonly opts: LogTrackerOptions) {}

  /** When the last successful poll started (ms, from the injected clock): the view is at least that fresh. */
  get syncedAt(): number {
    return this.#syncedAt;
  }

  /** The last block applied to every tracked contract (-1 before the first contact). */
  get cursor(): number {
    return this.#cursor ?? -1;
  }

  /** The holders of `address` if it is already tracked (no RPC). */
  peek(address: string): TokenHolders | undefined {
    return this.#tracked.get(address);
  }

  /** The holders of `address`, loading its history first when it is not tracked yet. */
  track(address: string): Promise<TokenHolders> {
    const known = this.#tracked.get(address);
    if (known) return Promise.resolve(known);
    return this.#serial(async () => {
      const again = this.#tracked.get(address);
      if (again) return again;
      if (this.#cursor === undefined) await this.#start();
      const holders = new TokenHolders();
      for (const log of await this.#logs([address], [TRANSFER_TOPIC], this.opts.fromBlock, this.#cursor as number)) {
        this.#applyTransfer(holders, log);
      }
      this.#tracked.set(address, holders);
      return holders;
    });
  }

  /** Follows the events of `address` from now on without loading its history (for cache invalidation). */
  watch(address: string): void {
    this.#watched.add(address);
  }

  /** Reads every new block since the cursor; concurrent callers share one poll. */
  poll(): Promise<void> {
    this.#polling ??= this.#serial(async () => {
      const started = this.opts.now();
      if (this.#cursor === undefined) {
        await this.#start();
        return;
      }
      const latest = await this.#blockNumber();
      if (this.#cursor >= 0 && (await this.#hashOf(this.#cursor)) !== this.#cursorHash) {
        await this.#rebuild(latest);
        this.#syncedAt = started;
        return;
      }
      const tipHash = latest > this.#cursor ? await this.#hashOf(latest) : this.#cursorHash;
      const addresses = [...this.#tracked.keys(), ...this.#watched];
      if (latest > this.#cursor && addresses.length > 0) {
        for (let from = this.#cursor + 1; from <= latest; from += this.opts.logRange) {
          const to = Math.min(latest, from + this.opts.logRange - 1);
          for (const log of await this.#logs(addresses, [TRANSFER_TOPIC, UPDATE_RDF_TOPIC], from, to)) this.#dispatch(log);
          this.#cursor = to;
        }
      }
      if (latest > this.#cursor || this.#cursor < 0) this.#cursorHash = tipHash;
      this.#cursor = Math.max(this.#cursor, latest);
      this.#syncedAt = started;
    }).finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  /** The logs of a Transfer/UpdateRDF-style query over any addresses (used for the following scan). */
  async logsByTopics(topics: (string | null)[], fromBlock: number, toBlock: number): Promise<Log[]> {
    const out: Log[] = [];
    for (let from = fromBlock; from <= toBlock; from += this.opts.logRange) {
      const to = Math.min(toBlock, from + this.opts.logRange - 1);
      out.push(...(await this.#bounded(this.opts.provider.getLogs({ topics, fromBlock: from, toBlock: to }), 'eth_getLogs')));
    }
    return out;
  }

  blockNumber(): Promise<number> {
    return this.#blockNumber();
  }

  /** Sets the cursor to the newest block: whatever is loaded up to it is current as of now. */
  async #start(): Promise<void> {
    const started = this.opts.now();
    const latest = await this.#blockNumber();
    this.#cursorHash = latest >= 0 ? await this.#hashOf(latest) : undefined;
    this.#cursor = latest;
    this.#syncedAt = started;
  }

  /**
   * A reorganisation replaced the cursor block: every tracked set is read again from `fromBlock` to `latest`
   * on the canonical chain, and the differences are reported as events.
   */
  async #rebuild(latest: number): Promise<void> {
    const tipHash = latest >= 0 ? await this.#hashOf(latest) : undefined;
    const fresh = new Map<string, TokenHolders>();
    for (const address of this.#tracked.keys()) {
      const holders = new TokenHolders();
      for (const log of await this.#logs([address], [TRANSFER_TOPIC], this.opts.fromBlock, latest)) this.#applyTransfer(holders, log);
      fresh.set(address, holders);
    }
    this.#cursor = latest;
    this.#cursorHash = tipHash;
    for (const address of this.#watched) this.opts.onEvent?.(address, { kind: 'reorg' });
    for (const [address, holders] of fresh) {
      const { joined, left } = (this.#tracked.get(address) as TokenHolders).replaceWith(holders);
      this.opts.onEvent?.(address, { kind: 'reorg' });
      for (const a of left) this.opts.onEvent?.(address, { kind: 'transfer', from: a, to: ZERO });
      for (const a of joined) this.opts.onEvent?.(address, { kind: 'transfer', from: ZERO, to: a });
    }
  }

  /** The newest block this tracker reads: `confirmations` behind the head (-1 while the chain is shorter). */
  async #blockNumber(): Promise<number> {
    const head = await this.#bounded(this.opts.provider.getBlockNumber(), 'eth_blockNumber');
    return Math.max(-1, head - (this.opts.confirmations ?? 0));
  }

  async #hashOf(block: number): Promise<string | undefined> {
    const b = await this.#bounded(this.opts.provider.getBlock(block), 'eth_getBlockByNumber');
    return b?.hash ?? undefined;
  }

  async #logs(addresses: string[], topic0: string[], fromBlock: number, toBlock: number): Promise<Log[]> {
    const out: Log[] = [];
    for (let from = fromBlock; from <= toBlock; from += this.opts.logRange) {
      const to = Math.min(toBlock, from + this.opts.logRange - 1);
      const filter = { address: addresses, topics: [topic0], fromBlock: from, toBlock: to };
      out.push(...(await this.#bounded(this.opts.provider.getLogs(filter), 'eth_getLogs')));
    }
    return out;
  }

  #dispatch(log: Log): void {
    const address = log.address.toLowerCase();
    if (log.topics[0] === TRANSFER_TOPIC) {
      const holders = this.#tracked.get(address);
      if (holders) this.#applyTransfer(holders, log);
      const from = topicAddress(log.topics[1]);
      const to = topicAddress(log.topics[2]);
      if (from !== undefined && to !== undefined) this.opts.onEvent?.(address, { kind: 'transfer', from, to });
    } else if (log.topics[0] === UPDATE_RDF_TOPIC) {
      let rdf = '';
      try {
        rdf = String(AbiCoder.defaultAbiCoder().decode(['string'], log.data)[0]);
      } catch {
        return; // not the UpdateRDF(uint256,string) we know
      }
      this.opts.onEvent?.(address, { kind: 'rdf', rdf });
    }
  }

  #applyTransfer(holders: TokenHolders, log: Log): void {
    const from = topicAddress(log.topics[1]);
    const to = topicAddress(log.topics[2]);
    const tokenId = log.topics[3];
    if (from === undefined || to === undefined || tokenId === undefined) return; // not an ERC-721 Transfer
    holders.transfer(from, to, tokenId);
  }

  #bounded<T>(work: Promise<T>, what: string): Promise<T> {
    return withTimeout(work, this.opts.rpcTimeoutMs, what);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}

/** The address in an indexed address topic, lowercase. */
export function topicAddress(topic: string | undefined): string | undefined {
  if (topic === undefined || topic.length !== 66) return undefined;
  return `0x${topic.slice(26)}`.toLowerCase();
}

/** The topic form of an address (for filtering on an indexed address). */
export function addressTopic(address: string): string {
  return zeroPadValue(address, 32).toLowerCase();
}
