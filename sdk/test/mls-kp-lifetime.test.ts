import { base64ToBytes, bytesToBase64 } from 'ts-mls';
import { Wallet } from 'ethers';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, login, startServer, type TestServer } from '../../test/support/server.js';
import { makeIdentity } from '../../test/support/messages.js';
import { RelationClient } from '../src/client.js';
import type { WebSocketCtor } from '../src/live.js';
import { KP_KEEP_AFTER_END_MS, KP_RENEW_BEFORE_MS, keptKeyPackages, MlsEncryptor } from '../src/mls/mls-encryptor.js';
import { KP_LIFETIME_S, KP_NOT_BEFORE_SKEW_S, keyPackageLifetime, TsMlsEngine } from '../src/mls/tsmls.js';
import { buildIdentity, checkIdentity } from '../src/mls/credential.js';
import { createSession } from '../src/session.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage } from '../src/storage.js';
import { mlsLive, until } from './support.js';

// KeyPackage lifetimes (docs/e2ee.md section 5): the SDK makes packages valid from an hour ago for 30
// days, by an injectable clock, and on start replaces what it has in the directory (the last-resort
// package too) once less than 7 days are left. The device's clock is moved back instead of the proxy's
// forward: the proxy checks lifetimes against its own clock, so packages made "24 days ago" are the aged
// packages a device that was away would have left. Real server, real ts-mls, no timings.

const DAY = 86_400_000;

describe('MLS: KeyPackage lifetimes in the SDK', () => {
  let srv: TestServer;
  let claimerToken: string;
  const key = Wallet.createRandom().privateKey;
  const storage = new MemoryStorage();
  const T = Date.now(); // the fake clock's "today" (fixed)
  let address: string;

  beforeAll(async () => {
    srv = await startServer({ requireName: false, allowDevPlaintext: false });
    claimerToken = await login(srv.url, makeIdentity());
  }, 60_000);
  afterAll(async () => { await srv?.close(); });

  /** Starts a client of the one device (same storage, so the same MLS signature key) whose clock says `at`. */
  async function startAt(at: number): Promise<RelationClient> {
    const client = new RelationClient({
      baseUrl: srv.url, signer: privateKeySigner(key), storage, WebSocket: WebSocket as unknown as WebSocketCtor, live: mlsLive,
      encryptor: new MlsEncryptor({ now: () => at }),
    });
    address = client.address.toLowerCase();
    await client.start();
    await until(() => client.connection.connected, 30_000, 'connected');
    return client;
  }
  const claim = async (): Promise<{ keyPackage: string; lastResort: boolean }> => {
    const r = await http(srv.url, 'POST', '/mls/key-packages/claim', { token: claimerToken, body: { addresses: [address] } });
    expect(r.status, r.text).toBe(200);
    return (r.json as { keyPackages: { keyPackage: string; lastResort: boolean }[] }).keyPackages[0]!;
  };
  const notAfterOf = (b64: string): number | undefined => keyPackageLifetime(base64ToBytes(b64))?.notAfter;

  it('makes packages with the explicit lifetime; replaces them on start once less than 7 days are left, the last-resort one too', async () => {
    // 24 days ago: packages valid until T + 6 days (30 - 24), still accepted by the proxy today
    const t1 = T - 24 * DAY;
    const c1 = await startAt(t1);
    const end1 = Math.floor(t1 / 1000) + KP_LIFETIME_S;
    const first = await claim();
    expect(first.lastResort).toBe(false);
    expect(keyPackageLifetime(base64ToBytes(first.keyPackage))).toEqual({ notBefore: Math.floor(t1 / 1000) - KP_NOT_BEFORE_SKEW_S, notAfter: end1 });
    c1.close();

    // a day later (23 days ago): 29 days left, nothing is replaced; the next claim still gets an old package
    const c2 = await startAt(t1 + DAY);
    expect(notAfterOf((await claim()).keyPackage)).toBe(end1);
    c2.close();

    // today: 6 days left (< 7): the device leaves the directory and uploads a fresh batch and last resort
    expect(end1 * 1000 - T).toBeLessThan(KP_RENEW_BEFORE_MS);
    const c3 = await startAt(T);
    const end3 = Math.floor(T / 1000) + KP_LIFETIME_S;
    const devices = (await http(srv.url, 'GET', `/mls/devices/${address}`, { token: claimerToken })).json as { devices: { available: number; lastResort: boolean }[] };
    expect(devices.devices).toEqual([expect.objectContaining({ available: 20, lastResort: true })]);
    const handed: [number | undefined, boolean][] = [];
    for (let i = 0; i < 21; i++) {
      const c = await claim();
      handed.push([notAfterOf(c.keyPackage), c.lastResort]);
    }
    // every single-use package is new (none of the 18 old ones left), then the new last resort
    expect(handed).toEqual([...Array.from({ length: 20 }, () => [end3, false]), [end3, true]]);
    c3.close();
  }, 120_000);

  it('on keyPackagesLow, replaces aged packages instead of topping them up', async () => {
    const other = Wallet.createRandom().privateKey;
    let clock = T - 24 * DAY;
    const client = new RelationClient({
      baseUrl: srv.url, signer: privateKeySigner(other), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live: mlsLive,
      encryptor: new MlsEncryptor({ now: () => clock }),
    });
    const who = client.address.toLowerCase();
    try {
      await client.start();
      await until(() => client.connection.connected, 30_000, 'connected');
      const end1 = Math.floor(clock / 1000) + KP_LIFETIME_S;
      clock = T; // the device's clock reaches today while it runs: 6 days left
      const take = async (): Promise<{ keyPackage: string; lastResort: boolean }> => {
        const r = await http(srv.url, 'POST', '/mls/key-packages/claim', { token: claimerToken, body: { addresses: [who] } });
        return (r.json as { keyPackages: { keyPackage: string; lastResort: boolean }[] }).keyPackages[0]!;
      };
      // 11 claims leave 9 (< MLS_KEY_PACKAGES_LOW): the server pushes mls.keyPackagesLow
      for (let i = 0; i < 11; i++) expect(notAfterOf((await take()).keyPackage)).toBe(end1);
      const available = async (): Promise<number> =>
        ((await http(srv.url, 'GET', `/mls/devices/${who}`, { token: claimerToken })).json as { devices: { available: number }[] }).devices[0]?.available ?? 0;
      // a top-up would reach 29 (9 old + 20); a replacement 20 new ones
      await until(async () => (await available()) >= 20, 30_000, 'the device uploaded again');
      const end3 = Math.floor(T / 1000) + KP_LIFETIME_S;
      expect(await available()).toBe(20);
      const handed: [number | undefined, boolean][] = [];
      for (let i = 0; i < 21; i++) {
        const c = await take();
        handed.push([notAfterOf(c.keyPackage), c.lastResort]);
      }
      expect(handed).toEqual([...Array.from({ length: 20 }, () => [end3, false]), [end3, true]]);
    } finally {
      client.close();
    }
  }, 120_000);

  it('deletes the private keys of packages whose lifetime ended more than 30 days ago, and only those', async () => {
    // Unit level, real packages: made by engines whose clocks are 100, 59 and 0 days back.
    const make = async (at: number): Promise<{ pub: string; priv: string }> => {
      const e = await TsMlsEngine.create({ validateIdentity: (id, k, o) => checkIdentity(id, k, at, o).ok, now: () => at });
      const session = await createSession(privateKeySigner(Wallet.createRandom().privateKey), { now: at });
      const k = await e.generateSignatureKey();
      const kp = await e.generateKeyPackage({ signaturePublicKey: k.publicKey, signaturePrivateKey: k.privateKey, identity: buildIdentity(session, k.publicKey) });
      return { pub: bytesToBase64(kp.publicMessage), priv: bytesToBase64(kp.privateKeys) };
    };
    const [old, recent, fresh] = [await make(T - 100 * DAY), await make(T - 59 * DAY), await make(T)];
    // ended 70 days ago: deleted; ended 29 days ago: kept (a Welcome may still wait for it); fresh: kept
    expect(keptKeyPackages([old, recent, fresh, { pub: 'not a package', priv: '' }], T)).toEqual([recent, fresh, { pub: 'not a package', priv: '' }]);
    expect(keptKeyPackages([recent], T + DAY + 1)).toEqual([]);
    expect(KP_KEEP_AFTER_END_MS).toBe(30 * DAY);

    // Through the client: a device whose clock was 100 days back made packages the proxy refused (their
    // private keys were saved before the upload); its next start with the right clock deletes them.
    const k2 = Wallet.createRandom().privateKey;
    const s2 = new MemoryStorage();
    const at = (when: number) => new RelationClient({
      baseUrl: srv.url, signer: privateKeySigner(k2), storage: s2, WebSocket: WebSocket as unknown as WebSocketCtor, live: mlsLive,
      encryptor: new MlsEncryptor({ now: () => when }),
    });
    const saved = async (): Promise<number[]> =>
      (JSON.parse((await s2.get(`mls:${srv.url}:${new Wallet(k2).address.toLowerCase()}:keyPackages`)) ?? '[]') as { pub: string }[]).map((x) => notAfterOf(x.pub)!);
    const away = at(T - 100 * DAY);
    await expect(away.start()).rejects.toThrow();
    away.close();
    const oldEnd = Math.floor((T - 100 * DAY) / 1000) + KP_LIFETIME_S;
    expect(await saved()).toEqual(Array.from({ length: 21 }, () => oldEnd));
    const back = at(T);
    try {
      await back.start();
      expect(await saved()).toEqual(Array.from({ length: 21 }, () => Math.floor(T / 1000) + KP_LIFETIME_S));
    } finally {
      back.close();
    }
  }, 120_000);

  it('a client that stays connected renews its packages before they expire, with nobody claiming one', async () => {
    const k3 = Wallet.createRandom().privateKey;
    let clock = T - 24 * DAY; // packages made now end at T + 6 days
    const client = new RelationClient({
      baseUrl: srv.url, signer: privateKeySigner(k3), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live: mlsLive,
      encryptor: new MlsEncryptor({ now: () => clock, keyPackageCheckMs: 100 }),
    });
    const who = client.address.toLowerCase();
    const availableNow = async (): Promise<number[]> => {
      const r = await http(srv.url, 'GET', `/mls/devices/${who}`, { token: claimerToken });
      return ((r.json as { devices: { available: number }[] }).devices ?? []).map((d) => d.available);
    };
    try {
      await client.start();
      await until(() => client.connection.connected, 30_000, 'connected');
      expect(await availableNow()).toEqual([20]);
      const kpKey = `mls:${srv.url}:${who}:kpNotAfter`;
      const storage = client.storage;
      const end1 = Math.floor((T - 24 * DAY) / 1000) + KP_LIFETIME_S;
      expect(Number(await storage.get(kpKey))).toBe(end1);
      // the device's clock reaches today (6 days left) while it runs; no claim, no push: the periodic
      // check alone replaces the packages
      clock = T;
      const end3 = Math.floor(T / 1000) + KP_LIFETIME_S;
      await until(async () => Number(await storage.get(kpKey)) === end3, 30_000, 'the running client renewed');
      expect(await availableNow()).toEqual([20]);
      const c = await http(srv.url, 'POST', '/mls/key-packages/claim', { token: claimerToken, body: { addresses: [who] } });
      expect(notAfterOf((c.json as { keyPackages: { keyPackage: string }[] }).keyPackages[0]!.keyPackage)).toBe(end3);
    } finally {
      client.close();
    }
  }, 120_000);

  it('a running-low push names one device: another device of the wallet ignores it; one naming none is for all', async () => {
    const client = new RelationClient({
      baseUrl: srv.url, signer: privateKeySigner(Wallet.createRandom().privateKey), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live: mlsLive,
    });
    const who = client.address.toLowerCase();
    const available = async (): Promise<number[]> =>
      ((await http(srv.url, 'GET', `/mls/devices/${who}`, { token: claimerToken })).json as { devices: { available: number }[] }).devices.map((d) => d.available);
    try {
      await client.start();
      const enc = client.encryptor as MlsEncryptor;
      expect(await available()).toEqual([20]);
      await enc.onKeyPackagesLow('0'.repeat(32)); // another device of this wallet runs low
      expect(await available()).toEqual([20]);
      await enc.onKeyPackagesLow(enc.deviceId); // this one
      expect(await available()).toEqual([40]);
      await enc.onKeyPackagesLow(null); // no device of the wallet had a usable package
      expect(await available()).toEqual([60]);
    } finally {
      client.close();
    }
  }, 120_000);
});
