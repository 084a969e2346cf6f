import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAppError } from '../../src/errors/app-error.js';
import { relationContract } from '../../src/roles/relations/chain/abi.js';
import { FaultSwitch, fresh, reader, startWorld, type World } from './world.js';

let world: World;

beforeAll(async () => {
  world = await startWorld();
});

afterAll(async () => {
  await world.chain.close();
});

const lower = (a: string): string => a.toLowerCase();
const sorted = (xs: string[]): string[] => [...xs].sort();

describe('ChainRelations against the real contracts on the in-process chain', () => {
  it('reads Name Service names and avatars, and knows who holds no name', async () => {
    const alice = fresh(world);
    const nobody = fresh(world);
    await world.actions.registerName(alice, 'alice', 'ipfs://alice-avatar');
    const r = reader(world);
    expect(await r.profile(alice.address)).toEqual({ name: 'alice.rel', avatar: 'ipfs://alice-avatar' });
    expect(await r.hasName(alice.address)).toBe(true);
    expect(await r.hasName(nobody.address)).toBe(false);
    expect(await r.profile(nobody.address)).toEqual({ name: '', avatar: '' });
    expect(await r.profile('not an address')).toEqual({ name: '', avatar: '' });
    await r.close();
  });

  it('picks up a new avatar and a newly registered name after a refresh (UpdateRDF / Transfer events)', async () => {
    const user = fresh(world);
    const r = reader(world); // state TTL of an hour: only the events can make it re-read
    expect(await r.hasName(user.address)).toBe(false);
    await r.refresh();
    await world.actions.registerName(user, 'latecomer');
    await world.actions.setAvatar(user, 'https://example.invalid/late.png');
    expect(await r.hasName(user.address)).toBe(false); // cached until the events are applied
    await r.refresh();
    expect(await r.profile(user.address)).toEqual({ name: 'latecomer.rel', avatar: 'https://example.invalid/late.png' });
    await r.close();
  });

  it('derives following, followers and friends (mutual follows) from Follow contracts', async () => {
    const [a, b, c] = [fresh(world), fresh(world), fresh(world)];
    await world.actions.follow(a, b.address);
    await world.actions.follow(b, a.address);
    await world.actions.follow(c, a.address);
    const r = reader(world);
    expect(sorted(await r.following(a.address))).toEqual([lower(b.address)]);
    expect(sorted(await r.followers(a.address))).toEqual(sorted([lower(b.address), lower(c.address)]));
    expect(await r.friends(a.address)).toEqual([lower(b.address)]);
    expect(await r.friends(c.address)).toEqual([]);
    expect(await r.following(c.address)).toEqual([lower(a.address)]);

    // the reader agrees with the contract's own isFollowing
    const followOfA = relationContract('Follow', await world.actions.followContractOf(a, a.address), world.provider);
    expect(await followOfA.getFunction('isFollowing')(c.address)).toBe(true);

    await world.actions.unfollow(b, a.address);
    await world.actions.follow(c, b.address);
    await r.refresh();
    expect(await r.friends(a.address)).toEqual([]);
    expect(await r.followers(a.address)).toEqual([lower(c.address)]);
    expect(sorted(await r.followers(b.address))).toEqual(sorted([lower(a.address), lower(c.address)]));
    // a later scan finds the Follow contract c started holding after the first scan
    const later = reader(world, { refreshMs: 0 });
    expect(sorted(await later.following(c.address))).toEqual(sorted([lower(a.address), lower(b.address)]));
    await world.actions.follow(c, fresh(world).address);
    expect(await later.following(c.address)).toHaveLength(3);
    await r.close();
    await later.close();
  });

  it('reads a DAO: name, avatar, owner via ownerOfDao() (not owner()), free-join', async () => {
    const owner = fresh(world);
    const dao = await world.actions.createDao(owner, 'Builders', { uri: 'ipfs://builders', freeJoin: true });
    const r = reader(world);
    expect(await r.group(dao)).toEqual({ address: dao, name: 'Builders', avatar: 'ipfs://builders', owner: lower(owner.address), freeJoin: true });
    const contract = relationContract('Dao', dao, world.provider);
    expect(lower(await contract.getFunction('owner')())).toBe(world.addresses.daoRegister); // the pitfall
    await r.close();
  });

  it('says null for addresses that are not DAOs: a wallet, another contract, garbage', async () => {
    const r = reader(world);
    expect(await r.group(fresh(world).address)).toBeNull();
    expect(await r.group(world.addresses.nameService)).toBeNull();
    expect(await r.group('0x1234')).toBeNull();
    expect(await r.isMember(world.addresses.nameService, fresh(world).address)).toBe(false);
    expect(await r.members(world.addresses.followRegister)).toEqual([]);
    await r.close();
  });

  it('tracks membership through join, addMember and remove; a removed member is gone after a refresh', async () => {
    const owner = fresh(world);
    const [joiner, added, other] = [fresh(world), fresh(world), fresh(world)];
    const dao = await world.actions.createDao(owner, 'Club', { freeJoin: true });
    await world.actions.join(joiner, dao);
    const r = reader(world);
    expect(await r.isMember(dao, joiner.address)).toBe(true);
    expect(await r.isMember(dao, added.address)).toBe(false);
    expect(await r.isMember(dao, owner.address)).toBe(false); // owning is not membership

    await world.actions.addMembers(owner, dao, [added.address, other.address]);
    await r.refresh();
    expect(sorted(await r.members(dao))).toEqual(sorted([joiner, added, other].map((w) => lower(w.address))));

    await world.actions.remove(owner, dao, added.address); // removed by the owner
    await world.actions.remove(other, dao, other.address); // leaves by itself
    expect(await r.isMember(dao, added.address)).toBe(true); // still the cached view
    await r.refresh();
    expect(await r.isMember(dao, added.address)).toBe(false);
    expect(await r.members(dao)).toEqual([lower(joiner.address)]);
    expect(await relationContract('Dao', dao, world.provider).getFunction('isMember')(added.address)).toBe(false);
    await r.close();
  });

  it('re-reads owner, name and free-join (no events) once the state TTL has passed', async () => {
    const owner = fresh(world);
    const heir = fresh(world);
    const dao = await world.actions.createDao(owner, 'Old name');
    let now = 1_000;
    const r = reader(world, { now: () => now, stateTtlMs: 30_000 });
    expect(await r.group(dao)).toMatchObject({ owner: lower(owner.address), freeJoin: false, name: 'Old name' });
    await world.actions.setFreeJoin(owner, dao, true);
    await relationContract('Dao', dao, owner).getFunction('setName')('New name').then((tx) => tx.wait());
    await world.actions.transferDao(owner, dao, heir.address);
    now += 29_000;
    expect(await r.group(dao)).toMatchObject({ owner: lower(owner.address), freeJoin: false }); // within the TTL
    now += 2_000;
    expect(await r.group(dao)).toMatchObject({ owner: lower(heir.address), freeJoin: true, name: 'New name' });
    await r.close();
  });

  it('refreshes a DAO avatar from its UpdateRDF event before the TTL', async () => {
    const owner = fresh(world);
    const dao = await world.actions.createDao(owner, 'Art', { uri: 'ipfs://v1' });
    const r = reader(world);
    expect((await r.group(dao))?.avatar).toBe('ipfs://v1');
    await r.isMember(dao, owner.address); // tracks the DAO's events
    await world.actions.setDaoURI(owner, dao, 'ipfs://v2');
    await r.refresh();
    expect((await r.group(dao))?.avatar).toBe('ipfs://v2');
    await r.close();
  });

  it('loads a large member set from Transfer logs once and serves it without further RPC', async () => {
    const owner = fresh(world);
    const dao = await world.actions.createDao(owner, 'Crowd');
    const members = Array.from({ length: 600 }, (_, i) => `0x${(0xc0de0000 + i).toString(16).padStart(40, '0')}`);
    await world.actions.addMembers(owner, dao, members);
    const source = new FaultSwitch(world.chain);
    const r = reader(world, { source });
    expect(await r.members(dao)).toHaveLength(600);
    source.mode = 'down';
    expect(await r.isMember(dao, members[599] as string)).toBe(true); // served from the cached set
    source.release();
    await r.close();
  });
});

describe('ChainRelations when the RPC is down or slow', () => {
  it('fails with RELATIONS_UNAVAILABLE when nothing is cached and the RPC is down', async () => {
    const source = new FaultSwitch(world.chain);
    source.mode = 'down';
    const r = reader(world, { source });
    for (const read of [() => r.profile(fresh(world).address), () => r.group(world.addresses.daoRegister), () => r.followers(fresh(world).address)]) {
      const err = await read().then(() => undefined, (e: unknown) => e);
      expect(isAppError(err, 'RELATIONS_UNAVAILABLE')).toBe(true);
    }
    await r.close();
  });

  it('gives up on a hanging RPC after its timeout instead of waiting', async () => {
    const source = new FaultSwitch(world.chain);
    source.mode = 'hang';
    const r = reader(world, { source, rpcTimeoutMs: 200 });
    const err = await r.group(world.addresses.daoRegister).then(() => undefined, (e: unknown) => e);
    expect(isAppError(err, 'RELATIONS_UNAVAILABLE')).toBe(true);
    source.release();
    await r.close();
  });

  it('serves the cached view while it is fresh enough, then fails closed', async () => {
    const owner = fresh(world);
    const member = fresh(world);
    const dao = await world.actions.createDao(owner, 'Resilient', { freeJoin: true });
    await world.actions.join(member, dao);
    await world.actions.registerName(member, 'resilient');
    const source = new FaultSwitch(world.chain);
    let now = 0;
    const r = reader(world, { source, now: () => now, stateTtlMs: 1_000, maxStaleMs: 10_000, rpcTimeoutMs: 300 });
    await r.refresh();
    expect(await r.isMember(dao, member.address)).toBe(true);
    expect((await r.profile(member.address)).name).toBe('resilient.rel');

    source.mode = 'hang'; // slow: every call times out
    now = 5_000; // past the state TTL, within maxStale
    await expect(r.refresh()).rejects.toThrow();
    expect(await r.isMember(dao, member.address)).toBe(true);
    expect((await r.group(dao))?.name).toBe('Resilient');
    expect((await r.profile(member.address)).name).toBe('resilient.rel');

    source.release();
    source.mode = 'down';
    now = 20_000; // past maxStale: no stale answers any more
    for (const read of [() => r.isMember(dao, member.address), () => r.group(dao), () => r.members(dao), () => r.profile(member.address)]) {
      const err = await read().then(() => undefined, (e: unknown) => e);
      expect(isAppError(err, 'RELATIONS_UNAVAILABLE')).toBe(true);
    }

    source.mode = 'ok'; // the chain is back: reads recover by themselves
    expect(await r.isMember(dao, member.address)).toBe(true);
    expect((await r.group(dao))?.name).toBe('Resilient');
    await r.close();
  });
});
