import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importChain } from '../../src/archive/reader/import.js';
import { findHead } from '../../src/archive/reader/walk.js';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { testConfig } from '../../src/config/config.js';
import { RelationActions } from '../../src/roles/relations/chain/demo.js';
import { ethersProvider } from '../../src/roles/relations/chain/eip1193.js';
import { startChainRelations, type StartedRelations } from '../../src/roles/relations/chain/setup.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { newVerifier, startGateway } from '../../test/support/archive.js';
import { startServer, type TestServer } from '../../test/support/server.js';
import { conversationId } from '../src/mls/mls-encryptor.js';
import { mlsDevices, until, type MlsDev } from './support.js';

// Issue 17 / docs/e2ee.md section 8: handshakes are archived like every message, so a proxy rebuilt from
// Arweave (`archive import`: a new store with a new store epoch, same archive wallet) keeps every
// conversation readable for its members; what the archive does not hold (KeyPackages, GroupInfo) the
// clients upload again when they see the store epoch change. Real server, real chain, real arlocal.

describe('MLS: a conversation goes on after the proxy is rebuilt from Arweave', () => {
  let chain: StartedRelations;
  let gw: Awaited<ReturnType<typeof startGateway>>;
  let walletFile: string;
  let srv: TestServer | null = null;
  let mining: ReturnType<typeof setInterval>;
  const keys: Record<string, string> = {};
  let dao = '';

  const archiveConfig = () => ({
    chain: 'embedded' as const, requireName: true, allowDevPlaintext: false, relationsRefreshMs: 200,
    archiveEnabled: true, archiveGatewayUrl: gw.gateway.url, archiveWalletFile: walletFile,
    archiveCron: '* * * * * *', archivePollMs: 200, archiveConfirmations: 1,
  });

  const { dev, texts, reads, closeAll } = mlsDevices(() => ({ url: srv!.url, key: (who) => keys[who]! }));
  /** Every text the rebuilt store serves for a chat, as this device opens it. */
  const history = async (d: MlsDev, chatId: string): Promise<(string | null)[]> => {
    const items = (await d.client.rest.list({ chatId, limit: 200 })).filter((m) => 'id' in m && m.type !== 'MLS');
    return Promise.all(items.map((m) => d.client.decrypt(m as never)));
  };

  beforeAll(async () => {
    chain = await startChainRelations(testConfig({ chain: 'embedded' }));
    const ids = chain.demo!.identities;
    for (const l of ['alice', 'bob', 'carol']) keys[l] = ids.find((i) => i.label === l)!.privateKey;
    dao = chain.demo!.dao.address;
    gw = await startGateway();
    // The archive wallet outlives the proxy: the operator keeps it and hands it to the rebuilt one.
    const jwk = await gw.arweave.wallets.generate();
    await gw.gateway.fund(await gw.arweave.wallets.jwkToAddress(jwk));
    walletFile = path.join(mkdtempSync(path.join(tmpdir(), 'rim-wallet-')), 'archive-wallet.json');
    writeFileSync(walletFile, JSON.stringify(jwk), { mode: 0o600 });
    mining = setInterval(() => void gw.gateway.mine().catch(() => undefined), 300);
    srv = await startServer(archiveConfig(), { relations: chain.reader });
  }, 120_000);
  afterAll(async () => {
    closeAll();
    clearInterval(mining);
    await srv?.close();
    await gw?.gateway.stop();
    await chain?.close();
  });

  it('alice and bob chat in a DM and the DAO group; a new proxy imported from the archive carries both on', async () => {
    const alice = await dev('alice');
    const bob = await dev('bob');
    const dm = conversationId(alice.client.address, bob.client.address, 0);
    for (const d of [alice, bob]) await d.mls.join(dao, 1);
    const old = { dm1: `dm before the rebuild ${Date.now()}`, dm2: `dm reply before ${Date.now()}`, g1: `group before the rebuild ${Date.now()}` };
    await alice.client.send(bob.client.address, old.dm1);
    await until(() => reads(bob, old.dm1), 30_000, 'bob reads the dm');
    await bob.client.send(alice.client.address, old.dm2);
    await alice.client.send(dao, old.g1, { kind: 1 });
    await until(async () => (await reads(alice, old.dm2)) && (await reads(bob, old.g1)), 30_000, 'both read before the rebuild');
    const epochs = { dm: await alice.mls.epochOf(dm), dao: await alice.mls.epochOf(dao) };

    // Everything is in confirmed bundles on the gateway.
    const first = srv!;
    await until(async () => {
      const s = await (await fetch(`${first.url}/archive/status`)).json() as { unarchived: { messages: number }; head: { seq: number } | null; lastBundle: { status: string } | null };
      return s.unarchived.messages === 0 && s.head !== null && s.lastBundle?.status === 'confirmed';
    }, 40_000, 'everything archived and confirmed');
    const port = Number(new URL(first.url).port);
    const oldEpoch = await first.app.store.epoch();
    await first.close();
    srv = null;

    // The rebuild: an empty DATA_DIR, the import from the gateway (as `npm run archive -- import --owner`),
    // then the proxy started on it with the same archive wallet, at the same address.
    const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-rebuilt-'));
    const owner = await gw.arweave.wallets.jwkToAddress(JSON.parse(readFileSync(walletFile, 'utf8')));
    const head = await findHead(gw.source, owner);
    expect(head).not.toBeNull();
    const file = path.join(dataDir, 'relation-im.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL' });
    const archive = new SqliteArchiveStore(file);
    const report = await importChain(gw.source, head!, { store, archive, verifier: newVerifier(), commitBatchMax: 64 });
    expect(report.imported).toBeGreaterThan(0);
    // The rebuilt store ordered the same commits: the group epochs are where the clients are.
    expect((await store.mlsGroup(dm)).epoch).toBe(Number(epochs.dm));
    expect((await store.mlsGroup(dao.toLowerCase())).epoch).toBe(Number(epochs.dao));
    await archive.close();
    await store.close();
    srv = await startServer({ ...archiveConfig(), port, dataDir }, { relations: chain.reader });
    expect(await srv.app.store.epoch()).not.toBe(oldEpoch);

    // The clients reconnect by themselves, see the new store epoch and upload what the archive lacks.
    for (const d of [alice, bob]) {
      await until(async () => d.client.connection.connected && (await d.mls.storeEpochSeen()) === (await srv!.app.store.epoch()), 30_000, 'reconnected to the rebuilt proxy');
    }
    for (const d of [alice, bob]) {
      await until(async () => {
        const devs = await d.client.rest.mlsDevices(d.client.address).catch(() => null);
        return devs !== null && devs.devices.some((x) => x.deviceId === d.mls.deviceId && x.available > 0 && x.lastResort);
      }, 30_000, 'KeyPackages uploaded again');
    }
    for (const cid of [dm, dao]) {
      await until(async () => {
        const g = await alice.client.rest.mlsGroup(cid).catch(() => null);
        return g !== null && g.groupInfo !== null && g.groupInfoEpoch === g.epoch;
      }, 30_000, `GroupInfo of ${cid} uploaded again`);
    }
    // The DM did not move; the DAO group moved by one commit, the members' replacement of its external
    // sender (exactly one: the store's compare-and-set took one member's, the other caught up).
    expect((await alice.client.rest.mlsGroup(dm)).epoch).toBe(Number(epochs.dm));
    expect((await alice.client.rest.mlsGroup(dao)).epoch).toBe(Number(epochs.dao) + 1);

    // The old history is served by the rebuilt store and reads on both sides.
    expect(await history(alice, bob.client.address)).toEqual(expect.arrayContaining([old.dm1, old.dm2]));
    expect(await history(bob, alice.client.address)).toEqual(expect.arrayContaining([old.dm1, old.dm2]));
    expect(await history(bob, dao)).toContain(old.g1);

    // New messages both ways, in both conversations.
    const now = { dm1: `dm after the rebuild ${Date.now()}`, dm2: `dm reply after ${Date.now()}`, g1: `group after the rebuild ${Date.now()}` };
    await alice.client.send(bob.client.address, now.dm1);
    await until(() => reads(bob, now.dm1), 30_000, 'bob reads after the rebuild');
    await bob.client.send(alice.client.address, now.dm2);
    await bob.client.send(dao, now.g1, { kind: 1 });
    await until(async () => (await reads(alice, now.dm2)) && (await reads(alice, now.g1)), 30_000, 'alice reads after the rebuild');

    // What the archive lacks is enough for a newcomer: carol joins the DAO group by external commit from
    // the re-uploaded GroupInfo, and a second device of bob is added to the DM from its re-uploaded KeyPackages.
    const carol = await dev('carol');
    await carol.mls.join(dao, 1);
    const g2 = `group to carol too ${Date.now()}`;
    await alice.client.send(dao, g2, { kind: 1 });
    await until(async () => (await reads(carol, g2)) && (await reads(bob, g2)), 30_000, 'carol and bob read');
    const bob2 = await dev('bob');
    const d2 = `dm to both of bob's devices ${Date.now()}`;
    await alice.client.send(bob.client.address, d2);
    await until(async () => (await reads(bob2, d2)) && (await reads(bob, d2)), 30_000, 'both of bob\'s devices read');
    expect(await alice.mls.epochAuthHash(dm)).toBe(await bob.mls.epochAuthHash(dm));
    expect(await alice.mls.epochAuthHash(dao)).toBe(await carol.mls.epochAuthHash(dao));
    // Nothing the members could read was reported unreadable (carol and bob2 joined later: not members then).
    expect(alice.bad.concat(bob.bad)).toEqual([]);

    // Removal still works on the rebuilt proxy, whose external-sender key is new (it lives in the store's
    // metadata, not in the archive): the members replaced the group's external_senders entry when they
    // saw the store epoch change, so the new key's Remove proposal is accepted and committed.
    const ext = await alice.client.rest.mlsExternalSender();
    expect(await alice.mls.externalSenderKeys(dao)).toEqual([ext.signatureKey]);
    const provider = ethersProvider(chain.chain!, chain.chain!.chainId);
    const carolAddr = new Wallet(keys.carol!).address;
    await new RelationActions(chain.addresses).remove(new Wallet(keys.carol!, provider), dao, carolAddr);
    await until(async () => !((await alice.mls.members(dao)) ?? []).some((m) => m.wallet === carolAddr.toLowerCase()), 30_000, 'carol removed on the rebuilt proxy');
    const g3 = `group after carol left ${Date.now()}`;
    await until(async () => {
      await alice.client.send(dao, g3, { kind: 1 });
      return true;
    }, 30_000, 'alice sends after the removal');
    await until(() => reads(bob, g3), 30_000, 'bob reads after the removal');
    expect(await reads(carol, g3)).toBe(false);
    expect(await carol.mls.epochAuthHash(dao)).not.toBe(await alice.mls.epochAuthHash(dao));
  }, 150_000);
});
