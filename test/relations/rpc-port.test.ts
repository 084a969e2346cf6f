import { JsonRpcProvider, Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig } from '../../src/config/config.js';
import { RelationActions } from '../../src/roles/relations/chain/demo.js';
import { startChainRelations, type StartedRelations } from '../../src/roles/relations/chain/setup.js';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

const REFRESH_MS = 300;

/**
 * The embedded chain on its JSON-RPC port (CHAIN_RPC_PORT): real transactions sent from outside, as a
 * wallet would send them, change who may read and write. Documented bound for a removal:
 * RELATIONS_REFRESH_MS plus one poll (each call bounded by RELATIONS_RPC_TIMEOUT_MS).
 */
describe('the embedded chain on its JSON-RPC port', () => {
  let started: StartedRelations;
  let srv: TestServer;
  let rpc: JsonRpcProvider;
  let dao: string;
  const who: Record<'alice' | 'bob' | 'carol' | 'dave', Identity> = {} as never;
  const keys: Record<string, string> = {};
  beforeAll(async () => {
    started = await startChainRelations(testConfig({ chain: 'embedded', chainRpcPort: 0, relationsRefreshMs: REFRESH_MS }));
    expect(started.rpcUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    rpc = new JsonRpcProvider(started.rpcUrl, 31337, { staticNetwork: true, cacheTimeout: -1 });
    for (const id of started.demo?.identities ?? []) {
      who[id.label as keyof typeof who] = makeIdentity({ wallet: new Wallet(id.privateKey) });
      keys[id.label] = id.privateKey;
    }
    dao = started.demo?.dao.address.toLowerCase() ?? '';
    srv = await startServer({ requireName: true }, { relations: started.reader });
  }, 60_000);
  afterAll(async () => {
    rpc?.destroy();
    await srv?.close();
    await started?.close();
  });
  const wallet = (label: string): Wallet => new Wallet(keys[label] as string, rpc);
  const actions = (): RelationActions => new RelationActions(started.addresses);

  it('answers JSON-RPC from outside: single calls, batches, errors', async () => {
    expect(await rpc.getNetwork().then((n) => n.chainId)).toBe(31337n);
    const res = await fetch(started.rpcUrl as string, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }, { jsonrpc: '2.0', id: 2, method: 'no_such_method', params: [] }]),
    });
    const [a, b] = (await res.json()) as { id: number; result?: string; error?: { code: number } }[];
    expect(a).toMatchObject({ id: 1, result: '0x7a69' });
    expect(b?.id).toBe(2);
    expect(b?.error?.code).toBeTypeOf('number');
    const junk = (await (await fetch(started.rpcUrl as string, { method: 'POST', body: '{oops' })).json()) as { error: { code: number } };
    expect(junk.error.code).toBe(-32700);
  });

  it('a join sent through the port lets the new member write; a removal by the owner stops pushes, reads and sends', async () => {
    // dave joins the free-join demo DAO with his own transaction
    await actions().join(wallet('dave'), dao);
    const daveToken = await login(srv.url, who.dave);
    await expect.poll(async () => (await http(srv.url, 'POST', '/message/send', { body: signedMessage(who.dave, { receiver: dao, kind: 1 }) })).status, { timeout: 30_000, interval: 100 }).toBe(200);

    const bobToken = await login(srv.url, who.bob);
    const bobWs = await WsClient.open(srv.wsUrl, bobToken);
    const bobIm = await ImClient.open(imUrl(srv.wsUrl), bobToken);
    try {
      const hello = signedMessage(who.carol, { receiver: dao, kind: 1 });
      expect((await http(srv.url, 'POST', '/message/send', { body: hello })).status).toBe(200);
      await bobWs.next((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === hello.id);
      await bobIm.push((e) => e.get(1) === dao);

      // the owner (alice) removes bob in a real transaction through the port
      const removedAt = Date.now();
      await actions().remove(wallet('alice'), dao, who.bob.address);
      await expect.poll(async () => bobIm.err(3, { 1: dao, 2: 1, 7: { 0: 'am I still in?' } }).catch(() => 'ok'), { timeout: 30_000, interval: 50 }).toBe('NOT_MEMBER');
      const tookMs = Date.now() - removedAt;
      process.stdout.write(`removal through the RPC port took effect after ${tookMs} ms (RELATIONS_REFRESH_MS=${REFRESH_MS})\n`);

      // sends refused on both faces
      const late = await http(srv.url, 'POST', '/message/send', { body: signedMessage(who.bob, { receiver: dao, kind: 1 }) });
      expect(late.status).toBe(403);
      expect(late.json).toMatchObject({ error: { code: 'NOT_MEMBER' } });
      // reads refused on both faces
      const list = await http(srv.url, 'GET', `/message/list?chatId=${dao}`, { token: bobToken });
      expect(list.status).toBe(403);
      expect(list.json).toMatchObject({ error: { code: 'NOT_MEMBER' } });
      expect(await bobIm.err(7, { 0: dao })).toBe('NOT_MEMBER');
      // pushes stop: a group message after the removal does not reach bob, a direct message after it does
      const groupPushesBefore = bobIm.pushes.filter((e: M) => e.get(1) === dao).length;
      const after = signedMessage(who.carol, { receiver: dao, kind: 1 });
      expect((await http(srv.url, 'POST', '/message/send', { body: after })).status).toBe(200);
      const marker = signedMessage(who.carol, { receiver: who.bob.address });
      expect((await http(srv.url, 'POST', '/message/send', { body: marker })).status).toBe(200);
      await bobWs.next((f) => f['type'] === 'message' && (f['message'] as { id: string }).id === marker.id);
      expect(bobWs.all.some((f) => (f['message'] as { id?: string } | undefined)?.id === after.id)).toBe(false);
      await bobIm.push((e) => typeof e.get(1) === 'string' && (e.get(1) as string).startsWith('dm:'));
      expect(bobIm.pushes.filter((e: M) => e.get(1) === dao)).toHaveLength(groupPushesBefore);
      expect(daveToken).toBeTruthy();
    } finally {
      bobWs.close();
      bobIm.close();
    }
  }, 120_000);

  it('a member leaving by itself (burning its token) through the port loses access too', async () => {
    await actions().remove(wallet('carol'), dao, who.carol.address);
    await expect.poll(async () => (await http(srv.url, 'POST', '/message/send', { body: signedMessage(who.carol, { receiver: dao, kind: 1 }) })).status, { timeout: 30_000, interval: 100 }).toBe(403);
  }, 60_000);
});
