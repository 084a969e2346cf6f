import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Wallet } from 'ethers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, testConfig } from '../../src/config/config.js';
import { isAppError } from '../../src/errors/app-error.js';
import { deployRelationContracts } from '../../src/roles/relations/chain/deploy.js';
import { seedDemo } from '../../src/roles/relations/chain/demo.js';
import { ethersProvider } from '../../src/roles/relations/chain/eip1193.js';
import { LocalChain } from '../../src/roles/relations/chain/local-chain.js';
import { startChainRelations } from '../../src/roles/relations/chain/setup.js';

const sorted = (xs: string[]): string[] => [...xs].sort();

describe('startChainRelations', () => {
  it('CHAIN=embedded brings up the chain with the contracts and the demo identities', async () => {
    const started = await startChainRelations(testConfig({ chain: 'embedded', relationsRefreshMs: 3_600_000, chainRpcPort: -1 }));
    try {
      const demo = started.demo;
      expect(demo?.identities.map((i) => i.name)).toEqual(['alice.rel', 'bob.rel', 'carol.rel', 'dave.rel']);
      const [alice, bob, carol, dave] = demo?.identities ?? [];
      const r = started.reader;
      expect(await r.profile(alice?.address ?? '')).toEqual({ name: 'alice.rel', avatar: alice?.avatar });
      expect(await r.friends(alice?.address ?? '')).toEqual([bob?.address]);
      expect(sorted(await r.followers(alice?.address ?? ''))).toEqual(sorted([bob?.address ?? '', carol?.address ?? '']));
      const group = await r.group(demo?.dao.address ?? '');
      expect(group).toMatchObject({ name: 'Relation Demo', owner: alice?.address, freeJoin: true });
      expect(sorted(await r.members(demo?.dao.address ?? ''))).toEqual(sorted(demo?.dao.members ?? []));
      expect(await r.isMember(demo?.dao.address ?? '', dave?.address ?? '')).toBe(false);
    } finally {
      await started.close();
    }
  });

  describe('CHAIN=rpc over HTTP', () => {
    let chain: LocalChain;
    let server: Server;
    let url: string;
    let env: Record<string, string>;
    let demoDao: string;
    let alice: string;

    beforeAll(async () => {
      chain = await LocalChain.start();
      // The in-process chain served as a plain HTTP JSON-RPC endpoint on loopback.
      server = createServer((req, res) => {
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () => {
          const call = JSON.parse(body) as { id: number; method: string; params: unknown[] };
          chain.request(call).then(
            (result) => res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result })),
            (e: { code?: number; message: string; data?: unknown }) =>
              res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, error: { code: e.code ?? -32000, message: e.message, data: e.data } })),
          );
        });
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const provider = ethersProvider(chain, chain.chainId);
      const addresses = await deployRelationContracts(new Wallet(chain.keys[0] as string, provider));
      const world = await seedDemo(provider, addresses, chain.keys.slice(1));
      demoDao = world.dao.address;
      alice = world.dao.owner;
      env = {
        CHAIN: 'rpc',
        RPC_URL: url,
        NAME_SERVICE_ADDRESS: addresses.nameService,
        FOLLOW_REGISTER_ADDRESS: addresses.followRegister,
        DAO_REGISTER_ADDRESS: addresses.daoRegister,
        RELATIONS_REFRESH_MS: '3600000',
        RELATIONS_RPC_TIMEOUT_MS: '1000',
        RELATIONS_MAX_STALE_MS: '0',
      };
    });

    afterAll(async () => {
      await chain.close();
      server.close();
    });

    it('reads the contracts at the configured addresses, and fails cleanly once the RPC is gone', async () => {
      const started = await startChainRelations(loadConfig(env));
      try {
        expect((await started.reader.group(demoDao))?.owner).toBe(alice);
        expect(await started.reader.isMember(demoDao, alice)).toBe(true);
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        const err = await started.reader.members(demoDao).then(() => undefined, (e: unknown) => e);
        expect(isAppError(err, 'RELATIONS_UNAVAILABLE')).toBe(true);
      } finally {
        await started.close();
      }
    });
  });
});

describe('relation configuration', () => {
  it('defaults to the embedded chain with bounded refresh, TTL, timeout and staleness', () => {
    const c = loadConfig({});
    expect(c.chain).toBe('embedded');
    expect(c.relationsRefreshMs).toBeGreaterThan(0);
    expect(c.relationsRpcTimeoutMs).toBeGreaterThan(0);
  });

  it('refuses CHAIN=rpc without an RPC URL and the three contract addresses, listing every problem', () => {
    let err: unknown;
    try {
      loadConfig({ CHAIN: 'rpc', NAME_SERVICE_ADDRESS: '0x1234' });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems.join('\n');
    for (const key of ['RPC_URL', 'NAME_SERVICE_ADDRESS', 'FOLLOW_REGISTER_ADDRESS', 'DAO_REGISTER_ADDRESS']) expect(problems).toContain(key);
  });
});
