import { Wallet, type Provider, type Signer } from 'ethers';
import { relationContract } from './abi.js';
import { mined, type RelationAddresses } from './deploy.js';

/**
 * Writes to the relation contracts, as a user's wallet would (used by the demo seed, the tests and the
 * benchmark). Each call waits until its transaction is mined. Reads go through ChainRelations instead.
 */
export class RelationActions {
  constructor(readonly addresses: RelationAddresses) {}

  /** Registers `name` (the contract appends its suffix) for the signer and resolves it to the signer. */
  async registerName(user: Signer, name: string, avatar?: string): Promise<void> {
    const ns = relationContract('NameService', this.addresses.nameService, user);
    await mined(ns.getFunction('register')(await user.getAddress(), name, true));
    if (avatar !== undefined) await mined(ns.getFunction('setProfileURI')(avatar));
  }

  async setAvatar(user: Signer, uri: string): Promise<void> {
    await mined(relationContract('NameService', this.addresses.nameService, user).getFunction('setProfileURI')(uri));
  }

  /** The Follow contract of `target`, deployed through the FollowRegister on first use. */
  async followContractOf(sender: Signer, target: string): Promise<string> {
    const register = relationContract('FollowRegister', this.addresses.followRegister, sender);
    let address = (await register.getFunction('ownedFollowContract')(target)) as string;
    if (/^0x0{40}$/i.test(address)) {
      await mined(register.getFunction('deployFollowContract')(target));
      address = (await register.getFunction('ownedFollowContract')(target)) as string;
    }
    return address.toLowerCase();
  }

  /** `follower` follows `target`. */
  async follow(follower: Signer, target: string): Promise<void> {
    const follow = relationContract('Follow', await this.followContractOf(follower, target), follower);
    await mined(follow.getFunction('follow')());
  }

  async unfollow(follower: Signer, target: string): Promise<void> {
    const follow = relationContract('Follow', await this.followContractOf(follower, target), follower);
    await mined(follow.getFunction('unfollow')());
  }

  /** Creates a DAO owned by `owner` through the DaoRegister; returns its lowercase address. */
  async createDao(owner: Signer, name: string, options: { uri?: string; freeJoin?: boolean } = {}): Promise<string> {
    const register = relationContract('DaoRegister', this.addresses.daoRegister, owner);
    const response = await register.getFunction('deployDaoContract')(await owner.getAddress(), name);
    const receipt = await response.wait();
    const minted = receipt?.logs
      .map((log: { topics: readonly string[]; data: string }) => register.interface.parseLog(log))
      .find((e: { name: string } | null) => e?.name === 'Transfer');
    if (!minted) throw new Error('DaoRegister minted no token');
    const [, dao] = (await register.getFunction('daoOf')(minted.args[2])) as [string, string];
    const contract = relationContract('Dao', dao, owner);
    if (options.uri !== undefined) await mined(contract.getFunction('setDaoURI')(options.uri));
    if (options.freeJoin !== undefined) await mined(contract.getFunction('setFreeJoin')(options.freeJoin));
    return dao.toLowerCase();
  }

  /** The DAO owner adds members, in transactions of at most `batch` addresses. */
  async addMembers(owner: Signer, dao: string, members: readonly string[], batch = 250): Promise<void> {
    const contract = relationContract('Dao', dao, owner);
    for (let i = 0; i < members.length; i += batch) {
      const slice = members.slice(i, i + batch);
      // An explicit limit (about 100k gas per member) spares the node a gas-estimation binary search.
      await mined(contract.getFunction('addMember')(slice, { gasLimit: 100_000n + 110_000n * BigInt(slice.length) }));
    }
  }

  async join(member: Signer, dao: string): Promise<void> {
    await mined(relationContract('Dao', dao, member).getFunction('join')());
  }

  /** The DAO owner removes `member`, or a member removes itself. */
  async remove(sender: Signer, dao: string, member: string): Promise<void> {
    await mined(relationContract('Dao', dao, sender).getFunction('remove')(member));
  }

  async setFreeJoin(owner: Signer, dao: string, freeJoin: boolean): Promise<void> {
    await mined(relationContract('Dao', dao, owner).getFunction('setFreeJoin')(freeJoin));
  }

  async setDaoURI(owner: Signer, dao: string, uri: string): Promise<void> {
    await mined(relationContract('Dao', dao, owner).getFunction('setDaoURI')(uri));
  }

  async transferDao(owner: Signer, dao: string, to: string): Promise<void> {
    await mined(relationContract('Dao', dao, owner).getFunction('ownerTransfer')(to));
  }
}

export interface DemoIdentity {
  label: string;
  address: string;
  /** Development key from the public DEV_MNEMONIC: for trying the demo locally only. */
  privateKey: string;
  name: string;
  avatar: string;
}

export interface DemoWorld {
  identities: DemoIdentity[];
  dao: { address: string; name: string; owner: string; members: string[] };
}

const DEMO_PEOPLE = [
  { label: 'alice', avatar: 'https://example.invalid/avatars/alice.png' },
  { label: 'bob', avatar: 'https://example.invalid/avatars/bob.png' },
  { label: 'carol', avatar: 'https://example.invalid/avatars/carol.png' },
  { label: 'dave', avatar: 'https://example.invalid/avatars/dave.png' },
] as const;

/**
 * Seeds demo identities on a chain where the relation contracts are deployed: alice, bob, carol and dave get
 * Name Service names and avatars; alice and bob follow each other (friends), carol follows alice; alice
 * owns the DAO "Relation Demo" (free join on) with alice, bob and carol as members. `keys` must hold at
 * least four funded private keys.
 */
export async function seedDemo(provider: Provider, addresses: RelationAddresses, keys: readonly string[]): Promise<DemoWorld> {
  if (keys.length < DEMO_PEOPLE.length) throw new Error(`seedDemo needs ${DEMO_PEOPLE.length} funded keys`);
  const actions = new RelationActions(addresses);
  const wallets = DEMO_PEOPLE.map((_, i) => new Wallet(keys[i] as string, provider));
  const [alice, bob, carol] = wallets as [Wallet, Wallet, Wallet, Wallet];
  const identities: DemoIdentity[] = [];
  for (const [i, person] of DEMO_PEOPLE.entries()) {
    const wallet = wallets[i] as Wallet;
    await actions.registerName(wallet, person.label, person.avatar);
    const ns = relationContract('NameService', addresses.nameService, provider);
    const name = (await ns.getFunction('nameOf')(wallet.address)) as string;
    identities.push({ label: person.label, address: wallet.address.toLowerCase(), privateKey: wallet.privateKey, name, avatar: person.avatar });
  }
  await actions.follow(alice, bob.address);
  await actions.follow(bob, alice.address);
  await actions.follow(carol, alice.address);
  const daoName = 'Relation Demo';
  const dao = await actions.createDao(alice, daoName, { uri: 'https://example.invalid/avatars/relation-demo.png', freeJoin: true });
  const members = [alice.address, bob.address, carol.address].map((a) => a.toLowerCase());
  await actions.addMembers(alice, dao, members);
  return { identities, dao: { address: dao, name: daoName, owner: alice.address.toLowerCase(), members } };
}
