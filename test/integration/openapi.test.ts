import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { getBytes, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { archiveRoutes } from '../../src/archive/routes.js';
import { ERROR_CATALOGUE, isErrorCode } from '../../src/errors/catalogue.js';
import { createLogger } from '../../src/log/logger.js';
import type { ChainRelations } from '../../src/roles/relations/chain/chain-relations.js';
import { adminRoutes } from '../../src/gateway/http/admin.js';
import { buildRoutes } from '../../src/gateway/http/routes.js';
import { mlsRoutes } from '../../src/gateway/http/mls-routes.js';
import { createGroupInfoWithExternalPubAndRatchetTree, encode, mlsMessageEncoder, protocolVersions, wireformats } from 'ts-mls';
import { device, keyPackage, soloGroup, suite } from '../support/mls.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { OpenApiChecker, METHODS } from '../support/openapi.js';
import { login, siweText, startServer, type TestServer } from '../support/server.js';
import { reader, startWorld, type World } from '../relations/world.js';

/**
 * Every REST endpoint of the real server (chain, archive and embedded file store on) answers as
 * docs/openapi.yaml says: each answer's status, media type and body are checked against the document,
 * errors also against the catalogue's status. Then: every route the server serves is in the document.
 */
describe('REST answers match docs/openapi.yaml', () => {
  const checker = new OpenApiChecker();
  const OPERATOR = 'operator-token-for-the-openapi-test';
  let world: World;
  let relations: ChainRelations;
  let srv: TestServer;
  let bare: TestServer;
  let dao: string;
  const ids: Record<'owner' | 'alice' | 'bob' | 'outsider', Identity> = {} as never;
  const tokens: Record<string, string> = {};
  const im: ImClient[] = [];

  beforeAll(async () => {
    world = await startWorld();
    const [ow, aw, bw, xw] = world.wallets as [Wallet, Wallet, Wallet, Wallet];
    ids.owner = makeIdentity({ wallet: ow });
    ids.alice = makeIdentity({ wallet: aw });
    ids.bob = makeIdentity({ wallet: bw });
    ids.outsider = makeIdentity({ wallet: xw });
    await world.actions.registerName(aw, 'aliceoa', 'https://example.invalid/alice.png');
    await world.actions.follow(aw, bw.address);
    await world.actions.follow(bw, aw.address);
    dao = (await world.actions.createDao(ow, 'OpenAPI Group', { uri: 'https://example.invalid/g.png' })).toLowerCase();
    await world.actions.addMembers(ow, dao, [aw.address, bw.address]);
    relations = reader(world).start();
    // a size trigger of one byte cuts a bundle as soon as a message is pending, so /archive/head gets a head
    srv = await startServer({ operatorToken: OPERATOR, requireName: false, archiveEnabled: true, archiveSizeTriggerBytes: 1, archivePollMs: 200, archiveMineMs: 0, archiveConfirmations: 1 }, { relations });
    bare = await startServer({ filesStore: 's3', s3Endpoint: 'http://127.0.0.1:9', s3Bucket: 'none' });
    for (const k of Object.keys(ids) as (keyof typeof ids)[]) tokens[k] = await login(srv.url, ids[k]);
    tokens['bare'] = await login(bare.url, ids.alice);
  }, 180_000);
  afterAll(async () => {
    for (const c of im) c.close();
    await srv?.close();
    await bare?.close();
    await relations?.close();
    await world?.chain.close();
  });

  interface Call { token?: string; body?: unknown; raw?: string | Buffer; headers?: Record<string, string>; base?: string }
  /** One real request, checked against the document; answers the parsed JSON (or the text). */
  async function call(method: string, url: string, expectStatus: number, opts: Call = {}): Promise<unknown> {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (opts.token) headers['authorization'] = `Bearer ${opts.token}`;
    let body: string | Buffer | undefined = opts.raw;
    if (body === undefined && opts.body !== undefined) body = JSON.stringify(opts.body);
    if (body !== undefined && !headers['content-type']) headers['content-type'] = 'application/json';
    checker.request(method, url);
    const res = await fetch((opts.base ?? srv.url) + url, { method, headers, ...(body !== undefined ? { body } : {}) });
    const text = method === 'HEAD' ? '' : await res.text();
    checker.response(method, url, { status: res.status, contentType: res.headers.get('content-type'), text });
    expect(res.status, `${method} ${url}: ${text.slice(0, 300)}`).toBe(expectStatus);
    if (res.status < 300 && opts.body !== undefined) checker.request(method, url, opts.body); // the document accepts what the server accepted
    let json: unknown = text;
    try { json = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
    if (res.status >= 400) {
      const code = (json as { error: { code: string } }).error.code;
      expect(isErrorCode(code) && ERROR_CATALOGUE[code].http, `${code} status`).toBe(res.status);
    }
    return json;
  }
  const err = async (method: string, url: string, status: number, code: string, opts: Call = {}): Promise<void> => {
    expect(await call(method, url, status, opts)).toMatchObject({ error: { code } });
  };
  const openIm = async (who: keyof typeof ids): Promise<ImClient> => {
    const c = await ImClient.open(imUrl(srv.wsUrl), tokens[who]);
    im.push(c);
    return c;
  };
  const dmCid = (a: string, b: string): string => `dm:${[a.toLowerCase(), b.toLowerCase()].sort().join(':')}`;

  it('meta: /health, /ready, /metrics, /openapi.json, and the archive head before any message', async () => {
    await call('GET', '/health', 200);
    expect(await call('GET', '/ready', 200)).toMatchObject({ ready: true, store: { ok: true }, bus: { ok: true, kind: 'local' } });
    expect(String(await call('GET', '/metrics', 200))).toMatch(/^# HELP /m);
    const served = await call('GET', '/openapi.json', 200);
    expect(served).toEqual(checker.doc);
    // nothing sent yet: no bundle, no head
    expect(await call('GET', '/archive/head', 200)).toEqual({ head: null });
  });

  it('auth: nonce, login and its refusals, logout', async () => {
    const { nonce } = await call('GET', '/auth/nonce', 200) as { nonce: string };
    const text = siweText(srv.url, ids.alice.address, nonce);
    await err('POST', '/auth/login', 401, 'INVALID_SIGNATURE', { body: { message: text, signature: ids.bob.wallet.signMessageSync(text) } });
    await err('POST', '/auth/login', 401, 'SIWE_INVALID', { body: { message: 'hello', signature: '0x00' } });
    await err('POST', '/auth/login', 400, 'INVALID_FIELD', { body: { message: text } });
    await err('POST', '/auth/login', 400, 'UNKNOWN_FIELD', { body: { message: text, signature: '0x', extra: 1 } });
    await err('POST', '/auth/login', 400, 'BAD_JSON', { raw: '{"message":' });
    await err('POST', '/auth/login', 415, 'UNSUPPORTED_MEDIA_TYPE', { raw: 'x', headers: { 'content-type': 'text/plain' } });
    await err('POST', '/auth/login', 413, 'BODY_TOO_LARGE', { raw: 'x'.repeat(300_000) });
    const ok = await call('POST', '/auth/login', 200, { body: { message: text, signature: ids.alice.wallet.signMessageSync(text) } }) as { token: string };
    await err('POST', '/auth/login', 401, 'NONCE_INVALID', { body: { message: text, signature: ids.alice.wallet.signMessageSync(text) } });
    await err('POST', '/auth/logout', 401, 'UNAUTHENTICATED');
    await call('POST', '/auth/logout', 204, { token: ok.token });
    await err('POST', '/auth/logout', 401, 'TOKEN_EXPIRED', { token: ok.token });
  });

  it('messages: send and its refusals', async () => {
    const dm = signedMessage(ids.alice, { receiver: ids.bob.address, tags: [['mentionedUsers', ids.bob.address]] });
    const first = await call('POST', '/message/send', 200, { body: dm });
    expect(await call('POST', '/message/send', 200, { body: dm })).toEqual(first);
    await call('POST', '/message/send', 200, { body: signedMessage(ids.bob, { receiver: dao, kind: 1 }) });
    await call('POST', '/message/send', 200, { body: signedMessage(ids.owner, { receiver: dao, kind: 3, type: 'ANNOUNCEMENT' }) });
    await err('POST', '/message/send', 400, 'ID_MISMATCH', { body: { ...signedMessage(ids.alice, { receiver: ids.bob.address }), payload: 'changed' } });
    await err('POST', '/message/send', 400, 'UNKNOWN_FIELD', { body: { ...dm, seq: 1 } });
    await err('POST', '/message/send', 400, 'INVALID_FIELD', { body: { ...dm, kind: 9 } });
    await err('POST', '/message/send', 400, 'TIMESTAMP_SKEW', { body: signedMessage(ids.alice, { receiver: ids.bob.address, timestamp: Date.now() + 600_000 }) });
    await err('POST', '/message/send', 400, 'NOT_A_GROUP', { body: signedMessage(ids.alice, { receiver: ids.bob.address, kind: 1 }) });
    const fresh = signedMessage(ids.alice, { receiver: ids.bob.address });
    await err('POST', '/message/send', 401, 'INVALID_SIGNATURE', { body: { ...fresh, sig: ids.bob.session.signMessageSync(getBytes(fresh.id)) } });
    await err('POST', '/message/send', 401, 'DELEGATION_EXPIRED', { body: signedMessage(ids.alice, { receiver: ids.bob.address, timestamp: Date.now() - 120_000 }) });
    await err('POST', '/message/send', 403, 'NOT_MEMBER', { body: signedMessage(ids.outsider, { receiver: dao, kind: 1 }) });
    await err('POST', '/message/send', 403, 'NOT_OWNER', { body: signedMessage(ids.bob, { receiver: dao, kind: 3 }) });
    await err('POST', '/message/send', 409, 'ID_CONFLICT', { body: { ...dm, encryptedSymmetricKey: '0x99' } });
    await err('POST', '/message/send', 413, 'BODY_TOO_LARGE', { raw: 'x'.repeat(300_000) });
    await err('POST', '/message/send', 415, 'UNSUPPORTED_MEDIA_TYPE', { raw: '{}', headers: { 'content-type': 'text/plain' } });
    await err('POST', '/message/send', 501, 'GROUPS_UNAVAILABLE', { base: bare.url, body: signedMessage(ids.alice, { receiver: dao, kind: 1 }) });
  });

  it('messages: /im chat messages in their REST form, files through /files', async () => {
    const alice = await openIm('alice');
    const cid = dmCid(ids.alice.address, ids.bob.address);
    const text = await alice.ok(3, { 1: cid, 2: 1, 7: { 0: 'hello from /im' } });
    await alice.ok(3, { 1: cid, 2: 1, 6: [[1, text.get(0)]], 7: { 0: 'a reply' } });
    const gone = await alice.ok(3, { 1: cid, 2: 1, 7: { 0: 'to be revoked' } });
    await alice.ok(3, { 1: cid, 2: 5, 6: [[6, gone.get(0)]], 7: { 0: 1 } });

    const bytes = Buffer.from('file bytes for the openapi test');
    const pre = await alice.ok(9, { 0: 'note.txt', 1: bytes.length, 2: 'text/plain' });
    const fid = pre.get(0) as string;
    const upload = new URL(pre.get(1) as string);
    const put = `${upload.pathname}${upload.search}`;
    const headers = Object.fromEntries(pre.get(3) as Map<string, string>);
    delete headers['content-length'];
    await err('PUT', put.replace(/sig=[^&]+/, 'sig=AAAA'), 403, 'BAD_SIGNATURE_URL', { raw: bytes, headers });
    await err('PUT', put, 400, 'INVALID_FIELD', { raw: Buffer.concat([bytes, bytes]), headers });
    await call('PUT', put, 200, { raw: bytes, headers });
    await err('PUT', put, 409, 'ID_CONFLICT', { raw: bytes, headers });
    await alice.ok(3, { 1: cid, 2: 3, 7: { 0: fid, 1: 'note.txt', 2: bytes.length, 3: 'text/plain', 4: createHash('sha256').update(bytes).digest('hex') } });
    const down = new URL((await srv.app.files.presignDownload(fid)).url);
    expect(await call('GET', `${down.pathname}${down.search}`, 200)).toBe(bytes.toString());
    await call('HEAD', `${down.pathname}${down.search}`, 200);
    await err('GET', `${down.pathname}${down.search.replace(/sig=[^&]+/, 'sig=AAAA')}`, 403, 'BAD_SIGNATURE_URL');
    const missing = new URL((await srv.app.files.presignDownload('0'.repeat(32))).url);
    await err('GET', `${missing.pathname}${missing.search}`, 404, 'NOT_FOUND');
    await err('GET', `/files/${fid}?exp=1&sig=x`, 404, 'NOT_FOUND', { base: bare.url });

    const listed = await call('GET', `/message/list?chatId=${ids.bob.address}`, 200, { token: tokens['alice'] }) as Record<string, unknown>[];
    const forms = listed.filter((m) => 'im' in m).map((m) => m['im'] as { k: number; data: Record<string, unknown>; revokedBy?: number; tags: unknown[] });
    expect(forms.map((f) => f.k).sort()).toEqual([1, 1, 1, 3]);
    expect(forms).toContainEqual(expect.objectContaining({ k: 1, data: { 0: 'hello from /im' } }));
    expect(forms).toContainEqual(expect.objectContaining({ k: 1, data: {}, revokedBy: expect.any(Number) }));
    expect(forms).toContainEqual(expect.objectContaining({ k: 1, tags: [[1, text.get(0)]] }));
    expect(forms).toContainEqual(expect.objectContaining({ k: 3, data: { 0: fid, 1: 'note.txt', 2: bytes.length, 3: 'text/plain', 4: expect.stringMatching(/^[0-9a-f]{64}$/) } }));
  });

  it('messages: list, read, unread count', async () => {
    const t = tokens['bob'];
    const all = await call('GET', '/message/list', 200, { token: t }) as { id?: string; seq: number }[];
    expect(all.length).toBeGreaterThan(0);
    await call('GET', `/message/list?chatId=${ids.alice.address}&limit=2&offset=1`, 200, { token: t });
    await call('GET', `/message/list?chatId=${dmCid(ids.alice.address, ids.bob.address)}&afterSeq=1`, 200, { token: t });
    await call('GET', `/message/list?chatId=${dao}`, 200, { token: t });
    await err('GET', '/message/list?afterSeq=1', 400, 'INVALID_FIELD', { token: t });
    await err('GET', '/message/list?limit=0', 400, 'INVALID_FIELD', { token: t });
    await err('GET', '/message/list', 401, 'UNAUTHENTICATED');
    await err('GET', '/message/list', 401, 'UNAUTHENTICATED', { token: 'not-a-token' });
    await err('GET', `/message/list?chatId=${dmCid(Wallet.createRandom().address, Wallet.createRandom().address)}`, 403, 'FORBIDDEN', { token: t });
    await err('GET', `/message/list?chatId=${dao}`, 403, 'NOT_MEMBER', { token: tokens['outsider'] });

    expect(await call('GET', '/message/unreadCount', 200, { token: t })).toBeGreaterThan(0);
    await call('GET', `/message/unreadCount?chatId=${dao}`, 200, { token: t });
    await err('GET', `/message/unreadCount?chatId=${dao}`, 403, 'NOT_MEMBER', { token: tokens['outsider'] });
    await err('GET', '/message/unreadCount?chatId=nope', 400, 'INVALID_FIELD', { token: t });
    await err('GET', '/message/unreadCount', 401, 'UNAUTHENTICATED');

    const signed = all.find((m) => typeof m.id === 'string');
    await call('POST', `/message/read?messageId=${signed?.id ?? ''}`, 200, { token: t });
    await err('POST', '/message/read', 400, 'INVALID_FIELD', { token: t });
    await err('POST', `/message/read?messageId=0x${'ab'.repeat(32)}`, 404, 'MESSAGE_NOT_FOUND', { token: t });
    await err('POST', `/message/read?messageId=${signed?.id ?? ''}`, 401, 'UNAUTHENTICATED');
  });

  it('chats: list, mute, unmute, pin, unpin', async () => {
    const t = tokens['alice'];
    for (const op of ['mute', 'unmute', 'pin', 'unpin', 'pin']) {
      await call('POST', `/chats/${op}?chatId=${ids.bob.address}`, 204, { token: t });
      await err('POST', `/chats/${op}`, 400, 'INVALID_FIELD', { token: t });
      await err('POST', `/chats/${op}?chatId=${dao}`, 403, 'NOT_MEMBER', { token: tokens['outsider'] });
      await err('POST', `/chats/${op}?chatId=${dao}`, 401, 'UNAUTHENTICATED');
    }
    await call('POST', `/chats/mute?chatId=${dao}`, 204, { token: t });
    const chats = await call('GET', '/chats/list?limit=10&offset=0', 200, { token: t }) as { channelType: string; pinned: boolean; muted: boolean }[];
    expect(chats[0]).toMatchObject({ pinned: true });
    expect(chats.map((c) => c.channelType).sort()).toEqual(['GROUP', 'P2P']);
    await err('GET', '/chats/list?limit=abc', 400, 'INVALID_FIELD', { token: t });
    await err('GET', '/chats/list', 401, 'UNAUTHENTICATED');
  });

  it('relations: users, friends, follows, groups, members, admins', async () => {
    const t = tokens['bob'];
    const a = ids.alice.address;
    expect(await call('GET', `/users/${a}`, 200, { token: t })).toMatchObject({ name: expect.stringContaining('aliceoa'), hasName: true });
    await err('GET', '/users/0x1234', 400, 'INVALID_FIELD', { token: t });
    await err('GET', `/users/${a}`, 401, 'UNAUTHENTICATED');
    for (const rel of ['friends', 'following', 'followers']) {
      expect(await call('GET', `/users/${a}/${rel}`, 200, { token: t })).toEqual([expect.objectContaining({ address: ids.bob.address.toLowerCase() })]);
      await err('GET', `/users/nope/${rel}`, 400, 'INVALID_FIELD', { token: t });
      await err('GET', `/users/${a}/${rel}`, 401, 'UNAUTHENTICATED');
    }
    await call('GET', `/groups/${dao}`, 200, { token: t });
    await err('GET', `/groups/${a}`, 400, 'NOT_A_GROUP', { token: t });
    await err('GET', `/groups/${dao}`, 401, 'UNAUTHENTICATED');
    await err('GET', `/groups/${dao}`, 501, 'GROUPS_UNAVAILABLE', { base: bare.url, token: tokens['bare'] });
    await call('GET', `/groups/${dao}/members`, 200, { token: t });
    await err('GET', `/groups/${dao}/members`, 403, 'NOT_MEMBER', { token: tokens['outsider'] });
    await err('GET', `/groups/${a}/members`, 400, 'NOT_A_GROUP', { token: t });
    await err('GET', `/groups/${dao}/members`, 401, 'UNAUTHENTICATED');
    await err('GET', `/groups/${dao}/members`, 501, 'GROUPS_UNAVAILABLE', { base: bare.url, token: tokens['bare'] });
    const admins = `/groups/${dao}/admins/${ids.bob.address}`;
    for (const method of ['PUT', 'DELETE']) {
      await call(method, admins, 204, { token: tokens['owner'] });
      await err(method, admins, 403, 'NOT_OWNER', { token: t });
      await err(method, `/groups/${a}/admins/${ids.bob.address}`, 400, 'NOT_A_GROUP', { token: tokens['owner'] });
      await err(method, admins, 401, 'UNAUTHENTICATED');
      await err(method, admins, 501, 'GROUPS_UNAVAILABLE', { base: bare.url, token: tokens['bare'] });
    }
    await err('PUT', `/groups/${dao}/admins/${ids.outsider.address}`, 403, 'NOT_MEMBER', { token: tokens['owner'] });
    await call('PUT', admins, 204, { token: tokens['owner'] });
    expect(await call('GET', `/groups/${dao}`, 200, { token: t })).toMatchObject({ admins: [ids.bob.address.toLowerCase()] });
  });

  it('archive: head (before and after the first bundle) and status', async () => {
    await err('GET', '/archive/head', 404, 'NOT_FOUND', { base: bare.url });
    await err('GET', '/archive/status', 404, 'NOT_FOUND', { base: bare.url });
    const status = await call('GET', '/archive/status', 200) as { gateway: string };
    expect(status.gateway).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    // every message sent so far lands in bundles (a size trigger of one byte): wait until all are accepted
    const deadline = Date.now() + 90_000;
    type St = { pending: { messages: number }; head: { seq: number } | null; lastBundle: { seq: number } | null };
    const settled = (x: St): boolean => x.pending.messages === 0 && x.head !== null && x.head.seq === x.lastBundle?.seq;
    let st = await call('GET', '/archive/status', 200) as St;
    while (!settled(st) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      st = await call('GET', '/archive/status', 200) as St;
    }
    expect(settled(st), JSON.stringify(st)).toBe(true);
    const head = await call('GET', '/archive/head', 200) as { head: { seq: number; txid: string } };
    expect(head.head).toMatchObject({ seq: expect.any(Number), txid: expect.any(String) });
    // docs/archive.md: the status's gateway is what `npm run archive -- verify --gateway` needs
    const run = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const env: NodeJS.ProcessEnv = { ...process.env, DATA_DIR: srv.dataDir };
      for (const k of Object.keys(env)) if (k.startsWith('VITEST') || k === 'NODE_OPTIONS') delete env[k];
      const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/archive.ts', 'verify', '--gateway', status.gateway, '--proxy', srv.url, '--json'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      child.on('exit', (code) => resolve({ code, out }));
    });
    expect(run.code, run.out).toBe(0);
    expect(JSON.parse(run.out)).toMatchObject({ ok: true, head: head.head.txid, owner: expect.any(String), bundles: expect.any(Number), messages: expect.any(Number), problems: [] });
  }, 120_000);

  it('admin: the ban list with OPERATOR_TOKEN, off without it', async () => {
    const who = Wallet.createRandom().address;
    const op = { token: OPERATOR };
    await err('GET', '/admin/bans', 401, 'UNAUTHENTICATED', { token: 'not-the-operator-token' });
    await err('GET', '/admin/bans', 501, 'NOT_SUPPORTED', { base: bare.url, token: OPERATOR });
    await err('POST', '/admin/bans/0x1234', 400, 'INVALID_FIELD', op);
    expect(await call('POST', `/admin/bans/${who}`, 200, { ...op, body: { reason: 'openapi test' } })).toMatchObject({ address: who.toLowerCase(), reason: 'openapi test' });
    expect(await call('GET', '/admin/bans', 200, op)).toEqual([expect.objectContaining({ address: who.toLowerCase() })]);
    await call('DELETE', `/admin/bans/${who}`, 204, op);
    await err('DELETE', `/admin/bans/${who}`, 404, 'NOT_FOUND', op);
  });

  it('mls: KeyPackages, devices, claims, groups, GroupInfo, epoch-auth, external sender (docs/e2ee.md section 5)', async () => {
    const d = await device({ wallet: ids.alice.wallet, session: ids.alice.session });
    const kp = await keyPackage(d);
    const up = await call('POST', '/mls/key-packages', 200, { token: tokens['alice'], body: { keyPackages: [kp.b64], lastResort: (await keyPackage(d)).b64 } });
    expect(up).toEqual({ deviceId: d.deviceId, available: 1, lastResort: true });
    await err('POST', '/mls/key-packages', 403, 'MLS_CREDENTIAL_MISMATCH', { token: tokens['bob'], body: { keyPackages: [kp.b64] } });
    await err('POST', '/mls/key-packages', 400, 'MLS_MALFORMED', { token: tokens['alice'], body: { keyPackages: ['AAAA'] } });
    expect(await call('GET', `/mls/devices/${ids.alice.address}`, 200, { token: tokens['bob'] })).toMatchObject({ devices: [{ deviceId: d.deviceId, available: 1 }] });
    expect(await call('POST', '/mls/key-packages/claim', 200, { token: tokens['bob'], body: { addresses: [ids.alice.address] } })).toMatchObject({ keyPackages: [{ keyPackage: kp.b64, lastResort: false }], missing: [] });
    await err('POST', '/mls/key-packages/claim', 404, 'MLS_NO_KEY_PACKAGE', { token: tokens['alice'], body: { addresses: [ids.outsider.address] } });
    const cid = dmCid(ids.alice.address, ids.bob.address);
    const group = await call('GET', `/mls/groups/${ids.bob.address}`, 200, { token: tokens['alice'] });
    expect(group).toMatchObject({ cid, epoch: 0, groupInfo: null, groupInfoEpoch: null });
    await err('GET', `/mls/groups/${dao}`, 403, 'NOT_MEMBER', { token: tokens['outsider'] });
    const state = await soloGroup(cid);
    const gi = Buffer.from(encode(mlsMessageEncoder, { wireformat: wireformats.mls_group_info, version: protocolVersions.mls10, groupInfo: await createGroupInfoWithExternalPubAndRatchetTree(state, [], await suite()) })).toString('base64');
    expect(await call('PUT', `/mls/groups/${ids.bob.address}/group-info`, 200, { token: tokens['alice'], body: { epoch: 0, groupInfo: gi } })).toEqual({ cid, epoch: 0 });
    await err('PUT', `/mls/groups/${ids.bob.address}/group-info`, 400, 'MLS_MALFORMED', { token: tokens['alice'], body: { epoch: 0, groupInfo: 'AAAA' } });
    const hash = createHash('sha256').update('epoch 0').digest('hex');
    expect(await call('POST', `/mls/groups/${ids.bob.address}/epoch-auth`, 200, { token: tokens['alice'], body: { epoch: 0, hash } })).toEqual({ status: 'ok' });
    expect(await call('POST', `/mls/groups/${ids.alice.address}/epoch-auth`, 200, { token: tokens['bob'], body: { epoch: 0, hash: '0'.repeat(64) } })).toEqual({ status: 'out_of_sync', epoch: 0 });
    expect(await call('GET', '/mls/external-sender', 200, { token: tokens['bob'] })).toEqual((group as { externalSender: unknown }).externalSender);
    await call('DELETE', `/mls/devices/${d.deviceId}`, 204, { token: tokens['alice'] });
    await err('DELETE', `/mls/devices/${d.deviceId}`, 404, 'MLS_NO_KEY_PACKAGE', { token: tokens['alice'] });
  });

  it('an unknown path is NOT_FOUND with the error body', async () => {
    const res = await fetch(`${srv.url}/no/such/thing`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'NOT_FOUND', message: ERROR_CATALOGUE.NOT_FOUND.text } });
  });

  it('exercised every documented operation with a success answer', () => {
    const missing = checker.operations()
      .map(({ path, method }) => `${method.toUpperCase()} ${path}`)
      .filter((key) => ![...(checker.seen.get(key) ?? [])].some((s) => s < 300));
    expect(missing).toEqual([]);
  });
});

/** Routes of a bare express.Router, as `METHOD /path/{param}`. */
function routerRoutes(router: unknown): string[] {
  return expressRoutes({ router });
}

/** Express routes as `METHOD /path/{param}` (Express 5 keeps them on app.router.stack). */
function expressRoutes(app: unknown): string[] {
  const stack = (app as { router: { stack: { route?: { path: string; methods: Record<string, boolean> } }[] } }).router.stack;
  return stack.flatMap((l) => (l.route ? Object.keys(l.route.methods).filter((m) => m !== '_all').map((m) => `${m.toUpperCase()} ${l.route?.path.replace(/:(\w+)/g, '{$1}') ?? ''}`) : []));
}

describe('every route the server serves is in docs/openapi.yaml', () => {
  const checker = new OpenApiChecker();
  const documented = checker.operations().map(({ path, method }) => `${method.toUpperCase()} ${path}`).sort();
  /**
   * Routes served outside Express, by the request dispatcher in src/app.ts: the fast send path and the
   * embedded file store. The test below probes that their paths answer nothing else.
   */
  const RAW = ['POST /message/send', 'GET /ready', 'GET /metrics', 'PUT /files/{fid}', 'GET /files/{fid}', 'HEAD /files/{fid}'];

  it('the Express routes, the archive routes and the raw routes are exactly the documented operations', () => {
    const log = createLogger('silent');
    const rest = expressRoutes(buildRoutes({ auth: {} as never, chats: {} as never, social: {} as never, log, maxBodyBytes: 1024, listMaxLimit: 10, health: () => ({}), epoch: () => '' }));
    const archive = expressRoutes(archiveRoutes({ status: () => Promise.reject(new Error('unused')), log }));
    const admin = routerRoutes(adminRoutes({ bans: {} as never, operatorToken: '', maxBodyBytes: 1024, bodyTimeoutMs: 1000, log }));
    const mls = routerRoutes(mlsRoutes({ auth: {} as never, mls: {} as never, maxBodyBytes: 1024 }));
    expect([...rest, ...archive, ...admin, ...mls, ...RAW].sort()).toEqual(documented);
  });

  it('the raw routes answer no other method, and /ws and /im are upgrades only', async () => {
    const srv = await startServer();
    try {
      const fid = '0'.repeat(32);
      for (const [path, served] of [['/message/send', ['post']], [`/files/${fid}`, ['put', 'get', 'head']], ['/ws', []], ['/im', []]] as const) {
        for (const method of METHODS.filter((m) => m !== 'head' && !(served as readonly string[]).includes(m))) {
          const res = await fetch(`${srv.url}${path}`, { method: method.toUpperCase() });
          expect([method, path, res.status]).toEqual([method, path, 404]);
          expect(await res.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
        }
      }
    } finally {
      await srv.close();
    }
  });
});
