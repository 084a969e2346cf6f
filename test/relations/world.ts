import { Wallet, type BrowserProvider } from 'ethers';
import { ChainRelations, type ChainRelationsOptions } from '../../src/roles/relations/chain/chain-relations.js';
import { deployRelationContracts, type RelationAddresses } from '../../src/roles/relations/chain/deploy.js';
import { RelationActions } from '../../src/roles/relations/chain/demo.js';
import { TransportError, ethersProvider, type Eip1193 } from '../../src/roles/relations/chain/eip1193.js';
import { LocalChain } from '../../src/roles/relations/chain/local-chain.js';

/**
 * A fault switch in front of the real in-process chain: `ok` passes requests through, `down` refuses them
 * the way an unreachable HTTP RPC does, `hang` never answers (until switched back or released).
 */
export class FaultSwitch implements Eip1193 {
  mode: 'ok' | 'down' | 'hang' = 'ok';
  #parked: (() => void)[] = [];
  constructor(private readonly inner: Eip1193) {}

  async request(args: { method: string; params?: readonly unknown[] | Record<string, unknown> }): Promise<unknown> {
    if (this.mode === 'down') throw new TransportError('connect ECONNREFUSED 127.0.0.1:8545');
    if (this.mode === 'hang') await new Promise<void>((resolve) => this.#parked.push(resolve));
    return this.inner.request(args);
  }

  /** Lets every parked request go on (so nothing is left pending when a test ends). */
  release(): void {
    this.mode = 'ok';
    for (const go of this.#parked.splice(0)) go();
  }
}

export interface World {
  chain: LocalChain;
  provider: BrowserProvider;
  addresses: RelationAddresses;
  actions: RelationActions;
  /** Funded development wallets 1..19 (0 deployed the contracts). */
  wallets: Wallet[];
}

let next = 1;

export async function startWorld(): Promise<World> {
  const chain = await LocalChain.start({ accounts: 60 });
  const provider = ethersProvider(chain, chain.chainId);
  const addresses = await deployRelationContracts(new Wallet(chain.keys[0] as string, provider));
  const wallets = chain.keys.slice(1).map((k) => new Wallet(k, provider));
  return { chain, provider, addresses, actions: new RelationActions(addresses), wallets };
}

/** A wallet no other test in this file has used. */
export function fresh(world: World): Wallet {
  const w = world.wallets[next++];
  if (!w) throw new Error('out of development wallets');
  return w;
}

export const READER_DEFAULTS = {
  refreshMs: 3_600_000, // tests call refresh() themselves
  stateTtlMs: 3_600_000,
  rpcTimeoutMs: 2_000,
  maxStaleMs: 3_600_000,
  fromBlock: 0,
  logRange: 10_000,
} as const;

/** A reader over `source` (the chain itself or a FaultSwitch in front of it). */
export function reader(world: World, overrides: Partial<ChainRelationsOptions> & { source?: Eip1193 } = {}): ChainRelations {
  const { source, ...rest } = overrides;
  const provider = source ? ethersProvider(source, world.chain.chainId) : world.provider;
  return new ChainRelations({ provider, addresses: world.addresses, ...READER_DEFAULTS, ...rest });
}
