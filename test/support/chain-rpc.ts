import { Wallet } from 'ethers';
import { deployRelationContracts } from '../../src/roles/relations/chain/deploy.js';
import { RelationActions } from '../../src/roles/relations/chain/demo.js';
import { ethersProvider } from '../../src/roles/relations/chain/eip1193.js';
import { LocalChain } from '../../src/roles/relations/chain/local-chain.js';
import { serveChainRpc } from '../../src/roles/relations/chain/rpc-server.js';

export interface ChainRpc {
  /** What a server process needs to read this chain (CHAIN=rpc). */
  env: Record<string, string>;
  /** A funded account that owns `dao`. */
  owner: Wallet;
  dao: string;
  close(): Promise<void>;
}

/**
 * The local chain served over HTTP JSON-RPC, as a real node would be, so several server processes read
 * one chain: the relation contracts deployed, and a DAO whose members are `members`.
 */
export async function startChainRpc(members: readonly string[]): Promise<ChainRpc> {
  const chain = await LocalChain.start({ accounts: 2 });
  const provider = ethersProvider(chain, chain.chainId);
  const addresses = await deployRelationContracts(new Wallet(chain.keys[0] as string, provider));
  const owner = new Wallet(chain.keys[1] as string, provider);
  const actions = new RelationActions(addresses);
  const dao = (await actions.createDao(owner, 'Cluster Group')).toLowerCase();
  await actions.addMembers(owner, dao, members);
  const rpc = await serveChainRpc(chain, '127.0.0.1', 0);
  const url = rpc.url;
  return {
    env: {
      CHAIN: 'rpc', RPC_URL: url, CHAIN_ID: String(chain.chainId), NAME_SERVICE_ADDRESS: addresses.nameService,
      FOLLOW_REGISTER_ADDRESS: addresses.followRegister, DAO_REGISTER_ADDRESS: addresses.daoRegister, RELATIONS_REFRESH_MS: '500',
    },
    owner, dao,
    async close() {
      await rpc.close();
      await chain.close();
    },
  };
}
