import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Archiver } from '../../src/archive/archiver.js';
import { ArweaveUplink } from '../../src/archive/arweave/uplink.js';
import { bundleTags, type BundleMeta } from '../../src/archive/format.js';
import { importChain } from '../../src/archive/reader/import.js';
import { verifyChain } from '../../src/archive/reader/verify.js';
import { describe as describeProblem, findHead } from '../../src/archive/reader/walk.js';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { canonicalJson, type RelationMessage } from '../../src/protocol/message.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeRig, newVerifier, silentLog, startGateway, tempDir, type Rig } from '../support/archive.js';
import { makeSigner, signMessage } from '../support/archive-messages.js';

let gw: Awaited<ReturnType<typeof startGateway>>;
const rigs: Rig[] = [];
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  gw = await startGateway();
});
afterAll(async () => {
  for (const c of closers) await c();
  for (const r of rigs) await r.close();
  await gw?.gateway.stop();
});

const verifier = newVerifier();
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

/** Publishes a hand-made bundle (any content, any tags) with a fresh chain owner's wallet: how a forger or a buggy archiver would. */
class Forger {
  private constructor(readonly uplink: ArweaveUplink, readonly owner: string) {}
  static async make(): Promise<Forger> {
    const uplink = new ArweaveUplink(gw.arweave, await gw.arweave.wallets.generate(), { afterAccepted: () => gw.gateway.mine() });
    const owner = await uplink.owner();
    await gw.gateway.fund(owner);
    return new Forger(uplink, owner);
  }
  async publish(messages: RelationMessage[], meta: Partial<BundleMeta> & { seq: number; prevTx: string | null }, data?: string): Promise<string> {
    const body = data ?? `[${messages.map(canonicalJson).join(',')}]`;
    const full: BundleMeta = {
      count: messages.length, firstTs: messages[0]?.timestamp ?? 0, lastTs: messages[messages.length - 1]?.timestamp ?? 0, sha256: sha(body), ...meta,
    };
    const buf = Buffer.from(body);
    const tx = await this.uplink.sign(buf, bundleTags(full));
    await this.uplink.upload(tx, buf, null, async () => {});
    await this.uplink.afterAccepted();
    return tx.id;
  }
}

const alice = makeSigner();
const bob = makeSigner();
let t = alice.createdAt + 10_000;
const msgs = (n: number): RelationMessage[] => Array.from({ length: n }, () => signMessage(alice, { receiver: bob.address, timestamp: (t += 1000) }));

describe('archive reader: verify', () => {
  it('accepts a good chain made by the archiver and finds its head by GraphQL', async () => {
    const r = await makeRig(gw);
    rigs.push(r);
    const a = r.archiver();
    for (let i = 0; i < 3; i++) {
      await r.send(3);
      await a.runOnce(r.clock.now(), 'tick');
    }
    const head = (await r.archive.head())?.txid as string;
    expect(await findHead(gw.source, r.owner)).toBe(head);
    const progress: string[] = [];
    const report = await verifyChain(gw.source, head, verifier, (p) => progress.push(`${p.phase}:${p.bundle}/${p.bundles}`));
    expect(report).toEqual({ ok: true, head, owner: r.owner, bundles: 3, messages: 9, problems: [] });
    expect(progress).toEqual(['walk:1/0', 'walk:2/0', 'walk:3/0', 'verify:1/3', 'verify:2/3', 'verify:3/3']);
  });

  it('npm run archive -- verify: a JSON report and no progress with --json; progress lines and a summary without', async () => {
    const r = await makeRig(gw);
    rigs.push(r);
    const a = r.archiver();
    for (let i = 0; i < 2; i++) {
      await r.send(2);
      await a.runOnce(r.clock.now(), 'tick');
    }
    const head = (await r.archive.head())?.txid as string;
    const cli = (...args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/archive.ts', 'verify', '--gateway', gw.gateway.url, ...args], { env: { ...process.env, DATA_DIR: r.dir, VERIFY_WORKERS: '1' } });
    const json = await cli('--owner', r.owner, '--json', '--parallel', '2');
    expect(json.stderr).toBe('');
    const report = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({ ok: true, head, owner: r.owner, bundles: 2, messages: 4, problems: [] });
    expect(report['seconds']).toEqual(expect.any(Number));
    expect(report['messagesPerSecond']).toEqual(expect.any(Number));
    const text = await cli('--head', head);
    expect(text.stderr).toMatch(/verified bundle 2\/2 \(100%\), 4 message\(s\), \d+ msg\/s/);
    expect(text.stdout).toMatch(/2 bundle\(s\), 4 message\(s\) in [\d.]+ s \(\d+ messages\/s\)\nOK: the chain is complete/);
    await expect(cli('--head', head, '--parallel', '0')).rejects.toMatchObject({ code: 2 });
  }, 90_000);

  it('reports data that does not match its Data-SHA256, at its bundle', async () => {
    const f = await Forger.make();
    const tx1 = await f.publish(msgs(2), { seq: 1, prevTx: null });
    const tx2 = await f.publish(msgs(2), { seq: 2, prevTx: tx1, sha256: sha('something else') });
    const report = await verifyChain(gw.source, tx2, verifier);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([{ kind: 'tampered', seq: 2, txid: tx2, reason: expect.stringContaining(`Data-SHA256 says ${sha('something else')}`) }]);
  });

  it('reports a message whose content was changed (id mismatch) and one with a forged signature, by bundle, index and id', async () => {
    const f = await Forger.make();
    const [m0, m1, m2] = msgs(3) as [RelationMessage, RelationMessage, RelationMessage];
    const altered = { ...m1, payload: 'dGFtcGVyZWQ=' };
    const forged = { ...m2, sig: signMessage(makeSigner(), { receiver: bob.address }).sig };
    const tx1 = await f.publish([m0, altered, forged], { seq: 1, prevTx: null });
    const report = await verifyChain(gw.source, tx1, verifier);
    expect(report.problems).toEqual([
      { kind: 'invalid-message', seq: 1, txid: tx1, index: 1, messageId: m1.id, reason: expect.stringMatching(/^ID_MISMATCH/) },
      { kind: 'invalid-message', seq: 1, txid: tx1, index: 2, messageId: m2.id, reason: expect.stringMatching(/^INVALID_SIGNATURE/) },
    ]);
  });

  it('checks the delegation window of archived messages but not their age', async () => {
    const f = await Forger.make();
    const old = signMessage(alice, { receiver: bob.address, timestamp: alice.createdAt + 5 }); // long past: fine
    const outside = signMessage(alice, { receiver: bob.address, timestamp: alice.expiresAt + 1 });
    const tx1 = await f.publish([old, outside], { seq: 1, prevTx: null });
    const report = await verifyChain(gw.source, tx1, verifier);
    expect(report.problems).toEqual([
      { kind: 'invalid-message', seq: 1, txid: tx1, index: 1, messageId: outside.id, reason: expect.stringMatching(/^DELEGATION_EXPIRED/) },
    ]);
  });

  it('reports a gap in Bundle-Seq where Prev-Tx skips a bundle', async () => {
    const f = await Forger.make();
    const tx1 = await f.publish(msgs(1), { seq: 1, prevTx: null });
    const tx3 = await f.publish(msgs(1), { seq: 3, prevTx: tx1 });
    const report = await verifyChain(gw.source, tx3, verifier);
    expect(report.problems).toEqual([
      { kind: 'gap', seq: 3, txid: tx3, reason: `Prev-Tx points to bundle 1 (tx ${tx1}): bundles 2..2 are missing` },
    ]);
  });

  it('reports a fork: two bundles claiming the same place', async () => {
    const f = await Forger.make();
    const tx1 = await f.publish(msgs(1), { seq: 1, prevTx: null });
    const tx2 = await f.publish(msgs(1), { seq: 2, prevTx: tx1 });
    const rival = await f.publish(msgs(1), { seq: 2, prevTx: tx1 });
    const report = await verifyChain(gw.source, tx2, verifier);
    expect(report.problems).toEqual([
      { kind: 'fork', seq: 2, txid: rival, reason: `also claims Bundle-Seq 2 (Prev-Tx ${tx1}); the chain from the head has tx ${tx2} there` },
    ]);
  });

  it('reports a message archived twice, with both places', async () => {
    const f = await Forger.make();
    const [m0, m1] = msgs(2) as [RelationMessage, RelationMessage];
    const tx1 = await f.publish([m0, m1], { seq: 1, prevTx: null });
    const tx2 = await f.publish([m1], { seq: 2, prevTx: tx1 });
    const report = await verifyChain(gw.source, tx2, verifier);
    expect(report.problems).toEqual([
      { kind: 'duplicate', seq: 2, txid: tx2, index: 0, messageId: m1.id, reason: 'already archived as message #1 of bundle 1' },
    ]);
    expect(describeProblem(report.problems[0] as never)).toBe(`DUPLICATE [bundle 2, tx ${tx2}, message #0, id ${m1.id}]: already archived as message #1 of bundle 1`);
  });

  it('reports a Prev-Tx that leads nowhere, a wrong Message-Count and data that is not an array', async () => {
    const f = await Forger.make();
    const nowhere = 'x'.repeat(43);
    const tx2 = await f.publish(msgs(2), { seq: 2, prevTx: nowhere, count: 5 });
    const report = await verifyChain(gw.source, tx2, verifier);
    expect(report.problems).toEqual([
      { kind: 'not-found', seq: 1, txid: nowhere, reason: `Prev-Tx of bundle 2 (tx ${tx2}) names a transaction the gateway does not have` },
      { kind: 'count-mismatch', seq: 2, txid: tx2, reason: 'holds 2 messages, Message-Count says 5' },
    ]);
    const g = await Forger.make();
    const bad = await g.publish(msgs(1), { seq: 1, prevTx: null }, '{"not":"an array"}');
    expect((await verifyChain(gw.source, bad, verifier)).problems).toEqual([{ kind: 'malformed', seq: 1, txid: bad, reason: 'data is not a JSON array' }]);
  });
});

describe('archive reader: import', () => {
  it('loads a fresh proxy store from the chain in order, adopts the head, is idempotent, and the new proxy continues the same chain', async () => {
    const r = await makeRig(gw);
    rigs.push(r);
    const a = r.archiver();
    const sent: RelationMessage[] = [];
    for (let i = 0; i < 2; i++) {
      sent.push(...(await r.send(4)));
      await a.runOnce(r.clock.now(), 'tick');
    }
    const head = (await r.archive.head())?.txid as string;

    const dir = tempDir('import-');
    const file = path.join(dir, 'relation-im.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL' });
    const archive = new SqliteArchiveStore(file);
    closers.push(async () => {
      await archive.close();
      await store.close();
    });
    const report = await importChain(gw.source, head, { store, archive, verifier, commitBatchMax: 64 });
    expect(report).toEqual({ bundles: 2, imported: 8, alreadyPresent: 0, skippedBundles: 0 });
    const cid = `dm:${[r.alice.address, r.bob.address].map((x) => x.toLowerCase()).sort().join(':')}`;
    const events = await store.listEvents({ cid, viewer: r.alice.address.toLowerCase(), afterSeq: 0, limit: 100, offset: 0 });
    expect(events.map((e) => e.body)).toEqual(sent.map(canonicalJson));
    expect(events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(events.map((e) => e.receivedAt)).toEqual(sent.map((m) => m.timestamp));
    expect(await archive.head()).toMatchObject({ seq: 2, txid: head, status: 'confirmed' });

    // again: nothing new
    expect(await importChain(gw.source, head, { store, archive, verifier, commitBatchMax: 64 })).toEqual({ bundles: 2, imported: 0, alreadyPresent: 0, skippedBundles: 2 });

    // the new proxy, with the same wallet, archives only what is new, as bundle 3 after the old head
    const more = signMessage(r.alice, { receiver: r.bob.address, timestamp: (sent[7]?.timestamp ?? 0) + 1000 });
    await store.appendEvents([{
      cid, id: more.id, face: 0, kind: 0, sender: r.alice.address.toLowerCase(), ts: more.timestamp, receivedAt: more.timestamp,
      body: canonicalJson(more), counts: true, onlyFor: null, hides: null, participants: null,
    }]);
    const next = new Archiver(archive, r.uplink, r.clock, silentLog, {
      dataDir: dir, cron: '0 */12 * * *', sizeTriggerBytes: 1_000_000, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000, leaseMs: 30_000,
    });
    expect((await next.runOnce(r.clock.now(), 'tick')).confirmed).toEqual([3]);
    const newHead = (await archive.head())?.txid as string;
    const verified = await verifyChain(gw.source, newHead, verifier);
    expect(verified).toMatchObject({ ok: true, bundles: 3, messages: 9 });
    await next.stop();
  });

  it('refuses to import a broken chain, saying why', async () => {
    const f = await Forger.make();
    const tx1 = await f.publish(msgs(1), { seq: 1, prevTx: null });
    const tx3 = await f.publish(msgs(1), { seq: 3, prevTx: tx1 });
    const dir = tempDir('import-');
    const file = path.join(dir, 'relation-im.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL' });
    const archive = new SqliteArchiveStore(file);
    closers.push(async () => {
      await archive.close();
      await store.close();
    });
    await expect(importChain(gw.source, tx3, { store, archive, verifier, commitBatchMax: 64 })).rejects.toThrow(/GAP \[bundle 3.*bundles 2\.\.2 are missing/);
  });
});
