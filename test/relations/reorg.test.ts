import type { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reader, startWorld, type World } from './world.js';

/**
 * Chain reorganisations on the embedded chain: `evm_snapshot` / `evm_revert` drop blocks the reader has
 * already applied, and other blocks are mined at the same heights, as a reorganisation would.
 */
describe('relations follow the canonical chain', () => {
  let world: World;
  let owner: Wallet;
  let dao: string;
  const snapshot = async (): Promise<string> => (await world.chain.request({ method: 'evm_snapshot' })) as string;
  const revert = async (id: string): Promise<void> => { expect(await world.chain.request({ method: 'evm_revert', params: [id] })).toBe(true); };
  const mine = async (n: number): Promise<void> => { for (let i = 0; i < n; i++) await world.chain.request({ method: 'evm_mine' }); };

  beforeAll(async () => {
    world = await startWorld();
    owner = world.wallets[0] as Wallet;
    dao = (await world.actions.createDao(owner, 'Reorg Group')).toLowerCase();
  }, 60_000);
  afterAll(async () => { await world?.chain.close(); });

  it('drops a join that a reorganisation removed and applies what replaced it', async () => {
    const [, m, n] = world.wallets as [Wallet, Wallet, Wallet];
    const r = reader(world);
    const changes: [string, string | undefined][] = [];
    r.watchMembership((g, u) => changes.push([g, u]));
    try {
      expect(await r.isMember(dao, m.address)).toBe(false);
      const before = await snapshot();
      await world.actions.addMembers(owner, dao, [m.address]);
      await r.refresh();
      expect(await r.isMember(dao, m.address)).toBe(true);
      await revert(before); // the block with the join is gone
      await world.actions.addMembers(owner, dao, [n.address]); // another block at the same height
      changes.length = 0;
      await r.refresh();
      expect(await r.isMember(dao, m.address)).toBe(false);
      expect(await r.isMember(dao, n.address)).toBe(true);
      expect((await r.members(dao)).sort()).toEqual([n.address.toLowerCase()]);
      expect(changes).toContainEqual([dao, m.address.toLowerCase()]);
      expect(changes).toContainEqual([dao, undefined]);
    } finally {
      await r.close();
    }
  });

  it('restores a member whose removal was reorganised away, also when the new branch is longer', async () => {
    const [, , , k] = world.wallets as [Wallet, Wallet, Wallet, Wallet];
    const r = reader(world);
    try {
      await world.actions.addMembers(owner, dao, [k.address]);
      expect(await r.isMember(dao, k.address)).toBe(true);
      const before = await snapshot();
      await world.actions.remove(owner, dao, k.address);
      await r.refresh();
      expect(await r.isMember(dao, k.address)).toBe(false);
      await revert(before);
      await mine(3); // a longer branch without the removal
      await r.refresh();
      expect(await r.isMember(dao, k.address)).toBe(true);
    } finally {
      await r.close();
    }
  });

  it('with CHAIN_CONFIRMATIONS, applies a change only once it is that many blocks deep', async () => {
    const [, , , , j] = world.wallets as [Wallet, Wallet, Wallet, Wallet, Wallet];
    const r = reader(world, { confirmations: 2 });
    try {
      expect(await r.isMember(dao, j.address)).toBe(false);
      await world.actions.addMembers(owner, dao, [j.address]);
      await r.refresh();
      expect(await r.isMember(dao, j.address)).toBe(false); // 0 blocks deep
      await mine(1);
      await r.refresh();
      expect(await r.isMember(dao, j.address)).toBe(false); // 1 deep
      await mine(1);
      await r.refresh();
      expect(await r.isMember(dao, j.address)).toBe(true); // 2 deep
    } finally {
      await r.close();
    }
  });
});
