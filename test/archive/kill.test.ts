/**
 * Crash injection with real kills: a child process archives against a SQLite file and a real arlocal
 * gateway and is killed with SIGKILL while it stands at a step of a bundle's life (test/support/archive-child.ts
 * stops there and waits); a new process then finishes. One chain, one bundle per kill point, so the
 * chain as a whole went through every kind of crash. Then an import of that chain is killed half way and
 * resumed. After each restart: the same transaction id, no gap, no duplicate, no fork, `verify` sound.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { verifyChain } from '../../src/archive/reader/verify.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeRig, newVerifier, startGateway, tempDir, type Rig } from '../support/archive.js';
import { children, kill9, run } from '../support/child.js';

let gw: Awaited<ReturnType<typeof startGateway>>;
let rig: Rig;

beforeAll(async () => {
  gw = await startGateway();
  await gw.gateway.mine();
  rig = await makeRig(gw);
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rig?.close();
  await gw?.gateway.stop();
});

/** Kill points, one bundle each, in chain order. */
const POINTS: { at: string; messages: number; payload: number }[] = [
  { at: 'cut', messages: 3, payload: 200 },
  { at: 'signed', messages: 3, payload: 200 },
  { at: 'header', messages: 6, payload: 150_000 }, // header posted, not recorded
  { at: 'chunk:3', messages: 6, payload: 150_000 }, // part way through the chunks
  { at: 'uploaded', messages: 2, payload: 200 }, // every chunk in, "pending" not recorded
  { at: 'pending', messages: 2, payload: 200 }, // pending recorded, waiting for confirmations
  { at: 'confirmed', messages: 2, payload: 200 }, // confirmed recorded, bundle file not yet removed
];

describe('kill -9 of a real archiving process at every step', () => {
  it('restarts into the same transaction, and the chain stays whole', async () => {
    const wallet = path.join(rig.dir, 'wallet.json');
    writeFileSync(wallet, JSON.stringify(rig.jwk));
    const base = { CHILD_MODE: 'archive', CHILD_FILE: rig.storeFile, CHILD_DATA_DIR: rig.dir, CHILD_GATEWAY: gw.gateway.url, CHILD_WALLET: wallet };
    const state = rig.archive;
    let messages = 0;
    for (const [i, point] of POINTS.entries()) {
      const seq = i + 1;
      messages += (await rig.send(point.messages, point.payload)).length;
      const dying = run({ ...base, CHILD_UNTIL: String(seq), CHILD_PAUSE_AT: point.at });
      await dying.waitFor(new RegExp(`^AT ${point.at}$`));
      await kill9(dying);
      const before = await state.getBundle(seq);
      expect(before, point.at).not.toBeNull();

      const reborn = run({ ...base, CHILD_UNTIL: String(seq) });
      await reborn.waitFor(/^DONE /);
      expect(await reborn.exited).toBe(0);
      const head = await state.head();
      expect(head, point.at).toMatchObject({ seq, status: 'confirmed', replacedTxids: [] });
      if (before?.txid) expect(head?.txid, point.at).toBe(before.txid);
      // a transaction the killed process never signed: the new one signs it (and nothing else of the bundle's seq exists)
      const onGateway = await gw.source.bundlesOf(rig.owner);
      expect(onGateway, point.at).toHaveLength(seq);
    }
    const report = await verifyChain(gw.source, (await state.head())?.txid as string, newVerifier());
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, bundles: POINTS.length, messages });
  }, 420_000); // 14 child processes, each starting its archive worker thread; minutes on a loaded 2-core machine

  it('an import killed half way resumes and stores every message once', async () => {
    const head = await rig.archive.head();
    expect(head?.seq).toBe(POINTS.length);
    const dir = tempDir('import-kill-');
    const file = path.join(dir, 'relation-im.sqlite');
    const base = { CHILD_MODE: 'import', CHILD_FILE: file, CHILD_DATA_DIR: dir, CHILD_GATEWAY: gw.gateway.url, CHILD_HEAD: head?.txid as string };
    const dying = run({ ...base, CHILD_PAUSE_AT: 'bundle:4' });
    await dying.waitFor(/^AT bundle:4$/);
    await kill9(dying);
    const reborn = run(base);
    const done = await reborn.waitFor(/^DONE /);
    expect(await reborn.exited).toBe(0);
    const report = JSON.parse(done.slice(5)) as { bundles: number; imported: number; alreadyPresent: number; skippedBundles: number };
    expect(report.bundles).toBe(POINTS.length);
    expect(report.skippedBundles).toBeGreaterThanOrEqual(4);

    const store = new SqliteStore({ file, synchronous: 'NORMAL' });
    const archive = new SqliteArchiveStore(file);
    try {
      const cid = `dm:${[rig.alice.address, rig.bob.address].map((x) => x.toLowerCase()).sort().join(':')}`;
      const events = await store.listEvents({ cid, viewer: rig.alice.address.toLowerCase(), afterSeq: 0, limit: 1000, offset: 0 });
      const original = await rig.store.listEvents({ cid, viewer: rig.alice.address.toLowerCase(), afterSeq: 0, limit: 1000, offset: 0 });
      expect(events.map((e) => e.body)).toEqual(original.map((e) => e.body));
      expect(events.map((e) => e.seq)).toEqual(original.map((_, k) => k + 1));
      expect(await archive.head()).toMatchObject({ seq: POINTS.length, txid: head?.txid });
    } finally {
      await archive.close();
      await store.close();
    }
  }, 120_000);
});
