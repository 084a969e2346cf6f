import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from '../support/bus-servers.js';
import { freshDatabase } from '../support/pg.js';
import { http, startServer, type TestServer } from '../support/server.js';

/**
 * RATE_LIMIT_STORE=redis|postgres: processes that share the store share the counts, so a client gets the
 * documented rate from the deployment, not from each process. Two servers stand in for two processes;
 * the "clients" are named by X-Forwarded-For from a trusted proxy (127.0.0.1).
 */
const nonce = (srv: TestServer, client: string): Promise<number> =>
  http(srv.url, 'GET', '/auth/nonce', { headers: { 'x-forwarded-for': client } }).then((r) => r.status);

describe('rate limits shared by the processes of a deployment (RATE_LIMIT_STORE)', () => {
  const servers: TestServer[] = [];
  afterEach(async () => { await Promise.all(servers.splice(0).map((s) => s.close())); });

  const two = async (extra: Record<string, unknown>): Promise<[TestServer, TestServer]> => {
    const prefix = `rim-rl-${randomBytes(6).toString('hex')}`;
    for (let i = 0; i < 2; i++) {
      servers.push(await startServer({ rateLimitExempt: [], trustedProxies: ['127.0.0.1'], rateNoncePerMin: 4, busPrefix: prefix, ...extra }));
    }
    return servers as [TestServer, TestServer];
  };

  for (const store of ['redis', 'postgres'] as const) {
    it(`counts one client over both processes with ${store}, and leaves another client alone`, async () => {
      const [a, b] = await two(store === 'redis'
        ? { rateLimitStore: 'redis', redisUrl: 'redis://127.0.0.1:6379' }
        : { rateLimitStore: 'postgres', databaseUrl: await freshDatabase('rim_rl') });
      const got: number[] = [];
      for (let i = 0; i < 6; i++) got.push(await nonce(i % 2 === 0 ? a : b, '203.0.113.1'));
      expect(got).toEqual([200, 200, 200, 200, 429, 429]); // 4 per minute in all, not 4 per process
      expect([await nonce(a, '203.0.113.2'), await nonce(b, '203.0.113.2')]).toEqual([200, 200]);
      const metrics = await http(a.url, 'GET', '/metrics');
      expect(metrics.text).not.toMatch(/rim_rate_limit_store_errors_total\{store="/);
    });
  }

  it('counts per process, and counts each failure in rim_rate_limit_store_errors_total, while the shared store cannot be reached', async () => {
    const dead = await freePort(); // nothing listens there
    const [a, b] = await two({ rateLimitStore: 'redis', redisUrl: `redis://127.0.0.1:${dead}` });
    const onA: number[] = [];
    const onB: number[] = [];
    for (let i = 0; i < 5; i++) onA.push(await nonce(a, '203.0.113.3'));
    for (let i = 0; i < 5; i++) onB.push(await nonce(b, '203.0.113.3'));
    // Still limited, each process on its own: neither open nor closed.
    expect(onA).toEqual([200, 200, 200, 200, 429]);
    expect(onB).toEqual([200, 200, 200, 200, 429]);
    const metrics = await http(a.url, 'GET', '/metrics');
    const n = Number(/rim_rate_limit_store_errors_total\{store="redis"\} (\d+)/.exec(metrics.text)?.[1] ?? 0);
    expect(n).toBeGreaterThanOrEqual(5);
  });
});
