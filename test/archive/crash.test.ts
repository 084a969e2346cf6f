import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ArchiverStep } from '../../src/archive/archiver.js';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { verifyChain } from '../../src/archive/reader/verify.js';
import { Archiver } from '../../src/archive/archiver.js';
import { makeRig, newVerifier, silentLog, startGateway, type Rig } from '../support/archive.js';

let gw: Awaited<ReturnType<typeof startGateway>>;
const rigs: Rig[] = [];

beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  for (const r of rigs) await r.close();
  await gw?.gateway.stop();
});

class Crash extends Error {}

type CrashPoint = { name: string; at: (s: ArchiverStep) => boolean };

const POINTS: CrashPoint[] = [
  { name: 'after the bundle is cut, before it is signed', at: (s) => s.step === 'cut' },
  { name: 'after the transaction is signed and recorded, before upload', at: (s) => s.step === 'signed' },
  {
    name: 'after the header was posted but before that was recorded',
    at: (s) => s.step === 'upload-progress' && (JSON.parse(s.state) as { txPosted: boolean; chunkIndex: number }).chunkIndex === 0,
  },
  {
    name: 'part way through the chunks (a chunk sent, its progress not recorded)',
    at: (s) => s.step === 'upload-progress' && (JSON.parse(s.state) as { chunkIndex: number }).chunkIndex === 3,
  },
  { name: 'after the gateway accepted everything, before the head was saved', at: (s) => s.step === 'uploaded' },
];

/**
 * A crash is a hook that throws at the step; the process "restarts" as a new archiver with a new
 * connection to the same file and a new lease holder, after the dead holder's lease has lapsed.
 */
describe('crash at any step: a restart finishes the same chain, no gap, no duplicate', () => {
  for (const point of POINTS) {
    it(`recovers from a crash ${point.name}`, async () => {
      const r = await makeRig(gw);
      rigs.push(r);
      const first = await r.send(6, 150_000); // ~1.2 MB: 5 chunks
      let crashed = false;
      const dying = r.archiver({ holder: 'dying' }, (s) => {
        if (!crashed && point.at(s)) {
          crashed = true;
          throw new Crash(`crash ${point.name}`);
        }
      });
      const res = await dying.runOnce(r.clock.now(), 'tick');
      expect(crashed).toBe(true);
      expect(res.confirmed).toEqual([]);
      const before = await r.archive.getBundle(1);
      expect(await r.archive.head()).toBeNull();

      // restart: new connection, new holder, once the dead holder's lease ran out
      const state = new SqliteArchiveStore(r.storeFile);
      const reborn = new Archiver(state, r.uplink, r.clock, silentLog, {
        dataDir: r.dir, cron: '0 */12 * * *', sizeTriggerBytes: 10_000_000, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000, leaseMs: 30_000, holder: 'reborn',
      });
      r.clock.t += 31_000;
      expect((await reborn.runOnce(r.clock.now(), 'poll')).confirmed).toEqual([1]);
      const head = await state.head();
      if (before?.txid) expect(head?.txid).toBe(before.txid); // a signed transaction is never replaced
      expect(head).toMatchObject({ seq: 1, count: first.length });

      // and the chain carries on
      const second = await r.send(2);
      r.clock.t += 1000;
      expect((await reborn.runOnce(r.clock.now(), 'tick')).confirmed).toEqual([2]);
      const report = await verifyChain(gw.source, (await state.head())?.txid as string, newVerifier());
      expect(report.problems).toEqual([]);
      expect(report).toMatchObject({ ok: true, bundles: 2, messages: first.length + second.length });
      expect(await gw.source.bundlesOf(r.owner)).toHaveLength(2);
      await reborn.stop();
      await state.close();
    });
  }
});
