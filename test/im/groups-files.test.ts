import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, type Identity } from '../support/messages.js';
import { StaticRelations } from '../support/relations.js';
import { login, startServer, type TestServer } from '../support/server.js';

const DAO = '0x' + 'da'.repeat(20);

describe('/im groups, roles and files', () => {
  let srv: TestServer;
  let owner: Identity;
  let amy: Identity;
  let ben: Identity;
  let out: Identity;
  let o: ImClient;
  let a: ImClient;
  let b: ImClient;
  let x: ImClient;
  let relations: StaticRelations;
  beforeAll(async () => {
    [owner, amy, ben, out] = [makeIdentity(), makeIdentity(), makeIdentity(), makeIdentity()];
    const lower = (i: Identity): string => i.address.toLowerCase();
    relations = new StaticRelations(new Map([[DAO, {
      info: { address: DAO, name: 'DAO', avatar: '', owner: lower(owner), freeJoin: false },
      members: new Set([lower(owner), lower(amy), lower(ben)]),
    }]]), new Map([[lower(amy), [lower(ben)]]]));
    srv = await startServer({ requireName: false, gatewayCacheMs: 0 }, { relations });
    const url = imUrl(srv.wsUrl);
    o = await ImClient.open(url, await login(srv.url, owner));
    a = await ImClient.open(url, await login(srv.url, amy));
    b = await ImClient.open(url, await login(srv.url, ben));
    x = await ImClient.open(url, await login(srv.url, out));
  });
  afterAll(async () => {
    for (const c of [o, a, b, x]) c.close();
    await srv.close();
  });
  const say = (c: ImClient, t: string): Promise<M> => c.ok(3, { 1: DAO, 2: 1, 7: { 0: t } });

  it('fans a group message out to the online members and the owner', async () => {
    const mid = (await say(a, 'hi group')).get(0) as number;
    expect((await b.push((e) => e.get(1) === DAO && e.get(3) === mid)).get(7)).toEqual(new Map([[0, 'hi group']]));
    await o.push((e) => e.get(1) === DAO && e.get(3) === mid);
  });

  it('refuses non-members with NOT_MEMBER and stores nothing', async () => {
    const last = await srv.app.store.lastSeq(DAO);
    expect(await x.err(3, { 1: DAO, 2: 1, 7: { 0: 'let me in' } })).toBe('NOT_MEMBER');
    expect(await x.err(7, { 0: DAO })).toBe('NOT_MEMBER');
    expect(await srv.app.store.lastSeq(DAO)).toBe(last);
  });

  it('lets only the owner set roles; an admin may then revoke others\' messages, a member may not', async () => {
    const mid = (await say(b, 'spam')).get(0) as number;
    expect(await a.err(3, { 1: DAO, 2: 5, 6: [[6, mid]], 7: { 0: 1 } })).toBe('FORBIDDEN');
    expect(await a.err(14, { 0: DAO, 1: amy.address, 2: 2 })).toBe('NOT_OWNER');
    expect(await o.err(14, { 0: DAO, 1: out.address, 2: 2 })).toBe('NOT_MEMBER');
    expect((await o.ok(14, { 0: DAO, 1: amy.address, 2: 2 })).get(2)).toBe(2);
    const roles = await b.ok(13, { 0: DAO });
    expect(roles.get(0)).toBe(owner.address.toLowerCase());
    expect(roles.get(1)).toEqual([amy.address.toLowerCase()]);
    const rev = await a.ok(3, { 1: DAO, 2: 5, 6: [[6, mid]], 7: { 0: 1, 1: 'moderation' } });
    await b.push((e) => e.get(3) === rev.get(0));
    const [served] = (await b.ok(7, { 0: DAO, 1: mid, 2: mid })).get(0) as M[];
    expect(served?.get(5)).toBe(1);
    const own = (await say(a, 'owner can revoke this')).get(0) as number;
    await o.ok(3, { 1: DAO, 2: 5, 6: [[6, own]], 7: { 0: 1 } });
  });

  it('lists members with roles, groups with the caller\'s role, and friends', async () => {
    const members = await a.ok(12, { 0: DAO });
    expect(new Map(members.get(0) as [string, number][])).toEqual(new Map([
      [owner.address.toLowerCase(), 3], [amy.address.toLowerCase(), 2], [ben.address.toLowerCase(), 1],
    ]));
    const groups = await b.ok(11, { 0: [DAO] });
    expect((groups.get(0) as M[])[0]?.get(4)).toBe(1);
    expect((await a.ok(10)).get(0)).toEqual([ben.address.toLowerCase()]);
  });

  it('stops serving and pushing to a member removed on chain', async () => {
    relations.remove(DAO, ben.address.toLowerCase());
    expect(await b.err(7, { 0: DAO })).toBe('NOT_MEMBER');
    const mid = (await say(a, 'after ben left')).get(0) as number;
    await o.push((e) => e.get(1) === DAO && e.get(3) === mid);
    await b.request(2);
    expect(b.pushes.some((e) => e.get(1) === DAO && e.get(3) === mid)).toBe(false);
  });

  it('uploads a file with a signed URL, accepts kind 3 for it, and serves a signed download URL', async () => {
    const content = Buffer.from('file body '.repeat(100));
    const p = await a.ok(9, { 0: 'notes.txt', 1: content.length, 2: 'text/plain' });
    const uploadUrl = p.get(1) as string;
    const forged = uploadUrl.replace(/sig=[^&]+/, 'sig=AAAA');
    expect((await fetch(forged, { method: 'PUT', body: content })).status).toBe(403);
    expect((await fetch(uploadUrl, { method: 'PUT', body: content.subarray(0, 10) })).status).toBe(400);
    expect((await fetch(uploadUrl, { method: 'PUT', body: content, headers: { 'content-type': 'text/plain' } })).status).toBe(200);
    const sha = createHash('sha256').update(content).digest('hex');
    const sent = await a.ok(3, { 1: DAO, 2: 3, 7: { 0: p.get(0), 1: 'notes.txt', 2: content.length, 3: 'text/plain', 4: sha } });
    const ev = await o.push((e) => e.get(3) === sent.get(0));
    const data = ev.get(7) as M;
    expect(data.get(0)).toBe(p.get(0));
    const got = await fetch(data.get(5) as string);
    expect(Buffer.from(await got.arrayBuffer())).toEqual(content);
    expect((await fetch((data.get(5) as string).replace(/exp=\d+/, 'exp=1'))).status).toBe(403);
  });
});

describe('/im groups without a chain', () => {
  it('answers GROUPS_UNAVAILABLE and NOT_SUPPORTED for friends', async () => {
    const srv = await startServer();
    const c = await ImClient.open(imUrl(srv.wsUrl), await login(srv.url, makeIdentity()));
    expect(await c.err(3, { 1: DAO, 2: 1, 7: { 0: 'x' } })).toBe('GROUPS_UNAVAILABLE');
    expect(await c.err(11)).toBe('GROUPS_UNAVAILABLE');
    expect(await c.err(10)).toBe('NOT_SUPPORTED');
    c.close();
    await srv.close();
  });
});
