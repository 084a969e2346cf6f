import { JsonRpcProvider, Wallet } from 'ethers';
import { deployRelationContracts, DEV_NAME_SUFFIX } from '../src/roles/relations/chain/deploy.js';

/**
 * Deploys NameService, FollowRegister and DaoRegister (contracts/) to RPC_URL with DEPLOYER_KEY and prints
 * the addresses as the environment lines the server reads.
 *
 *   RPC_URL=http://127.0.0.1:8545 DEPLOYER_KEY=0x... [NAME_SUFFIX=.rel] npx tsx scripts/deploy.ts
 */
const url = process.env['RPC_URL'];
const key = process.env['DEPLOYER_KEY'];
if (!url || !key) {
  process.stderr.write('usage: RPC_URL=<http url> DEPLOYER_KEY=<0x private key> [NAME_SUFFIX=.rel] npx tsx scripts/deploy.ts\n');
  process.exit(2);
}
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, batchMaxCount: 1, cacheTimeout: -1 });
const deployer = new Wallet(key, provider);
const addresses = await deployRelationContracts(deployer, process.env['NAME_SUFFIX'] ?? DEV_NAME_SUFFIX);
const { chainId } = await provider.getNetwork();
process.stdout.write(
  [
    'CHAIN=rpc',
    `RPC_URL=${url}`,
    `CHAIN_ID=${chainId}`,
    `NAME_SERVICE_ADDRESS=${addresses.nameService}`,
    `FOLLOW_REGISTER_ADDRESS=${addresses.followRegister}`,
    `DAO_REGISTER_ADDRESS=${addresses.daoRegister}`,
    '',
  ].join('\n'),
);
provider.destroy();
