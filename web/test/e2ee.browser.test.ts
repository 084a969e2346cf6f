import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, type NatsConnection } from 'nats';
import { chromium, type Browser, type Page } from 'playwright-core';
import { build } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPushHub, type PushHub } from '../../src/bus/create.js';
import type { PushItem } from '../../src/bus/hub.js';
import { testConfig } from '../../src/config/config.js';
import { dmParticipants } from '../../src/roles/chat/ids.js';
import { createLogger } from '../../src/log/logger.js';
import { startChainRelations, type StartedRelations } from '../../src/roles/relations/chain/setup.js';
import { startServer, type TestServer } from '../../test/support/server.js';
import { RelationClient } from '../../sdk/src/client.js';
import { privateKeySigner } from '../../sdk/src/signer.js';
import { CHROMIUM, FLAGS, personContext, type Person } from './browser-support.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = '/tmp';

/** Every way a text can sit in the store or a bundle: raw UTF-8, hex, and base64 at each of the 3 alignments. */
function needles(text: string): { how: string; bytes: Buffer }[] {
  const raw = Buffer.from(text, 'utf8');
  const out = [{ how: 'utf8', bytes: raw }, { how: 'hex', bytes: Buffer.from(raw.toString('hex')) }];
  for (let shift = 0; shift < 3; shift++) {
    const b = Buffer.concat([Buffer.alloc(shift), raw]).toString('base64');
    // Drop the characters that depend on the bytes before and after the text.
    const head = Math.ceil((shift * 4) / 3);
    const body = b.replace(/=+$/, '');
    out.push({ how: `base64+${shift}`, bytes: Buffer.from(body.slice(head, body.length - 2)) });
  }
  return out;
}

function files(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e);
    const st = statSync(p, { throwIfNoEntry: false });
    if (!st) continue;
    if (st.isDirectory()) out.push(...files(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}

/** Where (file and encoding) each text occurs in the given blobs. */
function scan(blobs: { name: string; data: Buffer }[], texts: string[]): Map<string, string[]> {
  const hits = new Map<string, string[]>();
  for (const t of texts) {
    const found: string[] = [];
    for (const n of needles(t)) for (const b of blobs) if (b.data.includes(n.bytes)) found.push(`${b.name} (${n.how})`);
    hits.set(t, found);
  }
  return hits;
}

describe('web client end-to-end encryption in Chromium (alice and bob)', () => {
  let chain: StartedRelations;
  let srv: TestServer;
  let browser: Browser;
  let profile: string;
  let alice: Person;
  let bob: Person;
  let carol: Person;
  let dao: string;
  // Everything the server logs (at trace level, the most it ever says) and everything it puts on the bus.
  const logged: Buffer[] = [];
  const onBus: Buffer[] = [];
  let nc: NatsConnection;
  // A second process on the same bus with bob connected to it: a doorbell carries the event only when a
  // recipient is online on another process, so without it nothing but (cid, seq) would cross the bus.
  let peer: PushHub | undefined;
  const atPeer: PushItem[] = [];
  const shot = (p: Page, name: string) => p.screenshot({ path: path.join(SHOTS, `e2ee-${name}.png`) });

  beforeAll(async () => {
    const webDir = mkdtempSync(path.join(tmpdir(), 'rim-web-'));
    await build({ configFile: path.resolve(here, '../vite.config.ts'), logLevel: 'error', build: { outDir: webDir, emptyOutDir: true } });
    chain = await startChainRelations(testConfig({ chain: 'embedded' }));
    const demo = chain.demo!;
    // As `npm start` runs it: the development plaintext refused, the archive on (embedded arlocal under
    // DATA_DIR) with a tick every second and one confirmation, so the test can wait for a bundle.
    // The bus is real NATS (as many processes would use it), under a prefix of this run's own; the test
    // listens to every subject under it.
    const busPrefix = `e2ee-scan-${Math.random().toString(36).slice(2, 10)}`;
    nc = await connect({ servers: 'nats://127.0.0.1:4222' });
    const sub = nc.subscribe(`${busPrefix}.>`);
    void (async () => { for await (const m of sub) onBus.push(Buffer.from(m.data)); })();
    const log = createLogger('trace', { write: (line: string) => { logged.push(Buffer.from(line)); } });
    srv = await startServer({
      chain: 'embedded', requireName: true, allowDevPlaintext: false,
      archiveEnabled: true, archiveCron: '* * * * * *', archivePollMs: 200, archiveConfirmations: 1, archiveMineMs: 0,
      bus: 'nats', natsUrl: 'nats://127.0.0.1:4222', busPrefix,
    }, { relations: chain.reader, demo, webDir }, { log });
    alice = demo.identities.find((i) => i.label === 'alice')!;
    bob = demo.identities.find((i) => i.label === 'bob')!;
    carol = demo.identities.find((i) => i.label === 'carol')!;
    dao = demo.dao.address;
    // The peer is the real cluster hub over real NATS, reading the same store; its one connection is bob's.
    peer = createPushHub(testConfig({ bus: 'nats', natsUrl: 'nats://127.0.0.1:4222', busPrefix }), createLogger('silent'), {
      store: srv.app.store, recipients: async (e) => dmParticipants(e.cid) ?? [],
    });
    await peer.start();
    peer.add({ user: bob.address.toLowerCase(), tokenHash: 'bus-scan-peer', deliver: (item) => { atPeer.push(item); }, close: () => {} });
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    profile = mkdtempSync(path.join(tmpdir(), 'rim-chromium-'));
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, env: { ...process.env, HOME: profile, XDG_CONFIG_HOME: profile, XDG_CACHE_HOME: profile } });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await peer?.close();
    await srv?.close();
    await nc?.close();
    await chain?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('chats with a lock and a devices panel; the typed text is in neither the data directory, the archive bundle, the server log nor the bus', async () => {
    const tag = Math.random().toString(36).slice(2, 10);
    const typed = [`zq-${tag}-first-from-alice`, `zq-${tag}-reply-from-bob`, `zq-${tag}-second-from-alice`, `zq-${tag}-group-from-bob`, `zq-${tag}-to-the-new-device`];
    // Stored in plaintext on purpose (a "Lit" client's payload, which the proxy carries opaquely): the same
    // scan must find it, or the scan proves nothing (compressed or moved bodies would hide everything).
    const control = `zq-${tag}-control-plaintext`;
    // The server has heard the peer say bob is online there.
    await expect.poll(() => srv.app.hub.isOnline(bob.address.toLowerCase()), { timeout: 10_000 }).toBe(true);

    const A = await personContext(browser, alice);
    const B = await personContext(browser, bob);
    for (const P of [A, B]) {
      await P.page.goto(srv.url + '/');
      await P.page.getByTestId('connect-wallet').click();
      await P.page.locator('[data-testid=conn][data-state=connected]').waitFor({ timeout: 30_000 });
    }

    // alice starts the chat; the lock is on the conversation.
    await A.page.getByTestId('new-chat').fill(bob.address);
    await A.page.getByTestId('new-chat').press('Enter');
    const aConv = A.page.locator(`[data-testid=conversation][data-chat="${bob.address}"]`);
    await aConv.waitFor();
    await aConv.getByTestId('e2ee').getByTestId('lock').waitFor();
    expect(await aConv.getByTestId('e2ee').textContent()).toContain('End-to-end encrypted');
    expect(await A.page.getByText('development encryptor').count()).toBe(0);
    const send = async (p: Page, text: string) => {
      await p.getByTestId('composer').fill(text);
      await p.getByTestId('send').click();
      await p.locator('[data-testid=message-text]', { hasText: text }).waitFor({ timeout: 30_000 });
    };
    await send(A.page, typed[0]!);

    // bob reads it (decrypted in his page), with the lock on his chat list entry.
    const bobsChat = B.page.locator(`[data-testid=chat][data-chat="${alice.address}"]`);
    await bobsChat.getByTestId('lock').waitFor({ timeout: 30_000 });
    await bobsChat.click();
    await B.page.locator('[data-testid=message-text]', { hasText: typed[0]! }).waitFor({ timeout: 30_000 });
    await send(B.page, typed[1]!);
    await A.page.locator('[data-testid=message-text]', { hasText: typed[1]! }).waitFor({ timeout: 30_000 });
    await send(A.page, typed[2]!);
    await B.page.locator('[data-testid=message-text]', { hasText: typed[2]! }).waitFor({ timeout: 30_000 });
    expect(await B.page.getByTestId('undecryptable-banner').count()).toBe(0);

    // The devices panel: alice sees bob's device with the fingerprint bob's page shows for "this device".
    await A.page.getByTestId('devices-toggle').click();
    const bobsDeviceAtAlice = A.page.locator(`[data-testid=device][data-wallet="${bob.address}"][data-in-group=true]`);
    await bobsDeviceAtAlice.first().waitFor({ timeout: 30_000 });
    await B.page.getByTestId('devices-toggle').click();
    const ownAtBob = B.page.locator(`[data-testid=device][data-wallet="${bob.address}"]`, { hasText: 'this device' });
    await ownAtBob.waitFor({ timeout: 30_000 });
    const fpAtAlice = await bobsDeviceAtAlice.first().getByTestId('fingerprint').textContent();
    const fpAtBob = await ownAtBob.getByTestId('fingerprint').textContent();
    expect(fpAtAlice).toMatch(/^[0-9a-f]{4}( [0-9a-f]{4}){4}$/);
    expect(fpAtAlice).toBe(fpAtBob);
    // alice's own device is in the group too, so bob can read her fingerprint back to her.
    expect(await B.page.locator(`[data-testid=device][data-wallet="${alice.address}"][data-in-group=true]`).count()).toBeGreaterThan(0);
    await shot(A.page, 'devices-panel');

    // The demo group: both pages joined its MLS group when they started; bob posts, alice reads.
    await B.page.locator(`[data-testid=chat][data-chat="${dao}"]`).click();
    await B.page.locator(`[data-testid=conversation][data-chat="${dao}"] [data-testid=e2ee] [data-testid=lock]`).waitFor();
    await send(B.page, typed[3]!);
    await A.page.locator(`[data-testid=chat][data-chat="${dao}"]`).click();
    await A.page.locator('[data-testid=message-text]', { hasText: typed[3]! }).waitFor({ timeout: 30_000 });

    // The control, through the REST face like any client that does its own (here: no) encryption.
    const cc = new RelationClient({
      baseUrl: srv.url, signer: privateKeySigner(carol.privateKey),
      encryptor: { encrypt: async (t) => ({ encryptedBy: 'Lit', payload: Buffer.from(t).toString('base64'), encryptedSymmetricKey: 'not-a-key' }), decrypt: async () => null },
    });
    await cc.rest.send(await cc.prepare(bob.address, control, { kind: 0 }));

    // A message this page cannot open is shown with a banner, never dropped: carol's "Lit" message at bob.
    const carolsChat = B.page.locator(`[data-testid=chat][data-chat="${carol.address}"]`);
    await carolsChat.waitFor({ timeout: 30_000 });
    await carolsChat.click();
    await B.page.getByTestId('undecryptable-banner').waitFor({ timeout: 30_000 });

    await shot(B.page, 'banner');

    // bob on a new device (a fresh browser context: no MLS state): the three earlier messages are under
    // the banner, marked in place; alice's next message adds the new device and it reads that one.
    const B2 = await personContext(browser, bob);
    await B2.page.goto(srv.url + '/');
    await B2.page.getByTestId('connect-wallet').click();
    await B2.page.locator('[data-testid=conn][data-state=connected]').waitFor({ timeout: 30_000 });
    await B2.page.locator(`[data-testid=chat][data-chat="${alice.address}"]`).click();
    await expect.poll(() => B2.page.locator('[data-testid=message][data-status=undecryptable]').count(), { timeout: 30_000 }).toBe(3);
    await B2.page.getByTestId('undecryptable-banner').waitFor();
    expect(await B2.page.getByTestId('undecryptable-banner').textContent()).toContain('3 messages');
    await A.page.locator(`[data-testid=chat][data-chat="${bob.address}"]`).click();
    await aConv.waitFor();
    await send(A.page, typed[4]!);
    await B2.page.locator('[data-testid=message-text]', { hasText: typed[4]! }).waitFor({ timeout: 30_000 });
    await B.page.locator(`[data-testid=chat][data-chat="${alice.address}"]`).click();
    await B.page.locator('[data-testid=message-text]', { hasText: typed[4]! }).waitFor({ timeout: 30_000 });
    await shot(B2.page, 'new-device');
    await A.page.getByTestId('devices-toggle').click();
    await expect.poll(() => A.page.locator(`[data-testid=device][data-wallet="${bob.address}"][data-in-group=true]`).count(), { timeout: 30_000 }).toBe(2);
    await shot(A.page, 'conversation');

    // Everything is in a confirmed bundle (force-cut by the one-second tick).
    let status: { unarchived: { messages: number }; pending: { messages: number }; gateway: string; bundles: { txid: string | null; status: string }[] } | null = null;
    await expect.poll(async () => {
      status = await (await fetch(`${srv.url}/archive/status`)).json() as typeof status;
      return status!.unarchived.messages === 0 && status!.bundles.length > 0;
    }, { timeout: 40_000, interval: 250 }).toBe(true);

    // The data directory as a thief of the disk reads it (SQLite file, its -wal and -shm, bundle files,
    // the embedded Arweave gateway's data) and the bundles as anyone reads them from the gateway.
    const blobs = files(srv.dataDir).map((f) => ({ name: path.relative(srv.dataDir, f), data: readFileSync(f) }));
    // arlocal keeps each transaction's data base64url-encoded in a file of its own: read it decoded too.
    for (const b of [...blobs]) {
      if (/^arlocal\/data-/.test(b.name)) blobs.push({ name: `${b.name} (decoded)`, data: Buffer.from(b.data.toString('latin1'), 'base64url') });
    }
    expect(blobs.some((b) => /relation-im\.sqlite$/.test(b.name))).toBe(true);
    for (const b of status!.bundles) {
      if (!b.txid) continue;
      const r = await fetch(`${status!.gateway}/${b.txid}`);
      expect(r.status).toBe(200);
      blobs.push({ name: `gateway:${b.txid}`, data: Buffer.from(await r.arrayBuffer()) });
    }
    // What the server logged and what crossed the bus, over the whole conversation.
    await nc.flush();
    expect(logged.length).toBeGreaterThan(0);
    expect(onBus.length).toBeGreaterThan(0);
    blobs.push({ name: 'server log', data: Buffer.concat(logged) }, { name: 'bus', data: Buffer.concat(onBus) });
    const hits = scan(blobs, [...typed, control]);
    for (const t of typed) expect(hits.get(t), `typed text found: ${t}`).toEqual([]);
    const found = hits.get(control)!;
    expect(found.some((h) => h.includes('relation-im.sqlite'))).toBe(true);
    // The bundle files under DATA_DIR/archive are removed once confirmed; the bundle lives on in the gateway.
    expect(found.some((h) => h.startsWith('arlocal/data-'))).toBe(true);
    expect(found.some((h) => h.startsWith('gateway:'))).toBe(true);
    // bob is online on the peer, so the doorbells to him carried the stored events (the peer delivered
    // the control to him) and the control is on the bus: the bus scan sees message bodies.
    expect(atPeer.some((i) => i.event?.body.includes(Buffer.from(control).toString('base64')) === true)).toBe(true);
    expect(found.some((h) => h.startsWith('bus'))).toBe(true);
    // Every chat message the pages sent is MLS (the server refused nothing: no error toast).
    expect(await A.page.getByTestId('error').count()).toBe(0);
    expect(await B.page.getByTestId('error').count()).toBe(0);
    await A.ctx.close();
    await B.ctx.close();
    await B2.ctx.close();
    // About 40 s on this 2-core machine at load average 25; the bound leaves room for a busier one.
  }, 120_000);
});
