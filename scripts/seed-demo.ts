import { JsonRpcProvider } from 'ethers';
import { seedDemo } from '../src/roles/relations/chain/demo.js';
import { devKeys } from '../src/roles/relations/chain/local-chain.js';

/**
 * Seeds the demo identities (names, avatars, follows, a DAO with members) on a chain where scripts/deploy.ts
 * has run. The four demo wallets must be funded; by default they are development accounts 1-4 of the public
 * test mnemonic (funded on Hardhat/Anvil-style dev chains), or pass DEMO_KEYS=0xk1,0xk2,0xk3,0xk4.
 *
 *   RPC_URL=... NAME_SERVICE_ADDRESS=... FOLLOW_REGISTER_ADDRESS=... DAO_REGISTER_ADDRESS=... npx tsx scripts/seed-demo.ts
 */
const env = process.env;
const url = env['RPC_URL'];
const addresses = {
  nameService: env['NAME_SERVICE_ADDRESS'] ?? '',
  followRegister: env['FOLLOW_REGISTER_ADDRESS'] ?? '',
  daoRegister: env['DAO_REGISTER_ADDRESS'] ?? '',
};
if (!url || !addresses.nameService || !addresses.followRegister || !addresses.daoRegister) {
  process.stderr.write('usage: RPC_URL=... NAME_SERVICE_ADDRESS=... FOLLOW_REGISTER_ADDRESS=... DAO_REGISTER_ADDRESS=... [DEMO_KEYS=k1,k2,k3,k4] npx tsx scripts/seed-demo.ts\n');
  process.exit(2);
}
const keys = env['DEMO_KEYS'] ? env['DEMO_KEYS'].split(',').map((k) => k.trim()) : devKeys(5).slice(1);
const provider = new JsonRpcProvider(url, undefined, { staticNetwork: true, batchMaxCount: 1, cacheTimeout: -1 });
const world = await seedDemo(provider, addresses, keys);
for (const id of world.identities) process.stdout.write(`${id.label.padEnd(6)} ${id.address} ${id.name}\n`);
process.stdout.write(`DAO "${world.dao.name}" ${world.dao.address} owner ${world.dao.owner} members ${world.dao.members.length}\n`);
provider.destroy();
