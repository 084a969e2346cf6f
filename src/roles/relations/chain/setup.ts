import { Wallet } from 'ethers';
import type { Config } from '../../../config/config.js';
import type { Logger } from '../../../log/logger.js';
import { ChainRelations } from './chain-relations.js';
import { deployRelationContracts, type RelationAddresses } from './deploy.js';
import { seedDemo, type DemoWorld } from './demo.js';
import { HttpEip1193, MeteredEip1193, ethersProvider, type Eip1193 } from './eip1193.js';
import { LocalChain } from './local-chain.js';
import { serveChainRpc, type ChainRpcServer } from './rpc-server.js';

export interface StartedRelations {
  reader: ChainRelations;
  addresses: RelationAddresses;
  /** Present with CHAIN=embedded: the in-process chain (an EIP-1193 provider). */
  chain?: LocalChain;
  /** Present with CHAIN=embedded: the demo identities and DAO seeded at start. */
  demo?: DemoWorld;
  /** Present with CHAIN=embedded and CHAIN_RPC_PORT >= 0: the embedded chain's JSON-RPC URL. */
  rpcUrl?: string;
  close(): Promise<void>;
}

/**
 * Builds the chain-backed relation reader that `config` asks for (CHAIN=embedded or rpc) and starts its
 * event poll. Embedded: starts the in-process chain, deploys the contracts with development account 0 and
 * seeds the demo identities from accounts 1-4 (a few hundred ms). Rpc: connects to RPC_URL at the
 * configured addresses; nothing is read until first use, so a down RPC does not stop the server starting.
 */
export interface ChainSetupOptions {
  /** Observes every JSON-RPC call of the reader (metrics). */
  rpc?: (method: string, seconds: number, error?: 'transport' | 'rpc') => void;
}

export async function startChainRelations(config: Config, log?: Logger, options: ChainSetupOptions = {}): Promise<StartedRelations> {
  const metered = (source: Eip1193): Eip1193 => (options.rpc ? new MeteredEip1193(source, options.rpc) : source);
  if (config.chain === 'none') throw new Error('startChainRelations needs CHAIN=embedded or CHAIN=rpc');
  const readerOptions = {
    refreshMs: config.relationsRefreshMs,
    stateTtlMs: config.relationsStateTtlMs,
    rpcTimeoutMs: config.relationsRpcTimeoutMs,
    maxStaleMs: config.relationsMaxStaleMs,
    fromBlock: config.relationsFromBlock,
    logRange: config.relationsLogRange,
    confirmations: config.chainConfirmations,
    ...(log ? { log: log.child({ component: 'relations' }) } : {}),
  };
  if (config.chain === 'rpc') {
    const provider = ethersProvider(metered(new HttpEip1193(config.rpcUrl, config.relationsRpcTimeoutMs)), config.chainId);
    const addresses = {
      nameService: config.nameServiceAddress,
      followRegister: config.followRegisterAddress,
      daoRegister: config.daoRegisterAddress,
    };
    const reader = new ChainRelations({ provider, addresses, ...readerOptions }).start();
    return { reader, addresses, close: () => reader.close() };
  }
  const chain = await LocalChain.start({ chainId: config.chainId });
  const provider = ethersProvider(chain, chain.chainId);
  const addresses = await deployRelationContracts(new Wallet(chain.keys[0] as string, provider));
  const demo = await seedDemo(provider, addresses, chain.keys.slice(1));
  // The reader reads through its own metered provider; deploying and seeding are not the reader's calls.
  const reader = new ChainRelations({ provider: ethersProvider(metered(chain), chain.chainId), addresses, ...readerOptions, fromBlock: 0 }).start();
  const rpc = config.chainRpcPort >= 0 ? await serveRpc(chain, config, log) : null;
  return {
    reader,
    addresses,
    chain,
    demo,
    ...(rpc ? { rpcUrl: rpc.url } : {}),
    close: async () => {
      await rpc?.close();
      await reader.close();
      await chain.close();
    },
  };
}

/**
 * The embedded chain's JSON-RPC on CHAIN_RPC_PORT; when that port is taken (a second proxy on the same
 * machine, a Hardhat node on 8545) it is served on a free port instead, said in one warn line with its
 * URL, so that a second `npm start` still starts (docs/relations.md).
 */
async function serveRpc(chain: LocalChain, config: Config, log?: Logger): Promise<ChainRpcServer> {
  try {
    return await serveChainRpc(chain, config.chainRpcHost, config.chainRpcPort);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE' || config.chainRpcPort === 0) throw e;
    const rpc = await serveChainRpc(chain, config.chainRpcHost, 0);
    log?.warn({ chainRpcPort: config.chainRpcPort, chainRpc: rpc.url },
      `CHAIN_RPC_PORT ${config.chainRpcPort} on ${config.chainRpcHost} is in use (another proxy, or a Hardhat node?): the embedded chain's JSON-RPC is at ${rpc.url} instead; set CHAIN_RPC_PORT to choose`);
    return rpc;
  }
}
