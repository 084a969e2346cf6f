import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Wallet } from 'ethers';
import { deployRelationContracts } from '../../src/roles/relations/chain/deploy.js';
import { RelationActions } from '../../src/roles/relations/chain/demo.js';
import { ethersProvider } from '../../src/roles/relations/chain/eip1193.js';
import { LocalChain } from '../../src/roles/relations/chain/local-chain.js';

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
  const rpc: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const call = JSON.parse(Buffer.concat(chunks).toString()) as { id: number; method: string; params?: unknown[] };
      chain.request({ method: call.method, ...(call.params ? { params: call.params } : {}) }).then(
        (result) => res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result })),
        (e: { code?: number; message?: string; data?: unknown }) => res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, error: { code: e.code ?? -32000, message: e.message, data: e.data } })),
      );
    });
  });
  await new Promise<void>((r) => rpc.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(rpc.address() as AddressInfo).port}`;
  return {
    env: {
      CHAIN: 'rpc', RPC_URL: url, CHAIN_ID: String(chain.chainId), NAME_SERVICE_ADDRESS: addresses.nameService,
      FOLLOW_REGISTER_ADDRESS: addresses.followRegister, DAO_REGISTER_ADDRESS: addresses.daoRegister, RELATIONS_REFRESH_MS: '500',
    },
    owner, dao,
    async close() {
      rpc.closeAllConnections();
      await new Promise<void>((r) => rpc.close(() => r()));
      await chain.close();
    },
  };
}
