import { SiweMessage } from 'siwe';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { StaticRelations } from '../support/relations.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

/**
 * The authorization matrix: every REST endpoint and both WebSocket faces with no token, a garbage token,
 * an expired one, a revoked (logged out) one and another user's; every group operation as non-member,
 * member, admin and owner. Each cell names the exact status and catalogue code.
 */
const DAO = '0x' + 'ab'.repeat(20);
const lower = (i: Identity): string => i.address.toLowerCase();
type Role = 'none' | 'member' | 'admin' | 'owner';
const ROLES: Role[] = ['none', 'member', 'admin', 'owner'];

describe('authorization matrix', () => {
  let srv: TestServer;
  const who = {} as Record<Role | 'target' | 'peer', Identity>;
  const token = {} as Record<Role | 'target' | 'peer' | 'expired' | 'revoked', string>;
  let groupMessageId: string;
  let dmMessageId: string;

  beforeAll(async () => {
    for (const k of ['none', 'member', 'admin', 'owner', 'target', 'peer'] as const) who[k] = makeIdentity();
    const relations = new StaticRelations(new Map([[DAO, {
      info: { address: DAO, name: 'Matrix DAO', avatar: '', owner: lower(who.owner), freeJoin: false },
      members: new Set([lower(who.owner), lower(who.admin), lower(who.member), lower(who.target)]),
    }]]));
    srv = await startServer({ requireName: false, gatewayCacheMs: 0 }, { relations });
    for (const k of ['none', 'member', 'admin', 'owner', 'target', 'peer'] as const) token[k] = await login(srv.url, who[k]);
    await srv.app.store.setAdmin(DAO, lower(who.admin), true);
    // revoked: logged out
    const revoked = await login(srv.url, who.peer);
    expect((await http(srv.url, 'POST', '/auth/logout', { token: revoked })).status).toBe(204);
    token.revoked = revoked;
    // expired: a sign-in whose Expiration Time is 1.5 s away, then waited out
    const { json } = await http(srv.url, 'GET', '/auth/nonce');
    const host = new URL(srv.url).host;
    const message = new SiweMessage({
      domain: host, address: who.peer.address, uri: srv.url, version: '1', chainId: 1, nonce: (json as { nonce: string }).nonce,
      issuedAt: new Date().toISOString(), expirationTime: new Date(Date.now() + 1500).toISOString(),
    }).prepareMessage();
    const res = await http(srv.url, 'POST', '/auth/login', { body: { message, signature: who.peer.wallet.signMessageSync(message) } });
    token.expired = (res.json as { token: string }).token;
    for (let i = 0; i < 200 && (await http(srv.url, 'GET', '/chats/list', { token: token.expired })).status !== 401; i++) await new Promise((r) => setTimeout(r, 100));
    const g = signedMessage(who.member, { receiver: DAO, kind: 1 });
    expect((await http(srv.url, 'POST', '/message/send', { body: g })).status).toBe(200);
    groupMessageId = g.id;
    const d = signedMessage(who.member, { receiver: who.target.address });
    expect((await http(srv.url, 'POST', '/message/send', { body: d })).status).toBe(200);
    dmMessageId = d.id;
  }, 60_000);
  afterAll(async () => { await srv?.close(); });

  // ---------------------------------------------------------------- REST, token kinds
  const AUTHED: [string, string | (() => string)][] = [
    ['POST', '/auth/logout'],
    ['GET', '/message/list'],
    ['POST', () => `/message/read?messageId=${dmMessageId}`],
    ['GET', '/message/unreadCount'],
    ['GET', '/chats/list'],
    ['POST', () => `/chats/mute?chatId=${who.target.address}`],
    ['POST', () => `/chats/unmute?chatId=${who.target.address}`],
    ['POST', () => `/chats/pin?chatId=${who.target.address}`],
    ['POST', () => `/chats/unpin?chatId=${who.target.address}`],
    ['GET', () => `/users/${who.member.address}`],
    ['GET', () => `/users/${who.member.address}/friends`],
    ['GET', () => `/users/${who.member.address}/following`],
    ['GET', () => `/users/${who.member.address}/followers`],
    ['GET', `/groups/${DAO}`],
    ['GET', `/groups/${DAO}/members`],
    ['PUT', () => `/groups/${DAO}/admins/${who.target.address}`],
    ['DELETE', () => `/groups/${DAO}/admins/${who.target.address}`],
  ];
  const BAD_TOKENS: [string, () => string | undefined, number, string][] = [
    ['no token', () => undefined, 401, 'UNAUTHENTICATED'],
    ['a garbage token', () => 'garbage-not-a-token', 401, 'UNAUTHENTICATED'],
    ['an expired token', () => token.expired, 401, 'TOKEN_EXPIRED'],
    ['a revoked (logged out) token', () => token.revoked, 401, 'TOKEN_EXPIRED'],
  ];
  for (const [method, p] of AUTHED) {
    for (const [label, t, status, code] of BAD_TOKENS) {
      const shown = typeof p === 'string' ? p : p.toString().replace(/^\(\) => `|`$/g, '').replace(/\$\{[^}]+\}/g, ':x');
      it(`${method} ${shown} with ${label}: ${status} ${code}`, async () => {
        const tk = t();
        const res = await http(srv.url, method, typeof p === 'string' ? p : p(), tk ? { token: tk } : {});
        expect(res.status).toBe(status);
        expect(res.json).toMatchObject({ error: { code } });
      });
    }
  }

  it('endpoints that need no token answer the same with any token', async () => {
    for (const tk of [undefined, 'garbage-not-a-token', token.expired, token.revoked]) {
      const opts = tk ? { token: tk } : {};
      expect((await http(srv.url, 'GET', '/health', opts)).status).toBe(200);
      expect((await http(srv.url, 'GET', '/auth/nonce', opts)).status).toBe(200);
      expect((await http(srv.url, 'GET', '/metrics', opts)).status).toBe(200);
      // the send path is authenticated by the message's signatures, never by a token
      expect((await http(srv.url, 'POST', '/message/send', { ...opts, body: signedMessage(who.target, { receiver: who.member.address }) })).status).toBe(200);
      // a file URL is authorised by its signature only
      const file = await http(srv.url, 'GET', '/files/0123456789abcdef0123456789abcdef?e=1&s=00', opts);
      expect(file.status).toBe(403);
      expect(file.json).toMatchObject({ error: { code: 'BAD_SIGNATURE_URL' } });
    }
  });

  // ---------------------------------------------------------------- REST, another user's token
  it('another user\'s token reaches only that user\'s own view', async () => {
    // `peer` is no participant of the member<->target chat
    const read = await http(srv.url, 'POST', `/message/read?messageId=${dmMessageId}`, { token: token.peer });
    expect(read.status).toBe(404);
    expect(read.json).toMatchObject({ error: { code: 'MESSAGE_NOT_FOUND' } });
    const dm = `dm:${[lower(who.member), lower(who.target)].sort().join(':')}`;
    const list = await http(srv.url, 'GET', `/message/list?chatId=${dm}`, { token: token.peer });
    expect(list.status).toBe(403);
    expect(list.json).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const mute = await http(srv.url, 'POST', `/chats/mute?chatId=${dm}`, { token: token.peer });
    expect(mute.status).toBe(403);
    expect(mute.json).toMatchObject({ error: { code: 'FORBIDDEN' } });
    const chats = (await http(srv.url, 'GET', '/chats/list', { token: token.peer })).json as { chatId: string }[];
    expect(chats.map((c) => c.chatId)).not.toContain(lower(who.member));
  });

  // ---------------------------------------------------------------- REST, group roles
  type Cell = [number, string | null];
  const ok = (status = 200): Cell => [status, null];
  const GROUP_REST: [string, (r: Role) => Promise<{ status: number; json: unknown }>, Record<Role, Cell>][] = [
    ['GET /groups/:dao', (r) => http(srv.url, 'GET', `/groups/${DAO}`, { token: token[r] }), { none: ok(), member: ok(), admin: ok(), owner: ok() }],
    ['GET /groups/:dao/members', (r) => http(srv.url, 'GET', `/groups/${DAO}/members`, { token: token[r] }),
      { none: [403, 'NOT_MEMBER'], member: ok(), admin: ok(), owner: ok() }],
    ['PUT /groups/:dao/admins/:user', (r) => http(srv.url, 'PUT', `/groups/${DAO}/admins/${who.target.address}`, { token: token[r] }),
      { none: [403, 'NOT_OWNER'], member: [403, 'NOT_OWNER'], admin: [403, 'NOT_OWNER'], owner: ok(204) }],
    ['DELETE /groups/:dao/admins/:user', (r) => http(srv.url, 'DELETE', `/groups/${DAO}/admins/${who.target.address}`, { token: token[r] }),
      { none: [403, 'NOT_OWNER'], member: [403, 'NOT_OWNER'], admin: [403, 'NOT_OWNER'], owner: ok(204) }],
    ['GET /message/list?chatId=:dao', (r) => http(srv.url, 'GET', `/message/list?chatId=${DAO}`, { token: token[r] }),
      { none: [403, 'NOT_MEMBER'], member: ok(), admin: ok(), owner: ok() }],
    ['GET /message/unreadCount?chatId=:dao', (r) => http(srv.url, 'GET', `/message/unreadCount?chatId=${DAO}`, { token: token[r] }),
      { none: [403, 'NOT_MEMBER'], member: ok(), admin: ok(), owner: ok() }],
    ['POST /message/read (a group message)', (r) => http(srv.url, 'POST', `/message/read?messageId=${groupMessageId}`, { token: token[r] }),
      { none: [404, 'MESSAGE_NOT_FOUND'], member: ok(), admin: ok(), owner: ok() }],
    ['POST /chats/mute?chatId=:dao', (r) => http(srv.url, 'POST', `/chats/mute?chatId=${DAO}`, { token: token[r] }),
      { none: [403, 'NOT_MEMBER'], member: ok(204), admin: ok(204), owner: ok(204) }],
    ['POST /chats/pin?chatId=:dao', (r) => http(srv.url, 'POST', `/chats/pin?chatId=${DAO}`, { token: token[r] }),
      { none: [403, 'NOT_MEMBER'], member: ok(204), admin: ok(204), owner: ok(204) }],
    ['POST /message/send kind 1 (group)', (r) => http(srv.url, 'POST', '/message/send', { body: signedMessage(who[r], { receiver: DAO, kind: 1 }) }),
      { none: [403, 'NOT_MEMBER'], member: ok(), admin: ok(), owner: ok() }],
    ['POST /message/send kind 3 (announcement)', (r) => http(srv.url, 'POST', '/message/send', { body: signedMessage(who[r], { receiver: DAO, kind: 3, type: 'ANNOUNCEMENT' }) }),
      { none: [403, 'NOT_OWNER'], member: [403, 'NOT_OWNER'], admin: [403, 'NOT_OWNER'], owner: ok() }],
  ];
  for (const [name, call, cells] of GROUP_REST) {
    for (const role of ROLES) {
      const [status, code] = cells[role];
      it(`${name} as ${role}: ${status}${code ? ` ${code}` : ''}`, async () => {
        const res = await call(role);
        expect(res.status).toBe(status);
        if (code) expect(res.json).toMatchObject({ error: { code } });
      });
    }
  }

  // ---------------------------------------------------------------- WebSocket faces, token kinds
  const WS_BAD: [string, () => string | undefined, string, number][] = [
    ['no token', () => undefined, 'UNAUTHENTICATED', 4001],
    ['a garbage token', () => 'garbage-not-a-token', 'UNAUTHENTICATED', 4001],
    ['an expired token', () => token.expired, 'TOKEN_EXPIRED', 4002],
    ['a revoked (logged out) token', () => token.revoked, 'TOKEN_EXPIRED', 4002],
  ];
  for (const [label, t, code, close] of WS_BAD) {
    it(`/ws auth frame with ${label}: error ${code}, close ${close}`, async () => {
      const c = new WsClient(new WebSocket(srv.wsUrl));
      await new Promise((r) => c.ws.once('open', r));
      const tk = t();
      c.send(tk === undefined ? { type: 'auth' } : { type: 'auth', token: tk });
      expect(await c.next((f) => f['type'] === 'error')).toMatchObject({ error: { code } });
      expect(await c.closed).toBe(close);
    });
    it(`/im AUTH with ${label}: error ${code}, close ${close}`, async () => {
      const c = new ImClient(new WebSocket(imUrl(srv.wsUrl)));
      await new Promise((r) => c.ws.once('open', r));
      const tk = t();
      const answer = await c.request(1, tk === undefined ? {} : { 0: tk });
      expect(answer.cmd).toBe(0);
      expect(answer.body.get(1)).toBe(tk === undefined ? 'INVALID_FIELD' : code);
      if (tk !== undefined) expect(await c.closed).toBe(close);
      else c.close();
    });
  }
  it('/im refuses every command but ping before auth with UNAUTHENTICATED', async () => {
    const c = await ImClient.open(imUrl(srv.wsUrl));
    try {
      for (const cmd of [3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]) expect(await c.err(cmd, { 0: DAO })).toBe('UNAUTHENTICATED');
    } finally {
      c.close();
    }
  });
  it('/ws refuses a frame other than auth first with UNAUTHENTICATED and close 4001', async () => {
    const c = new WsClient(new WebSocket(srv.wsUrl));
    await new Promise((r) => c.ws.once('open', r));
    c.send({ type: 'resume', cursors: {} });
    expect(await c.next((f) => f['type'] === 'error')).toMatchObject({ error: { code: 'UNAUTHENTICATED' } });
    expect(await c.closed).toBe(4001);
  });

  // ---------------------------------------------------------------- WebSocket faces, group roles
  const im: Partial<Record<Role, ImClient>> = {};
  const imAs = async (r: Role): Promise<ImClient> => (im[r] ??= await ImClient.open(imUrl(srv.wsUrl), token[r]));
  let targetIm: ImClient | undefined;
  afterAll(() => { for (const c of [...Object.values(im), targetIm]) c?.close(); });
  const say = async (c: ImClient): Promise<number> => (await c.ok(3, { 1: DAO, 2: 1, 7: { 0: 'x' } })).get(0) as number;
  const IM_GROUP: [string, (c: ImClient, r: Role) => Promise<M | { cmd: number; body: M }>, Record<Role, string | null>][] = [
    ['SEND text', (c) => c.request(3, { 1: DAO, 2: 1, 7: { 0: 'hello' } }), { none: 'NOT_MEMBER', member: null, admin: null, owner: null }],
    ['QUERY', (c) => c.request(7, { 0: DAO }), { none: 'NOT_MEMBER', member: null, admin: null, owner: null }],
    ['MEMBERS', (c) => c.request(12, { 0: DAO }), { none: 'NOT_MEMBER', member: null, admin: null, owner: null }],
    ['ROLES', (c) => c.request(13, { 0: DAO }), { none: 'NOT_MEMBER', member: null, admin: null, owner: null }],
    ['ACK', (c) => c.request(5, { 0: DAO, 1: 1 }), { none: 'NOT_MEMBER', member: null, admin: null, owner: null }],
    ['SET_ROLE (target to member)', (c) => c.request(14, { 0: DAO, 1: who.target.address, 2: 1 }), { none: 'NOT_MEMBER', member: 'NOT_OWNER', admin: 'NOT_OWNER', owner: null }],
    ['REVOKE another\'s message for everyone', async (c) => {
      targetIm ??= await ImClient.open(imUrl(srv.wsUrl), token.target);
      const mid = await say(targetIm);
      return c.request(3, { 1: DAO, 2: 5, 6: [[6, mid]], 7: { 0: 1 } });
    }, { none: 'NOT_MEMBER', member: 'FORBIDDEN', admin: null, owner: null }],
    ['RESUME', (c) => c.request(6, { 0: [[DAO, 0]] }), { none: 'NOT_MEMBER', member: null, admin: null, owner: null }],
  ];
  for (const [name, call, cells] of IM_GROUP) {
    for (const role of ROLES) {
      const code = cells[role];
      it(`/im ${name} as ${role}: ${code ?? 'answered'}`, async () => {
        const r = (await call(await imAs(role), role)) as { cmd: number; body: M };
        if (code) {
          expect(r.cmd).toBe(0);
          expect(r.body.get(1)).toBe(code);
        } else expect(r.cmd).not.toBe(0);
      });
    }
  }
  for (const role of ROLES) {
    const code = role === 'none' ? 'NOT_MEMBER' : null;
    it(`/ws resume of the group as ${role}: ${code ?? 'resumed'}`, async () => {
      const c = await WsClient.open(srv.wsUrl, token[role]);
      try {
        c.send({ type: 'resume', ref: 'g', cursors: { [DAO]: 0 } });
        const f = await c.next((x) => x['ref'] === 'g' && (x['type'] === 'error' || x['type'] === 'resumed'));
        if (code) {
          expect(f).toMatchObject({ type: 'error', error: { code } });
          // a refused resume is one error: no `resumed` frame before or after it
          c.send({ type: 'ping', ref: 'p' });
          await c.next((x) => x['type'] === 'pong');
          expect(c.all.filter((x) => x['type'] === 'resumed')).toEqual([]);
        } else expect(f['type']).toBe('resumed');
      } finally {
        c.close();
      }
    });
  }
});
