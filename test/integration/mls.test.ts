import { createHash } from 'node:crypto';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGroupInfoWithExternalPubAndRatchetTree, encode, mlsMessageEncoder, protocolVersions, wireformats, type ClientState } from 'ts-mls';
import { dmCid } from '../../src/roles/chat/ids.js';
import type { RelationMessage } from '../../src/protocol/message.js';
import { makeIdentity, resign, signedMessage, type Identity } from '../support/messages.js';
import { application, badKeyPackages, bytesB64, commit, device, keyPackage, proposal, soloGroup, suite, type CredentialParts } from '../support/mls.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

/**
 * The Delivery Service on a real server (docs/e2ee.md sections 4 and 5), with real MLS bytes made by
 * ts-mls and credentials built as section 2 says. Every refusal is a catalogue code and changes nothing.
 */
function mlsMessage(from: Identity, receiver: string, payload: string, type: 'MLS' | 'TEXT', kind: 0 | 1 = 0): RelationMessage {
  return resign(from, { ...signedMessage(from, { receiver, kind, type }), encryptedBy: 'MLS', payload, encryptedSymmetricKey: '' });
}

describe.each(['sqlite', 'postgres'] as const)('MLS Delivery Service (%s store)', (storeKind) => {
  let srv: TestServer;
  let alice: Identity;
  let bob: Identity;
  let tokenA: string;
  let tokenB: string;
  let cid: string;
  let state: ClientState;

  beforeAll(async () => {
    const overrides = storeKind === 'postgres' ? { store: 'postgres' as const, databaseUrl: await (await import('../support/pg.js')).freshSchema() } : {};
    srv = await startServer({ requireName: false, ...overrides });
    alice = makeIdentity();
    bob = makeIdentity();
    tokenA = await login(srv.url, alice);
    tokenB = await login(srv.url, bob);
    cid = dmCid(alice.address, bob.address);
    state = await soloGroup(cid);
  }, 120_000);
  afterAll(async () => { await srv?.close(); });

  const send = (m: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/message/send', { body: m });
  const list = async (): Promise<unknown[]> => (await http(srv.url, 'GET', `/message/list?chatId=${bob.address}&limit=200`, { token: tokenA })).json as unknown[];

  it('orders commits by epoch (CAS), releases a Welcome only with the winner, refuses stale, future, replayed and malformed messages with nothing stored', async () => {
    const state0 = state;
    const c1 = await commit(state, { add: true });
    const rival = await commit(state, { add: true }); // another client's commit at the same epoch 0
    const ok = await send(mlsMessage(alice, bob.address, bytesB64(c1.bytes, c1.welcome as Uint8Array), 'MLS'));
    expect(ok.status, ok.text).toBe(200);
    state = c1.state;
    const stale = await send(mlsMessage(bob, alice.address, bytesB64(rival.bytes, rival.welcome as Uint8Array), 'MLS'));
    expect(stale.status).toBe(409);
    expect(stale.json).toMatchObject({ error: { code: 'MLS_STALE_EPOCH', details: { currentEpoch: 1 } } });
    // a proposal at an old epoch is stale too
    const oldProp = await proposal(state0);
    expect((await send(mlsMessage(bob, alice.address, bytesB64(oldProp.bytes), 'MLS'))).json).toMatchObject({ error: { code: 'MLS_STALE_EPOCH', details: { currentEpoch: 1 } } });

    const app1 = await application(state, 'hello');
    state = app1.state;
    const sent = await send(mlsMessage(alice, bob.address, bytesB64(app1.bytes), 'TEXT'));
    expect(sent.status, sent.text).toBe(200);
    // the same MLS bytes under another id
    expect((await send(mlsMessage(alice, bob.address, bytesB64(app1.bytes), 'TEXT'))).json).toMatchObject({ error: { code: 'MLS_REPLAY' } });
    // the same id again stays idempotent
    const again = await send(JSON.parse(JSON.stringify(mlsMessage(alice, bob.address, bytesB64(app1.bytes), 'TEXT'))));
    expect(again.status === 200 || again.status === 409).toBe(true);
    // ahead of the group's epoch: a commit the proxy never saw
    const unseen = await commit(state);
    const future = await application(unseen.state, 'from the future');
    expect((await send(mlsMessage(alice, bob.address, bytesB64(future.bytes), 'TEXT'))).json).toMatchObject({ error: { code: 'MLS_FUTURE_EPOCH', details: { currentEpoch: 1 } } });
    // type MLS exactly for handshakes
    const app2 = await application(state, 'typed wrong');
    expect((await send(mlsMessage(alice, bob.address, bytesB64(app2.bytes), 'MLS'))).json).toMatchObject({ error: { code: 'INVALID_FIELD' } });
    expect((await send(mlsMessage(alice, bob.address, bytesB64(unseen.bytes), 'TEXT'))).json).toMatchObject({ error: { code: 'INVALID_FIELD' } });
    expect((await send(resign(alice, { ...signedMessage(alice, { receiver: bob.address }), type: 'MLS' }))).json).toMatchObject({ error: { code: 'INVALID_FIELD' } });
    // malformed payloads
    for (const payload of ['not base64', Buffer.from('hello').toString('base64'), bytesB64(app2.bytes).slice(0, -4), bytesB64(app2.bytes, c1.welcome as Uint8Array)]) {
      expect((await send(mlsMessage(alice, bob.address, payload, 'TEXT'))).json).toMatchObject({ error: { code: 'MLS_MALFORMED' } });
    }
    // another conversation's group
    const carol = makeIdentity();
    expect((await send(mlsMessage(alice, carol.address, bytesB64(app2.bytes), 'TEXT'))).json).toMatchObject({ error: { code: 'MLS_WRONG_GROUP' } });

    const events = await list();
    expect(events).toHaveLength(2); // the winning commit and the one application message
    const commitRow = events.find((e) => (e as { type: string }).type === 'MLS') as { payload: string };
    expect(commitRow.payload).toBe(bytesB64(c1.bytes, c1.welcome as Uint8Array));
    expect(JSON.stringify(events)).not.toContain(bytesB64(rival.bytes));
    // handshakes do not count as unread
    const unread = await http(srv.url, 'GET', `/message/unreadCount?chatId=${alice.address}`, { token: tokenB });
    expect(unread.json).toBe(1);
    expect((await http(srv.url, 'GET', `/mls/groups/${bob.address}`, { token: tokenA })).json).toMatchObject({ cid, epoch: 1, groupInfo: null });

    // the next commit, sent privately, advances to 2
    const c2 = await commit(state, { privately: true });
    expect((await send(mlsMessage(bob, alice.address, bytesB64(c2.bytes), 'MLS'))).status).toBe(200);
    state = c2.state;
    expect((await http(srv.url, 'GET', `/mls/groups/${alice.address}`, { token: tokenB })).json).toMatchObject({ epoch: 2 });
  });

  it('keeps a GroupInfo only at the current epoch, for participants only', async () => {
    const impl = await suite();
    const gi = await createGroupInfoWithExternalPubAndRatchetTree(state, [], impl);
    const b64 = Buffer.from(encode(mlsMessageEncoder, { wireformat: wireformats.mls_group_info, version: protocolVersions.mls10, groupInfo: gi })).toString('base64');
    const put = await http(srv.url, 'PUT', `/mls/groups/${bob.address}/group-info`, { token: tokenA, body: { epoch: 2, groupInfo: b64 } });
    expect(put.status, put.text).toBe(200);
    const got = (await http(srv.url, 'GET', `/mls/groups/${alice.address}`, { token: tokenB })).json as Record<string, unknown>;
    expect(got).toMatchObject({ epoch: 2, groupInfo: b64, groupInfoEpoch: 2 });
    const es = got['externalSender'] as { signatureKey: string; credential: string };
    expect(Buffer.from(es.signatureKey, 'base64')).toHaveLength(32);
    expect((await http(srv.url, 'GET', '/mls/external-sender', { token: tokenB })).json).toEqual(es);
    const stale = await http(srv.url, 'PUT', `/mls/groups/${bob.address}/group-info`, { token: tokenA, body: { epoch: 1, groupInfo: b64 } });
    expect(stale.json).toMatchObject({ error: { code: 'INVALID_FIELD' } }); // epoch is not the GroupInfo's
    const outsider = makeIdentity();
    const tokenX = await login(srv.url, outsider);
    expect((await http(srv.url, 'GET', `/mls/groups/${cid}`, { token: tokenX })).json).toMatchObject({ error: { code: 'FORBIDDEN' } });
    expect((await http(srv.url, 'GET', `/mls/external-sender`)).status).toBe(401);
  });

  it('fork detection: the first epoch-authenticator report wins', async () => {
    const h = (s: string): string => createHash('sha256').update(s).digest('hex');
    const url = `/mls/groups/${bob.address}/epoch-auth`;
    expect((await http(srv.url, 'POST', url, { token: tokenA, body: { epoch: 2, hash: h('a') } })).json).toEqual({ status: 'ok' });
    expect((await http(srv.url, 'POST', `/mls/groups/${alice.address}/epoch-auth`, { token: tokenB, body: { epoch: 2, hash: h('a') } })).json).toEqual({ status: 'ok' });
    expect((await http(srv.url, 'POST', url, { token: tokenA, body: { epoch: 2, hash: h('b') } })).json).toEqual({ status: 'out_of_sync', epoch: 2 });
    expect((await http(srv.url, 'POST', url, { token: tokenA, body: { epoch: 2, hash: 'XYZ' } })).json).toMatchObject({ error: { code: 'INVALID_FIELD' } });
  });

  it('KeyPackage directory: upload checks the credential (wallet -> session key -> MLS key), caps devices, claims single use with a last resort, signals running low', async () => {
    const parts: CredentialParts = { wallet: alice.wallet, session: alice.session };
    const d1 = await device(parts);
    const pkgs = await Promise.all(Array.from({ length: 3 }, () => keyPackage(d1)));
    const last = await keyPackage(d1);
    const up = await http(srv.url, 'POST', '/mls/key-packages', { token: tokenA, body: { keyPackages: pkgs.map((p) => p.b64), lastResort: last.b64 } });
    expect(up.status, up.text).toBe(200);
    expect(up.json).toEqual({ deviceId: d1.deviceId, available: 3, lastResort: true });

    const refuse = async (body: unknown, code: string, token = tokenA): Promise<void> => {
      const r = await http(srv.url, 'POST', '/mls/key-packages', { token, body });
      expect(r.json, r.text).toMatchObject({ error: { code } });
    };
    // a credential of another wallet, uploaded by alice
    const other = Wallet.createRandom();
    await refuse({ keyPackages: [(await keyPackage(await device({ wallet: new Wallet(other.privateKey), session: alice.session }))).b64] }, 'MLS_CREDENTIAL_MISMATCH');
    // bob's genuine package uploaded with alice's token
    await refuse({ keyPackages: [(await keyPackage(await device({ wallet: bob.wallet, session: bob.session }))).b64] }, 'MLS_CREDENTIAL_MISMATCH');
    // keySig by another key than the delegated session key
    await refuse({ keyPackages: [(await keyPackage(await device({ ...parts, keySigner: Wallet.createRandom() as unknown as Wallet }))).b64] }, 'MLS_CREDENTIAL_MISMATCH');
    // an expired delegation
    await refuse({ keyPackages: [(await keyPackage(await device({ ...parts, createdAt: Date.now() - 3 * 86_400_000, expiresAt: Date.now() - 86_400_000 }))).b64] }, 'MLS_CREDENTIAL_MISMATCH');
    // malformed, not a KeyPackage, unsupported suite
    await refuse({ keyPackages: ['@@@@'] }, 'MLS_MALFORMED');
    const app = await application(state, 'not a key package');
    await refuse({ keyPackages: [bytesB64(app.bytes)] }, 'MLS_INVALID_KEY_PACKAGE');
    const p3 = await keyPackage(await device(parts, 'MLS_256_XWING_AES256GCM_SHA512_Ed25519'), 'MLS_256_XWING_AES256GCM_SHA512_Ed25519');
    expect((await http(srv.url, 'POST', '/mls/key-packages', { token: tokenA, body: { keyPackages: [p3.b64] } })).status).toBe(200);
    const unsupported = await keyPackage(await device(parts, 'MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519' as never), 'MLS_256_MLKEM768_AES256GCM_SHA384_Ed25519' as never);
    await refuse({ keyPackages: [unsupported.b64] }, 'MLS_UNSUPPORTED_SUITE');
    // packages of two devices in one call
    await refuse({ keyPackages: [pkgs[0]?.b64, (await keyPackage(await device(parts))).b64] }, 'MLS_INVALID_KEY_PACKAGE');

    let devices = (await http(srv.url, 'GET', `/mls/devices/${alice.address}`, { token: tokenB })).json as { devices: { deviceId: string; fingerprint: string; available: number }[] };
    expect(devices.devices.map((d) => d.deviceId).sort()).toEqual([d1.deviceId, deviceIdOfPkg(p3.pkg)].sort());
    expect(devices.devices.find((d) => d.deviceId === d1.deviceId)).toMatchObject({ available: 3, lastResort: true, fingerprint: `${d1.deviceId.slice(0, 4)} ${d1.deviceId.slice(4, 8)} ${d1.deviceId.slice(8, 12)} ${d1.deviceId.slice(12, 16)} ${d1.deviceId.slice(16, 20)}` });

    // claims: single use, low signal to alice's connections, then the last resort (kept)
    const ws = await WsClient.open(srv.wsUrl, tokenA);
    const claimed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await http(srv.url, 'POST', '/mls/key-packages/claim', { token: tokenB, body: { addresses: [alice.address] } });
      expect(c.status, c.text).toBe(200);
      const mine = (c.json as { keyPackages: { deviceId: string; keyPackage: string; lastResort: boolean }[] }).keyPackages.find((k) => k.deviceId === d1.deviceId);
      expect(mine?.lastResort).toBe(false);
      claimed.push(mine?.keyPackage as string);
    }
    expect(new Set(claimed).size).toBe(3);
    expect(claimed.sort()).toEqual(pkgs.map((p) => p.b64).sort());
    expect(await ws.next((f) => f['type'] === 'mls.keyPackagesLow' && f['deviceId'] === d1.deviceId && f['available'] === 0)).toEqual({ type: 'mls.keyPackagesLow', deviceId: d1.deviceId, available: 0 });
    ws.close();
    for (let i = 0; i < 2; i++) {
      const c = (await http(srv.url, 'POST', '/mls/key-packages/claim', { token: tokenB, body: { addresses: [alice.address, bob.address] } })).json as { keyPackages: { deviceId: string; keyPackage: string; lastResort: boolean }[]; missing: string[] };
      expect(c.keyPackages.find((k) => k.deviceId === d1.deviceId)).toMatchObject({ keyPackage: last.b64, lastResort: true });
      expect(c.missing).toEqual([bob.address.toLowerCase()]);
    }
    expect((await http(srv.url, 'POST', '/mls/key-packages/claim', { token: tokenA, body: { addresses: [bob.address] } })).json).toMatchObject({ error: { code: 'MLS_NO_KEY_PACKAGE' } });

    // the device cap (MLS_MAX_DEVICES, 10): alice has 2; 8 more fit, the 11th is refused and changes nothing
    for (let i = 0; i < 8; i++) {
      const r = await http(srv.url, 'POST', '/mls/key-packages', { token: tokenA, body: { keyPackages: [(await keyPackage(await device(parts))).b64] } });
      expect(r.status, r.text).toBe(200);
    }
    await refuse({ keyPackages: [(await keyPackage(await device(parts))).b64] }, 'MLS_TOO_MANY_DEVICES');
    devices = (await http(srv.url, 'GET', `/mls/devices/${alice.address}`, { token: tokenA })).json as typeof devices;
    expect(devices.devices).toHaveLength(10);
    // a device leaves; then there is room again
    expect((await http(srv.url, 'DELETE', `/mls/devices/${d1.deviceId}`, { token: tokenB })).json).toMatchObject({ error: { code: 'MLS_NO_KEY_PACKAGE' } });
    expect((await http(srv.url, 'DELETE', `/mls/devices/${d1.deviceId}`, { token: tokenA })).status).toBe(204);
    expect(((await http(srv.url, 'GET', `/mls/devices/${alice.address}`, { token: tokenA })).json as typeof devices).devices).toHaveLength(9);
  }, 120_000);

  describe('KeyPackage signatures (RFC 9420 section 10.1): refused with MLS_INVALID_KEY_PACKAGE, nothing stored', () => {
    let who: Identity;
    let token: string;
    let d: Awaited<ReturnType<typeof device>>;
    let bad: Awaited<ReturnType<typeof badKeyPackages>>;
    let badX: Awaited<ReturnType<typeof badKeyPackages>>;
    let good: Awaited<ReturnType<typeof keyPackage>>[];
    let more: Awaited<ReturnType<typeof keyPackage>>[];
    const upload = (body: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/mls/key-packages', { token, body });
    const directory = async (): Promise<{ deviceId: string; available: number; lastResort: boolean }[]> =>
      ((await http(srv.url, 'GET', `/mls/devices/${who.address}`, { token: tokenB })).json as { devices: { deviceId: string; available: number; lastResort: boolean }[] }).devices;
    const KP_SIG = /KeyPackage signature \(KeyPackageTBS.*does not verify/;
    const LEAF_SIG = /leaf node signature \(LeafNodeTBS.*does not verify/;

    beforeAll(async () => {
      who = makeIdentity();
      token = await login(srv.url, who);
      d = await device({ wallet: who.wallet, session: who.session });
      bad = await badKeyPackages(d);
      const dx = await device({ wallet: who.wallet, session: who.session }, 'MLS_256_XWING_AES256GCM_SHA512_Ed25519');
      badX = await badKeyPackages(dx, 'MLS_256_XWING_AES256GCM_SHA512_Ed25519');
      good = await Promise.all([0, 1].map(() => keyPackage(d)));
      more = await Promise.all([0, 1].map(() => keyPackage(d)));
    }, 60_000);

    it('a device whose first upload is a package with a flipped signature byte does not enter the directory', async () => {
      const r = await upload({ keyPackages: [bad.flippedSignature] });
      expect(r.json, r.text).toMatchObject({ error: { code: 'MLS_INVALID_KEY_PACKAGE', message: expect.stringMatching(KP_SIG) } });
      expect(await directory()).toEqual([]);
      const up = await upload({ keyPackages: good.map((p) => p.b64) });
      expect(up.json, up.text).toEqual({ deviceId: d.deviceId, available: 2, lastResort: false });
    });

    const cases: [string, () => unknown, string, RegExp][] = [
      ['one byte of the KeyPackage signature flipped', () => ({ keyPackages: [bad.flippedSignature] }), 'MLS_INVALID_KEY_PACKAGE', KP_SIG],
      ['a valid KeyPackage signature by another key than the leaf\'s', () => ({ keyPackages: [bad.signedByOtherKey] }), 'MLS_INVALID_KEY_PACKAGE', KP_SIG],
      ['a broken leaf node signature (the KeyPackage signature over it good)', () => ({ keyPackages: [bad.leafSignatureBroken] }), 'MLS_INVALID_KEY_PACKAGE', LEAF_SIG],
      ['an init key equal to the encryption key (both signatures good)', () => ({ keyPackages: [bad.initKeyIsEncryptionKey] }), 'MLS_INVALID_KEY_PACKAGE', /init key equals the leaf node's encryption key/],
      ['a signature length in a longer form than needed (verifies over the re-encoding, not the bytes claimers would get)', () => ({ keyPackages: [bad.nonMinimalLength] }), 'MLS_MALFORMED', /canonical encoding/],
      ['one bad package between two good ones (the whole call)', () => ({ keyPackages: [more[0]?.b64, bad.signedByOtherKey, more[1]?.b64] }), 'MLS_INVALID_KEY_PACKAGE', KP_SIG],
      ['a bad last-resort package', () => ({ keyPackages: [more[0]?.b64], lastResort: bad.flippedSignature }), 'MLS_INVALID_KEY_PACKAGE', KP_SIG],
      ['an X-Wing package with a flipped signature byte', () => ({ keyPackages: [badX.flippedSignature] }), 'MLS_INVALID_KEY_PACKAGE', KP_SIG],
      ['an X-Wing package with a broken leaf node signature', () => ({ keyPackages: [badX.leafSignatureBroken] }), 'MLS_INVALID_KEY_PACKAGE', LEAF_SIG],
    ];
    for (const [what, body, code, message] of cases) {
      it(`refuses ${what}; the device's count is unchanged`, async () => {
        const r = await upload(body());
        expect(r.status, r.text).toBe(400);
        expect(r.json, r.text).toMatchObject({ error: { code, message: expect.stringMatching(message) } });
        expect(await directory()).toEqual([expect.objectContaining({ deviceId: d.deviceId, available: 2, lastResort: false })]);
      });
    }

    it('still accepts good packages, and a claim hands out only what was accepted', async () => {
      const up = await upload({ keyPackages: more.map((p) => p.b64), lastResort: (await keyPackage(d)).b64 });
      expect(up.json, up.text).toEqual({ deviceId: d.deviceId, available: 4, lastResort: true });
      const handed: string[] = [];
      for (let i = 0; i < 4; i++) {
        const c = (await http(srv.url, 'POST', '/mls/key-packages/claim', { token: tokenB, body: { addresses: [who.address] } })).json as { keyPackages: { keyPackage: string; lastResort: boolean }[] };
        expect(c.keyPackages).toHaveLength(1);
        expect(c.keyPackages[0]?.lastResort).toBe(false);
        handed.push(c.keyPackages[0]?.keyPackage as string);
      }
      expect(handed.sort()).toEqual([...good, ...more].map((p) => p.b64).sort());
    });
  });

  describe('KeyPackage lifetimes (RFC 9420 sections 7.2, 10.1): refused at upload with MLS_INVALID_KEY_PACKAGE, nothing stored', () => {
    let who: Identity;
    let token: string;
    let d: Awaited<ReturnType<typeof device>>;
    const now = (): number => Math.floor(Date.now() / 1000);
    const H = 3600;
    const D = 86_400;
    const upload = (body: unknown): ReturnType<typeof http> => http(srv.url, 'POST', '/mls/key-packages', { token, body });
    const rows = async (): Promise<number> => {
      // the store itself, so a row kept but not counted as usable would show
      const got = await srv.app.store.mlsDevices(who.address.toLowerCase(), { now: 0, minLeft: 0 });
      return got.reduce((n, x) => n + x.available + (x.lastResort ? 1 : 0), 0) + got.length * 1000;
    };

    beforeAll(async () => {
      who = makeIdentity();
      token = await login(srv.url, who);
      d = await device({ wallet: who.wallet, session: who.session });
    }, 60_000);

    const cases: [string, () => { notBefore: number; notAfter: number }, boolean, RegExp][] = [
      ['expired (notAfter past)', () => ({ notBefore: now() - 10 * D, notAfter: now() - D }), false, /lifetime.*has expired/],
      ['with 30 minutes left', () => ({ notBefore: now() - D, notAfter: now() + 30 * 60 }), false, /lifetime.*1 hour or less left/],
      ['not valid yet (notBefore a day ahead)', () => ({ notBefore: now() + D, notAfter: now() + 10 * D }), false, /lifetime.*not valid yet/],
      ['of 100 days', () => ({ notBefore: now() - H, notAfter: now() + 100 * D }), false, /lifetime.*longer than 90 days/],
      ['ending before it begins', () => ({ notBefore: now() + 2 * D, notAfter: now() + D }), false, /lifetime.*ends before it begins/],
      ['expired, as the last-resort package of an otherwise good call', () => ({ notBefore: now() - 10 * D, notAfter: now() - D }), true, /lifetime.*has expired/],
    ];
    for (const [what, lifetime, asLast, message] of cases) {
      it(`refuses a package ${what}`, async () => {
        const bad = (await keyPackage(d, undefined, lifetime())).b64;
        const body = asLast ? { keyPackages: [(await keyPackage(d)).b64], lastResort: bad } : { keyPackages: [bad] };
        const r = await upload(body);
        expect(r.status, r.text).toBe(400);
        expect(r.json, r.text).toMatchObject({ error: { code: 'MLS_INVALID_KEY_PACKAGE', message: expect.stringMatching(message) } });
        expect(await rows()).toBe(0);
      });
    }

    it('accepts a package valid within the 5-minute skew and up to 90 days long', async () => {
      const ok = await upload({ keyPackages: [(await keyPackage(d, undefined, { notBefore: now() + 120, notAfter: now() + 30 * D })).b64],
        lastResort: (await keyPackage(d, undefined, { notBefore: now() - H, notAfter: now() - H + 90 * D })).b64 });
      expect(ok.json, ok.text).toEqual({ deviceId: d.deviceId, available: 1, lastResort: true });
    });
  });

  describe('KeyPackage lifetimes at claim time (the proxy\'s clock moved on)', () => {
    let aged: TestServer;
    let offset = 0; // seconds the proxy's clock is ahead of the real one
    let who: Identity;
    let claimer: Identity;
    let token: string;
    let tokenC: string;

    beforeAll(async () => {
      const overrides = storeKind === 'postgres' ? { store: 'postgres' as const, databaseUrl: await (await import('../support/pg.js')).freshSchema() } : {};
      aged = await startServer({ requireName: false, ...overrides }, { clock: { now: () => Date.now() + offset * 1000 } });
      who = makeIdentity();
      claimer = makeIdentity();
      token = await login(aged.url, who);
      tokenC = await login(aged.url, claimer);
    }, 120_000);
    afterAll(async () => { await aged?.close(); });

    it('skips a package with an hour or less left, never hands out an expired one (deleting it), and says running low counting usable ones only', async () => {
      const now = Math.floor(Date.now() / 1000);
      const H = 3600;
      const d = await device({ wallet: who.wallet, session: who.session });
      // uploaded with 3 h, 4 h and 30 days left (oldest first), a last resort with 4 h left
      const soon = await keyPackage(d, undefined, { notBefore: now - H, notAfter: now + 3 * H });
      const later = await keyPackage(d, undefined, { notBefore: now - H, notAfter: now + 4 * H });
      const far = await keyPackage(d, undefined, { notBefore: now - H, notAfter: now + 30 * 86_400 });
      const last = await keyPackage(d, undefined, { notBefore: now - H, notAfter: now + 4 * H });
      const up = await http(aged.url, 'POST', '/mls/key-packages', { token, body: { keyPackages: [soon.b64, later.b64, far.b64], lastResort: last.b64 } });
      expect(up.json, up.text).toEqual({ deviceId: d.deviceId, available: 3, lastResort: true });

      // 3.5 h on: `soon` has expired, `later` and the last resort have 30 minutes left
      offset = 3.5 * H;
      const devices = (await http(aged.url, 'GET', `/mls/devices/${who.address}`, { token: tokenC })).json as { devices: { available: number; lastResort: boolean }[] };
      expect(devices.devices).toEqual([expect.objectContaining({ available: 1, lastResort: false })]);
      const ws = await WsClient.open(aged.wsUrl, token);
      const claim = async (): Promise<{ status: number; json: unknown }> => http(aged.url, 'POST', '/mls/key-packages/claim', { token: tokenC, body: { addresses: [who.address] } });
      const first = await claim();
      expect(first.json).toMatchObject({ keyPackages: [{ deviceId: d.deviceId, keyPackage: far.b64, lastResort: false }] });
      expect(await ws.next((f) => f['type'] === 'mls.keyPackagesLow' && f['deviceId'] === d.deviceId)).toEqual({ type: 'mls.keyPackagesLow', deviceId: d.deviceId, available: 0 });
      // nothing usable is left, not even the last resort: the wallet has no KeyPackage to give, and its
      // devices are told (no device id: none of them had one), as no claim will reach them again
      expect((await claim()).json).toMatchObject({ error: { code: 'MLS_NO_KEY_PACKAGE' } });
      expect(await ws.next((f) => f['type'] === 'mls.keyPackagesLow' && f['deviceId'] === null)).toEqual({ type: 'mls.keyPackagesLow', deviceId: null, available: 0 });
      ws.close();
      // the expired one was deleted at claim time; the two with 30 minutes left are kept, never handed out
      expect((await aged.app.store.mlsDevices(who.address.toLowerCase(), { now: 0, minLeft: 0 }))[0]).toMatchObject({ available: 1, lastResort: true });
      offset = 5 * H; // now they have expired too: the next claim deletes them
      expect((await claim()).json).toMatchObject({ error: { code: 'MLS_NO_KEY_PACKAGE' } });
      expect((await aged.app.store.mlsDevices(who.address.toLowerCase(), { now: 0, minLeft: 0 }))[0]).toMatchObject({ available: 0, lastResort: false });
    });
  });

  it('refuses the development plaintext unless ALLOW_DEV_PLAINTEXT', async () => {
    const strict = await startServer({ requireName: false, allowDevPlaintext: false });
    try {
      const m = resign(alice, { ...signedMessage(alice, { receiver: bob.address }), encryptedBy: 'dev-plaintext-NOT-end-to-end-encrypted', payload: 'hello in the clear' });
      const r = await http(strict.url, 'POST', '/message/send', { body: m });
      expect(r.status).toBe(403);
      expect(r.json).toMatchObject({ error: { code: 'PLAINTEXT_REFUSED' } });
      const t = await login(strict.url, alice);
      expect((await http(strict.url, 'GET', `/message/list?chatId=${bob.address}`, { token: t })).json).toEqual([]);
    } finally {
      await strict.close();
    }
    const m = resign(alice, { ...signedMessage(alice, { receiver: bob.address }), encryptedBy: 'dev-plaintext-NOT-end-to-end-encrypted', payload: 'allowed in tests' });
    expect((await send(m)).status).toBe(200); // the test harness allows it (the SDK's tests still use it)
  });
});

function deviceIdOfPkg(pkg: { publicPackage: { leafNode: { signaturePublicKey: Uint8Array } } }): string {
  return createHash('sha256').update(pkg.publicPackage.leafNode.signaturePublicKey).digest('hex').slice(0, 32);
}
