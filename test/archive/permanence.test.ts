/**
 * "Accepted" is not "permanent", stale anchors, and fencing — against a real arlocal gateway behind an
 * HTTP proxy that holds and drops pending transactions, fails, delays, and refuses stale anchors the way
 * the network does (test/support/gateway-proxy.ts). Readers check the chain on arlocal directly.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archiver, type ArchiverHook, type ArchiverOptions } from '../../src/archive/archiver.js';
import { arweaveFor } from '../../src/archive/arweave/client.js';
import { ArweaveUplink } from '../../src/archive/arweave/uplink.js';
import { verifyChain } from '../../src/archive/reader/verify.js';
import { GatewayProxy } from '../support/gateway-proxy.js';
import { makeRig, newVerifier, silentLog, startGateway, type Rig } from '../support/archive.js';

let gw: Awaited<ReturnType<typeof startGateway>>;
const rigs: Rig[] = [];
const proxies: GatewayProxy[] = [];

beforeAll(async () => {
  gw = await startGateway();
  await gw.gateway.mine(); // a first block, so transactions get a block hash as their anchor
});
afterAll(async () => {
  for (const p of proxies) await p.stop();
  for (const r of rigs) await r.close();
  await gw?.gateway.stop();
});

const mine = async (blocks = 1): Promise<void> => {
  const res = await fetch(`${gw.gateway.url}/mine/${blocks}`);
  await res.arrayBuffer();
  if (blocks > 1) {
    // arlocal orders blocks by a creation time in whole seconds and takes "the last 50" from that order,
    // so of many blocks mined in one second the newest may not count as recent: mine the tip a second later.
    await new Promise((r) => setTimeout(r, 1100));
    await mine();
  }
};

/** A rig whose archiver uploads through a misbehaving proxy in front of the shared arlocal. */
async function proxied(opts: Partial<ArchiverOptions> = {}, hook?: ArchiverHook): Promise<{ r: Rig; proxy: GatewayProxy; archiver: (o?: Partial<ArchiverOptions>, h?: ArchiverHook) => Archiver; a: Archiver }> {
  const r = await makeRig(gw);
  rigs.push(r);
  const proxy = await GatewayProxy.start(gw.gateway.url);
  proxies.push(proxy);
  const uplink = new ArweaveUplink(arweaveFor(proxy.url), r.jwk, { afterAccepted: () => gw.gateway.mine() });
  const archiver = (o: Partial<ArchiverOptions> = {}, h?: ArchiverHook): Archiver => new Archiver(r.archive, uplink, r.clock, silentLog, {
    dataDir: r.dir, cron: '0 */12 * * *', sizeTriggerBytes: 1_000_000, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000,
    leaseMs: 30_000, random: () => 0.5, confirmations: 2, ...opts, ...o,
  }, h);
  return { r, proxy, archiver, a: archiver({}, hook) };
}

/** Runs passes (a minute apart, past any backoff) until `done`, mining a block before each; at most `max`. */
async function runUntil(r: Rig, a: Archiver, done: () => Promise<boolean>, max = 12): Promise<number> {
  for (let i = 1; i <= max; i++) {
    r.clock.t += 60_000;
    await mine();
    await a.runOnce(r.clock.now(), 'tick');
    if (await done()) return i;
  }
  throw new Error(`not done after ${max} passes: ${JSON.stringify(await a.status(), null, 1)}`);
}

describe('a bundle counts as permanent only at the confirmation depth', () => {
  it('does not link the next bundle to a pending transaction; one the gateway dropped is posted again with the same id', async () => {
    const { r, proxy, a } = await proxied();
    const first = await r.send(3);
    proxy.mode = 'hold'; // the gateway takes the transaction into its mempool…
    proxy.delayMs = 50;
    await a.runOnce(r.clock.now(), 'tick');
    const held = await r.archive.getBundle(1);
    expect(held?.txid).toBeTruthy();
    expect(proxy.held.has(held?.txid as string)).toBe(true);
    expect(await r.archive.head()).toBeNull(); // pending is not permanent
    let s = await a.status();
    expect(s.lastBundle).toMatchObject({ seq: 1, status: 'pending', confirmations: 0, reposts: 0 });
    expect(s.unarchived).toMatchObject({ messages: 3, oldestTimestamp: first[0]?.timestamp });

    proxy.drop(); // …and loses it
    proxy.mode = 'pass';
    const second = await r.send(2);
    await runUntil(r, a, async () => (await r.archive.head())?.seq === 2);

    const b1 = await r.archive.getBundle(1);
    expect(b1).toMatchObject({ status: 'confirmed', txid: held?.txid, reposts: 1, replacedTxids: [] });
    expect(b1?.confirmations).toBeGreaterThanOrEqual(2);
    expect(await r.archive.getBundle(2)).toMatchObject({ prevTx: held?.txid, status: 'confirmed' });
    // a reader on the real gateway finds every bundle the chain names
    const report = await verifyChain(gw.source, (await r.archive.head())?.txid as string, newVerifier());
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, bundles: 2, messages: first.length + second.length });
    s = await a.status();
    expect(s.unarchived).toEqual({ messages: 0, bytes: 0, oldestTimestamp: null, oldestAgeMs: null });
    expect(s.bundles.map((b) => [b.seq, b.status])).toEqual([[2, 'confirmed'], [1, 'confirmed']]);
  });

  it('waits for the configured depth before the head moves, and shows the confirmations meanwhile', async () => {
    const { r, a } = await proxied({ confirmations: 3 });
    await r.send(2);
    await a.runOnce(r.clock.now(), 'tick'); // posted, one block mined: 1 confirmation
    expect(await r.archive.head()).toBeNull();
    expect((await a.status()).lastBundle).toMatchObject({ status: 'pending', confirmations: 1 });
    await mine();
    r.clock.t += 1000;
    await a.runOnce(r.clock.now(), 'poll');
    expect((await a.status()).lastBundle).toMatchObject({ status: 'pending', confirmations: 2 });
    expect(await r.archive.head()).toBeNull();
    await mine();
    r.clock.t += 1000;
    expect((await a.runOnce(r.clock.now(), 'poll')).confirmed).toEqual([1]);
    expect((await a.status()).head).toMatchObject({ seq: 1, confirmations: 3 });
  });
});

describe('a transaction whose anchor went stale during an outage', () => {
  it('is re-signed with a fresh anchor (no gateway saw the old id); the chain follows the new id', async () => {
    let outage = true;
    const { r, proxy, a } = await proxied({ confirmations: 1 }, (s) => {
      if (s.step === 'signed' && outage) {
        proxy.mode = 'fail'; // the outage starts right after the first signing
        outage = false;
      }
    });
    proxy.maxAnchorAge = 50; // the network's rule
    const first = await r.send(3);
    const res = await a.runOnce(r.clock.now(), 'tick');
    expect(res.error).toMatch(/503/);
    const old = (await r.archive.getBundle(1))?.txid as string;
    await mine(60); // a long outage: the anchor is now 60 blocks old
    proxy.mode = 'pass';
    await runUntil(r, a, async () => (await r.archive.head())?.seq === 1, 6);
    const b1 = await r.archive.getBundle(1);
    expect(b1?.txid).not.toBe(old);
    expect(b1?.replacedTxids).toEqual([old]);
    expect((await a.status()).lastBundle?.replacedTxids).toEqual([old]);
    expect(await gw.source.tx(old)).toBeNull(); // the old id never landed anywhere

    const second = await r.send(2);
    await runUntil(r, a, async () => (await r.archive.head())?.seq === 2, 6);
    expect((await r.archive.getBundle(2))?.prevTx).toBe(b1?.txid);
    const report = await verifyChain(gw.source, (await r.archive.head())?.txid as string, newVerifier());
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, bundles: 2, messages: first.length + second.length });
    expect(await gw.source.bundlesOf(r.owner)).toHaveLength(2); // no second Bundle-Seq 1
  });

  it('is not re-signed while a gateway holds it: it waits, and is confirmed under its id', async () => {
    const { r, proxy, a } = await proxied({ confirmations: 1 });
    proxy.mode = 'hold';
    await r.send(1);
    await a.runOnce(r.clock.now(), 'tick');
    const id = (await r.archive.getBundle(1))?.txid as string;
    await mine(60);
    r.clock.t += 60_000;
    await a.runOnce(r.clock.now(), 'poll');
    expect(await r.archive.getBundle(1)).toMatchObject({ status: 'pending', txid: id, replacedTxids: [] });
  });

  it('leaves one id after a crash between signing the new transaction and recording it, or after recording it', async () => {
    for (const at of ['resigning', 'resigned'] as const) {
      let crash = true;
      let outage = true;
      const { r, proxy, archiver } = await proxied({ confirmations: 1 });
      proxy.maxAnchorAge = 50;
      const dying = archiver({ holder: 'dying' }, (s) => {
        if (s.step === 'signed' && outage) {
          proxy.mode = 'fail';
          outage = false;
        }
        if (s.step === at && crash) {
          crash = false;
          throw new Error(`crash at ${at}`);
        }
      });
      await r.send(2);
      await dying.runOnce(r.clock.now(), 'tick');
      const old = (await r.archive.getBundle(1))?.txid as string;
      await mine(60);
      proxy.mode = 'pass';
      r.clock.t += 60_000;
      expect((await dying.runOnce(r.clock.now(), 'poll')).error).toBe(`crash at ${at}`);
      const afterCrash = await r.archive.getBundle(1);
      if (at === 'resigning') expect(afterCrash?.txid).toBe(old); // signed but never recorded: forgotten, never posted
      else expect(afterCrash?.replacedTxids).toEqual([old]);
      const reborn = archiver({ holder: 'reborn' });
      r.clock.t += 60_000;
      await runUntil(r, reborn, async () => (await r.archive.head())?.seq === 1, 4);
      const head = await r.archive.head();
      if (at === 'resigned') expect(head?.txid).toBe(afterCrash?.txid); // the recorded new id is the one posted
      expect(head?.replacedTxids).toHaveLength(1); // the old id, once: a signed-but-unrecorded transaction leaves no trace
      const found = await gw.source.bundlesOf(r.owner);
      expect(found.map((t) => t.id)).toEqual([head?.txid]);
      expect((await verifyChain(gw.source, head?.txid as string, newVerifier())).ok).toBe(true);
    }
  }, 120_000);
});

describe('fencing: a holder paused past its lease', () => {
  it('cannot write once another holder took over; the other finishes the same transaction', async () => {
    const { r, archiver } = await proxied({ confirmations: 1 });
    await r.send(6, 150_000); // several chunks
    let resume!: () => void;
    const paused = new Promise<void>((res) => {
      resume = res;
    });
    let pausedOnce = false;
    let atPause!: () => void;
    const reached = new Promise<void>((res) => {
      atPause = res;
    });
    const a = archiver({ holder: 'a' }, async (s) => {
      if (s.step === 'upload-progress' && !pausedOnce && (JSON.parse(s.state) as { chunkIndex: number }).chunkIndex === 2) {
        pausedOnce = true;
        atPause();
        await paused; // a GC pause, a frozen VM, a partition
      }
    });
    const running = a.runOnce(r.clock.now(), 'tick');
    await reached;
    const signed = (await r.archive.getBundle(1))?.txid;
    r.clock.t += 31_000; // a's lease lapsed
    const b = archiver({ holder: 'b' });
    expect((await b.runOnce(r.clock.now(), 'poll')).confirmed).toEqual([1]);
    resume();
    const late = await running;
    expect(late.confirmed).toEqual([]);
    expect(late.error).toMatch(/fencing token/);
    const head = await r.archive.head();
    expect(head).toMatchObject({ seq: 1, txid: signed, status: 'confirmed' });
    expect((await r.archive.lease())?.holder).toBe('b');
    expect(await gw.source.bundlesOf(r.owner)).toHaveLength(1);
    expect((await verifyChain(gw.source, head?.txid as string, newVerifier())).ok).toBe(true);
  });
});
