import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Wallet } from 'ethers';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, type Identity } from '../support/messages.js';
import { StaticRelations } from '../support/relations.js';
import { http, login, startServer, type TestServer } from '../support/server.js';
import type { ChainRelations } from '../../src/roles/relations/chain/chain-relations.js';
import { reader, startWorld, type World } from '../relations/world.js';

const DAO = '0x' + 'ad'.repeat(20);
const lower = (i: Identity): string => i.address.toLowerCase();

/**
 * A role or membership change made through any face takes effect on every face at once, although the /im
 * gateway caches access decisions for GATEWAY_CACHE_MS (left at its 30 s default here).
 */
describe('roles take effect at once on both faces', () => {
  let srv: TestServer;
  let owner: Identity;
  let amy: Identity;
  let ben: Identity;
  let tokens: Record<'owner' | 'amy' | 'ben', string>;
  let a: ImClient;
  let b: ImClient;
  let o: ImClient;
  beforeAll(async () => {
    [owner, amy, ben] = [makeIdentity(), makeIdentity(), makeIdentity()];
    const relations = new StaticRelations(new Map([[DAO, {
      info: { address: DAO, name: 'DAO', avatar: '', owner: lower(owner), freeJoin: false },
      members: new Set([lower(owner), lower(amy), lower(ben)]),
    }]]));
    srv = await startServer({ requireName: false, gatewayCacheMs: 30_000 }, { relations });
    tokens = { owner: await login(srv.url, owner), amy: await login(srv.url, amy), ben: await login(srv.url, ben) };
    const url = imUrl(srv.wsUrl);
    [a, b, o] = await Promise.all([ImClient.open(url, tokens.amy), ImClient.open(url, tokens.ben), ImClient.open(url, tokens.owner)]);
  });
  afterAll(async () => {
    for (const c of [a, b, o]) c?.close();
    await srv?.close();
  });
  const say = async (c: ImClient, t: string): Promise<number> => (await c.ok(3, { 1: DAO, 2: 1, 7: { 0: t } })).get(0) as number;
  const revoke = (c: ImClient, mid: number): Promise<{ cmd: number; body: M }> => c.request(3, { 1: DAO, 2: 5, 6: [[6, mid]], 7: { 0: 1 } });
  const admins = (user: Identity, add: boolean): ReturnType<typeof http> =>
    http(srv.url, add ? 'PUT' : 'DELETE', `/groups/${DAO}/admins/${user.address}`, { token: tokens.owner });

  it('an admin removed over REST can no longer revoke others\' messages on /im', async () => {
    expect((await admins(amy, true)).status).toBe(204);
    const first = await say(b, 'spam 1');
    expect((await revoke(a, first)).cmd).toBe(3); // allowed, and the ADMIN decision is now cached
    expect((await admins(amy, false)).status).toBe(204);
    const second = await say(b, 'spam 2');
    const refused = await revoke(a, second);
    expect(refused.cmd).toBe(0);
    expect(refused.body.get(1)).toBe('FORBIDDEN');
    const [served] = (await b.ok(7, { 0: DAO, 1: second, 2: second })).get(0) as M[];
    expect(served?.get(5)).toBe(0); // not revoked
  });

  it('an admin granted over REST may revoke on /im at once', async () => {
    const mid = await say(b, 'spam 3');
    expect((await revoke(a, mid)).body.get(1)).toBe('FORBIDDEN'); // MEMBER decision cached
    expect((await admins(amy, true)).status).toBe(204);
    expect((await revoke(a, mid)).cmd).toBe(3);
  });

  it('a role set on /im is what REST reports at once, and the /im caches of other connections follow', async () => {
    expect((await o.ok(14, { 0: DAO, 1: amy.address, 2: 1 })).get(2)).toBe(1);
    const members = (await http(srv.url, 'GET', `/groups/${DAO}/members`, { token: tokens.ben })).json as { address: string; role: string }[];
    expect(members.find((m) => m.address === lower(amy))?.role).toBe('member');
    const mid = await say(b, 'spam 4');
    expect((await revoke(a, mid)).body.get(1)).toBe('FORBIDDEN');
    expect((await o.ok(14, { 0: DAO, 1: amy.address, 2: 2 })).get(2)).toBe(2);
    expect(((await http(srv.url, 'GET', `/groups/${DAO}`, { token: tokens.ben })).json as { admins: string[] }).admins).toEqual([lower(amy)]);
    expect((await revoke(a, mid)).cmd).toBe(3);
  });
});

describe('a membership change on the chain takes effect on /im at the next poll, not after the cache TTL', () => {
  let world: World;
  let relations: ChainRelations;
  let srv: TestServer;
  afterAll(async () => {
    await srv?.close();
    await relations?.close();
    await world?.chain.close();
  });

  it('a removed member is refused on /im as soon as the reader has seen the burn', async () => {
    world = await startWorld();
    const [ow, mw] = world.wallets as [Wallet, Wallet];
    const dao = (await world.actions.createDao(ow, 'Cache Group')).toLowerCase();
    await world.actions.addMembers(ow, dao, [mw.address]);
    relations = reader(world).start();
    srv = await startServer({ requireName: false, gatewayCacheMs: 30_000 }, { relations });
    const member = makeIdentity({ wallet: mw });
    const c = await ImClient.open(imUrl(srv.wsUrl), await login(srv.url, member));
    try {
      await c.ok(3, { 1: dao, 2: 1, 7: { 0: 'hello' } }); // the MEMBER decision is cached
      await world.actions.remove(ow, dao, mw.address);
      await relations.refresh();
      expect(await c.err(3, { 1: dao, 2: 1, 7: { 0: 'still here?' } })).toBe('NOT_MEMBER');
      expect(await c.err(7, { 0: dao })).toBe('NOT_MEMBER');
    } finally {
      c.close();
    }
  }, 60_000);
});
