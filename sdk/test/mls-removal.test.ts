import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { RelationActions } from '../../src/roles/relations/chain/demo.js';
import { ethersProvider } from '../../src/roles/relations/chain/eip1193.js';
import { RelationClient } from '../src/client.js';
import type { IncomingMessage, UndecryptableInfo } from '../src/connection.js';
import type { WebSocketCtor } from '../src/live.js';
import { MlsEncryptor } from '../src/mls/mls-encryptor.js';
import { privateKeySigner } from '../src/signer.js';
import { MemoryStorage } from '../src/storage.js';
import { startDemo, until, type Demo } from './support.js';

// SPEC section 10 / docs/e2ee.md section 6: when a DAO token leaves a holder, the proxy's chain watcher
// proposes, as the group's external sender, the removal of that wallet's leaves; a member's client commits
// it, and the removed wallet cannot read anything sent after. Real server, real in-process chain.
const live = { heartbeatMs: 2_000, backoffBaseMs: 50, backoffCapMs: 400 };

interface Dev { client: RelationClient; mls: MlsEncryptor; got: IncomingMessage[]; bad: UndecryptableInfo[] }

describe('MLS: a holder whose token left is removed from the DAO group', () => {
  let demo: Demo;
  const all: Dev[] = [];

  async function dev(who: keyof Demo['keys']): Promise<Dev> {
    const client = new RelationClient({ baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys[who]), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live });
    const d: Dev = { client, mls: client.encryptor as MlsEncryptor, got: [], bad: [] };
    client.on('message', (m) => d.got.push(m));
    client.on('undecryptable', (u) => d.bad.push(u));
    all.push(d);
    await client.start();
    await until(() => client.connection.connected, 30_000, `${who} connected`);
    return d;
  }
  const texts = async (d: Dev): Promise<(string | null)[]> => Promise.all(d.got.map((m) => d.client.decrypt(m.message)));

  beforeAll(async () => {
    demo = await startDemo({ allowDevPlaintext: false, relationsRefreshMs: 200 });
  }, 120_000);
  afterAll(async () => {
    for (const d of all) d.client.close();
    await demo?.close();
  });

  it('the proxy proposes the removal, a member commits it, and the removed member reads nothing after', async () => {
    const alice = await dev('alice');
    const bob = await dev('bob');
    const carol = await dev('carol');
    for (const d of [alice, bob, carol]) await d.mls.join(demo.dao, 1);
    const before = `before the removal ${Date.now()}`;
    await alice.client.send(demo.dao, before, { kind: 1 });
    for (const d of [bob, carol]) await until(async () => (await texts(d)).includes(before), 30_000, 'everyone reads the first message');

    // carol leaves the DAO on chain (her token is burnt).
    const provider = ethersProvider(demo.chain.chain!, demo.chain.chain!.chainId);
    await new RelationActions(demo.chain.addresses).remove(new Wallet(demo.keys.carol, provider), demo.dao, new Wallet(demo.keys.carol).address);

    // The watcher proposes, alice's or bob's client commits: carol's device leaves the group.
    await until(async () => {
      const m = await alice.mls.members(demo.dao);
      return m !== null && !m.some((x) => x.wallet === new Wallet(demo.keys.carol).address.toLowerCase());
    }, 30_000, 'carol removed from alice\'s group');
    const proposals = (await alice.client.rest.list({ chatId: demo.dao, limit: 100 })).filter((m) => 'type' in m && m.type === 'MLS');
    expect(proposals.length).toBeGreaterThan(0);

    const after = `after the removal ${Date.now()}`;
    await until(async () => {
      // The first send may meet the commit still in flight (MLS_COMMIT_REQUIRED, retried by the SDK).
      await alice.client.send(demo.dao, after, { kind: 1 });
      return true;
    }, 30_000, 'alice sends after the removal');
    await until(async () => (await texts(bob)).includes(after), 30_000, 'bob reads after the removal');
    // carol is no member any more: the server pushes her nothing new, and what she can fetch she cannot open.
    expect(await texts(carol)).not.toContain(after);
    // Her device kept the state of the epoch before her removal; the group moved on without her leaf.
    expect(await carol.mls.epochAuthHash(demo.dao)).not.toBe(await alice.mls.epochAuthHash(demo.dao));
    const refused = await carol.client.rest.list({ chatId: demo.dao, limit: 10 }).catch((e: unknown) => e);
    expect((refused as { code?: string }).code).toBe('NOT_MEMBER');
  }, 120_000);
});
