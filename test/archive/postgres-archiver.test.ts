/**
 * One archiver among processes on one PostgreSQL: two real archiving processes share the archive state;
 * the lease holder is killed with SIGKILL part way through the chunks of a bundle, and the other one
 * takes the lease over and finishes the same transaction. The chain verifies on the gateway.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createArchive } from '../../src/archive/create.js';
import { PostgresArchiveStore } from '../../src/archive/postgres/archive-store.js';
import { verifyChain } from '../../src/archive/reader/verify.js';
import { GroupCommitter } from '../../src/roles/chat/committer.js';
import { MessageService } from '../../src/roles/chat/message-service.js';
import { LocalHub } from '../../src/bus/hub.js';
import { NoRelations } from '../../src/roles/relations/none.js';
import { testConfig } from '../../src/config/config.js';
import { PostgresStore } from '../../src/store/postgres/postgres-store.js';
import { newVerifier, silentLog, startGateway, tempDir, TestClock } from '../support/archive.js';
import { makeSigner, signMessage } from '../support/archive-messages.js';
import { children, kill9, run } from '../support/child.js';
import { freshSchema } from '../support/pg.js';

let gw: Awaited<ReturnType<typeof startGateway>>;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  gw = await startGateway();
  await gw.gateway.mine();
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const c of closers) await c();
  await gw?.gateway.stop();
});

describe('archiving processes on one PostgreSQL', () => {
  it('elect one archiver; when it is killed mid-upload the other finishes the same transaction', async () => {
    const url = await freshSchema();
    const store = new PostgresStore({ url });
    await store.open();
    const state = await PostgresArchiveStore.open({ url });
    closers.push(async () => {
      await state.close();
      await store.close();
    });
    // six ~150 kB messages through the real MessageService: a bundle of several chunks
    const alice = makeSigner();
    const bob = makeSigner();
    const clock = new TestClock();
    const service = new MessageService({
      store, committer: new GroupCommitter(store, 512), verifier: newVerifier(), relations: new NoRelations(), push: new LocalHub(),
      clock, requireName: false, maxPending: Number.MAX_SAFE_INTEGER,
    });
    let t = alice.createdAt + 60_000;
    for (let i = 0; i < 6; i++) {
      t += 1000;
      clock.t = t;
      await service.submit(signMessage(alice, { receiver: bob.address, timestamp: t, payload: Buffer.from(`${i}`.padEnd(112_000, 'x')).toString('base64') }));
    }
    const dir = tempDir('pg-archivers-');
    const wallet = path.join(dir, 'wallet.json');
    const jwk = await gw.arweave.wallets.generate();
    writeFileSync(wallet, JSON.stringify(jwk));
    const owner = await gw.arweave.wallets.jwkToAddress(jwk);
    await gw.gateway.fund(owner);
    const env = (name: string) => ({
      CHILD_MODE: 'archive', CHILD_PG_URL: url, CHILD_DATA_DIR: path.join(dir, name), CHILD_GATEWAY: gw.gateway.url, CHILD_WALLET: wallet,
      CHILD_UNTIL: '1', CHILD_LEASE_MS: '4000',
    });

    const a = run({ ...env('a'), CHILD_PAUSE_AT: 'chunk:3' });
    await a.waitFor(/^STEP cut 1$/); // a holds the lease
    const b = run(env('b'));
    await b.waitFor(/^STEP lease-held-elsewhere$/); // b runs, and stands by
    await a.waitFor(/^AT chunk:3$/);
    const signed = await state.getBundle(1);
    expect(signed?.txid).toBeTruthy();
    const leaseOfA = await state.lease();
    await kill9(a);

    const done = await b.waitFor(/^DONE /);
    expect(await b.exited).toBe(0);
    expect(JSON.parse(done.slice(5))).toEqual({ seq: 1, txid: signed?.txid });
    const lease = await state.lease();
    expect(lease?.holder).not.toBe(leaseOfA?.holder);
    expect(lease?.token).toBeGreaterThan(leaseOfA?.token as number);
    expect(b.lines.some((l) => l.startsWith('STEP chunk:'))).toBe(true); // b went on with the chunks
    expect(await gw.source.bundlesOf(owner)).toHaveLength(1);
    const report = await verifyChain(gw.source, signed?.txid as string, newVerifier());
    expect(report.problems).toEqual([]);
    expect(report).toMatchObject({ ok: true, bundles: 1, messages: 6 });
  }, 120_000);

  it('createArchive with STORE=postgres keeps the state in the database and archives from it', async () => {
    const url = await freshSchema();
    const store = new PostgresStore({ url });
    await store.open();
    closers.push(() => store.close());
    const dir = tempDir('pg-create-');
    const wallet = path.join(dir, 'wallet.json');
    const jwk = await gw.arweave.wallets.generate();
    writeFileSync(wallet, JSON.stringify(jwk));
    await gw.gateway.fund(await gw.arweave.wallets.jwkToAddress(jwk));
    const config = testConfig({ store: 'postgres', databaseUrl: url, dataDir: dir, archiveGatewayUrl: gw.gateway.url, archiveWalletFile: wallet, archiveConfirmations: 1 });
    const archive = await createArchive(config, path.join(dir, 'unused.sqlite'), silentLog);
    closers.push(() => archive.close());
    expect(archive.store).toBeInstanceOf(PostgresArchiveStore);
    const alice = makeSigner();
    const bob = makeSigner();
    const clock = new TestClock(alice.createdAt + 61_000);
    const service = new MessageService({
      store, committer: new GroupCommitter(store, 512), verifier: newVerifier(), relations: new NoRelations(), push: new LocalHub(),
      clock, requireName: false, maxPending: Number.MAX_SAFE_INTEGER,
    });
    await service.submit(signMessage(alice, { receiver: bob.address, timestamp: clock.t }));
    const res = await archive.archiver.runOnce(Date.now(), 'tick');
    if (res.confirmed.length === 0) {
      // the gateway mined once after posting: one confirmation, enough here; a slow gateway may need one more pass
      await gw.gateway.mine();
      await archive.archiver.runOnce(Date.now(), 'poll');
    }
    const status = await archive.archiver.status();
    expect(status.head).toMatchObject({ seq: 1 });
    expect((await verifyChain(gw.source, status.head?.txid as string, newVerifier())).ok).toBe(true);
  });
});
