import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChainRelations } from '../../src/roles/relations/chain/chain-relations.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';
import { FaultSwitch, reader, startWorld, type World } from '../relations/world.js';

/** Group chats against the real contracts on the in-process chain (no stubs). */
describe('groups from the chain', () => {
  let world: World;
  let relations: ChainRelations;
  let srv: TestServer;
  let dao: string;
  const ids: Record<'owner' | 'bob' | 'carol' | 'outsider' | 'nameless', Identity> = {} as never;
  const tokens: Record<string, string> = {};
  const clients: WsClient[] = [];

  beforeAll(async () => {
    world = await startWorld();
    const [ow, bw, cw, xw, nw] = world.wallets as [Wallet, Wallet, Wallet, Wallet, Wallet];
    ids.owner = makeIdentity({ wallet: ow });
    ids.bob = makeIdentity({ wallet: bw });
    ids.carol = makeIdentity({ wallet: cw });
    ids.outsider = makeIdentity({ wallet: xw });
    ids.nameless = makeIdentity({ wallet: nw });
    for (const [label, w] of [['owner', ow], ['bob', bw], ['carol', cw], ['outsider', xw]] as const) {
      await world.actions.registerName(w, `${label}g`, `https://example.invalid/${label}.png`);
    }
    dao = (await world.actions.createDao(ow, 'Test Group', { uri: 'https://example.invalid/group.png' })).toLowerCase();
    await world.actions.addMembers(ow, dao, [bw.address, cw.address]);
    relations = reader(world).start();
    srv = await startServer({ requireName: true }, { relations });
    for (const k of Object.keys(ids) as (keyof typeof ids)[]) tokens[k] = await login(srv.url, ids[k]);
  }, 120_000);
  afterAll(async () => {
    for (const c of clients) c.close();
    await srv?.close();
    await relations?.close();
    await world?.chain.close();
  });
  const send = (m: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body: m });
  const open = async (who: string): Promise<WsClient> => {
    const c = await WsClient.open(srv.wsUrl, tokens[who]);
    clients.push(c);
    return c;
  };

  it('fans a member\'s group message out to every connected device of every member', async () => {
    const bobA = await open('bob');
    const bobB = await open('bob');
    const carol = await open('carol');
    const outsider = await open('outsider');
    const m = signedMessage(ids.carol, { receiver: dao, kind: 1 });
    const res = await send(m);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ chatId: dao, seq: 1 });
    for (const c of [bobA, bobB, carol]) {
      expect(await c.next((f) => f['type'] === 'message')).toMatchObject({ chatId: dao, message: { id: m.id, kind: 1 } });
    }
    const marker = signedMessage(ids.owner, { receiver: ids.outsider.address });
    await send(marker);
    await outsider.next((f) => f['type'] === 'message');
    expect(outsider.all.some((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === m.id)).toBe(false);
  });

  it('refuses a non-member, a non-owner announcement, a receiver that is not a DAO and a sender without a name', async () => {
    const cases: [Identity, string, 0 | 1 | 2 | 3, number, string][] = [
      [ids.outsider, dao, 1, 403, 'NOT_MEMBER'],
      [ids.outsider, dao, 2, 403, 'NOT_MEMBER'],
      [ids.bob, dao, 3, 403, 'NOT_OWNER'],
      [ids.bob, ids.carol.address, 1, 400, 'NOT_A_GROUP'],
      [ids.nameless, ids.bob.address, 0, 403, 'NAME_REQUIRED'],
    ];
    for (const [from, to, kind, status, code] of cases) {
      const m = signedMessage(from, { receiver: to, kind });
      const res = await send(m);
      expect(res.status, code).toBe(status);
      expect(res.json).toMatchObject({ error: { code } });
      expect(await srv.app.store.getEventById(m.id)).toBeNull();
    }
  });

  it('accepts announcements from the owner only, and direct messages between named users', async () => {
    const bob = await open('bob');
    const a = signedMessage(ids.owner, { receiver: dao, kind: 3, type: 'ANNOUNCEMENT' });
    expect((await send(a)).status).toBe(200);
    expect(await bob.next((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === a.id)).toMatchObject({ chatId: dao });
    expect((await send(signedMessage(ids.bob, { receiver: ids.carol.address }))).status).toBe(200);
  });

  it('lets members read the group and lists it with the DAO name and avatar; outsiders are refused', async () => {
    const list = await http(srv.url, 'GET', `/message/list?chatId=${dao}`, { token: tokens['bob'] });
    expect(list.status).toBe(200);
    expect((list.json as { receiver: string }[]).every((m) => m.receiver.toLowerCase() === dao)).toBe(true);
    const denied = await http(srv.url, 'GET', `/message/list?chatId=${dao}`, { token: tokens['outsider'] });
    expect(denied.status).toBe(403);
    expect(denied.json).toMatchObject({ error: { code: 'NOT_MEMBER' } });
    const chats = await http(srv.url, 'GET', '/chats/list', { token: tokens['carol'] });
    const group = (chats.json as { id: string }[]).find((c) => c.id === dao);
    expect(group).toMatchObject({ name: 'Test Group', avatar: 'https://example.invalid/group.png', channelType: 'GROUP' });
    const direct = (chats.json as { id: string }[]).find((c) => c.id === ids.bob.address.toLowerCase());
    expect(direct).toMatchObject({ name: 'bobg.rel', avatar: 'https://example.invalid/bob.png', channelType: 'P2P' });
    expect(Number((await http(srv.url, 'GET', `/message/unreadCount?chatId=${dao}`, { token: tokens['bob'] })).text)).toBeGreaterThan(0);
  });

  it('stops pushing to a removed member after the next refresh and refuses their reads and posts', async () => {
    const carol = await open('carol');
    const [ow] = world.wallets as [Wallet];
    await world.actions.remove(ow, dao, ids.carol.address);
    await relations.refresh();
    const m = signedMessage(ids.bob, { receiver: dao, kind: 1 });
    await send(m);
    const marker = signedMessage(ids.bob, { receiver: ids.carol.address });
    await send(marker);
    await carol.next((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === marker.id);
    expect(carol.all.some((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === m.id)).toBe(false);
    expect((await send(signedMessage(ids.carol, { receiver: dao, kind: 1 }))).json).toMatchObject({ error: { code: 'NOT_MEMBER' } });
    expect((await http(srv.url, 'GET', `/message/list?chatId=${dao}`, { token: tokens['carol'] })).status).toBe(403);
    const chats = (await http(srv.url, 'GET', '/chats/list', { token: tokens['carol'] })).json as { id: string }[];
    expect(chats.some((c) => c.id === dao)).toBe(false);
  });

  it('adds a member who joins and lets them receive', async () => {
    const [, , , xw] = world.wallets as [Wallet, Wallet, Wallet, Wallet];
    await world.actions.setFreeJoin(world.wallets[0] as Wallet, dao, true);
    await world.actions.join(xw, dao);
    await relations.refresh();
    const outsider = await open('outsider');
    const m = signedMessage(ids.bob, { receiver: dao, kind: 2 });
    await send(m);
    expect(await outsider.next((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === m.id)).toMatchObject({ chatId: dao });
  });

  it('hides a group message for the hider only', async () => {
    const m = signedMessage(ids.owner, { receiver: dao, kind: 1 });
    await send(m);
    const hide = signedMessage(ids.bob, { receiver: dao, kind: 4, tags: [['quoteId', m.id]] });
    expect((await send(hide)).status).toBe(200);
    const forBob = (await http(srv.url, 'GET', `/message/list?chatId=${dao}&limit=200`, { token: tokens['bob'] })).json as { id: string }[];
    expect(forBob.some((x) => x.id === m.id)).toBe(false);
    const forOwner = (await http(srv.url, 'GET', `/message/list?chatId=${dao}&limit=200`, { token: tokens['owner'] })).json as { id: string }[];
    expect(forOwner.some((x) => x.id === m.id)).toBe(true);
    expect(forOwner.some((x) => x.id === hide.id)).toBe(false);
  });

  it('serves names, follows, friends, members and roles; only the owner sets admins', async () => {
    const [ow, bw] = world.wallets as [Wallet, Wallet];
    await world.actions.follow(ow, bw.address);
    await world.actions.follow(bw, ow.address);
    await relations.refresh();
    const t = tokens['bob'];
    expect((await http(srv.url, 'GET', `/users/${ids.bob.address}`, { token: t })).json).toMatchObject({ name: 'bobg.rel', hasName: true });
    const friends = (await http(srv.url, 'GET', `/users/${ids.bob.address}/friends`, { token: t })).json as { address: string }[];
    expect(friends.map((f) => f.address)).toContain(ids.owner.address.toLowerCase());
    const followers = (await http(srv.url, 'GET', `/users/${ids.owner.address}/followers`, { token: t })).json as { address: string }[];
    expect(followers.map((f) => f.address)).toContain(ids.bob.address.toLowerCase());
    expect((await http(srv.url, 'PUT', `/groups/${dao}/admins/${ids.outsider.address}`, { token: t })).json).toMatchObject({ error: { code: 'NOT_OWNER' } });
    expect((await http(srv.url, 'PUT', `/groups/${dao}/admins/${ids.bob.address}`, { token: tokens['owner'] })).status).toBe(204);
    const members = (await http(srv.url, 'GET', `/groups/${dao}/members`, { token: t })).json as { address: string; role: string }[];
    expect(members.find((m) => m.address === ids.bob.address.toLowerCase())?.role).toBe('admin');
    expect(members.find((m) => m.address === ids.owner.address.toLowerCase())?.role).toBe('owner');
    expect((await http(srv.url, 'GET', `/groups/${dao}`, { token: t })).json).toMatchObject({ name: 'Test Group', admins: [ids.bob.address.toLowerCase()] });
    expect((await http(srv.url, 'GET', `/groups/${ids.bob.address}`, { token: t })).json).toMatchObject({ error: { code: 'NOT_A_GROUP' } });
  });
});

describe('groups when the chain cannot be read', () => {
  it('answers 503 RELATIONS_UNAVAILABLE within the RPC timeout, stores nothing, and recovers', async () => {
    const world = await startWorld();
    const source = new FaultSwitch(world.chain);
    const relations = reader(world, { source, rpcTimeoutMs: 300, maxStaleMs: 0 });
    const srv = await startServer({ requireName: true }, { relations });
    try {
      const [ow, bw] = world.wallets as [Wallet, Wallet];
      await world.actions.registerName(ow, 'downowner');
      const dao = (await world.actions.createDao(ow, 'Down Group')).toLowerCase();
      await world.actions.addMembers(ow, dao, [bw.address]);
      const owner = makeIdentity({ wallet: ow });
      source.mode = 'hang';
      const m = signedMessage(owner, { receiver: dao, kind: 1 });
      const res = await http(srv.url, 'POST', '/message/send', { body: m });
      expect(res.status).toBe(503);
      expect(res.json).toMatchObject({ error: { code: 'RELATIONS_UNAVAILABLE' } });
      expect(await srv.app.store.getEventById(m.id)).toBeNull();
      source.release();
      const again = await http(srv.url, 'POST', '/message/send', { body: m });
      expect(again.status).toBe(200);
    } finally {
      source.release();
      await srv.close();
      await relations.close();
      await world.chain.close();
    }
  });
});
