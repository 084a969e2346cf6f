import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { privatePostgres, type PrivatePostgres } from '../support/pg-private.js';
import { http, startServer, type TestServer } from '../support/server.js';

interface Ready { ready: boolean; store: { ok: boolean; error?: string }; bus: { ok: boolean; kind: string } }

/** GET /ready tells the truth about the store: red while PostgreSQL is down, green again by itself. */
describe('GET /ready through a database outage', () => {
  let pgp: PrivatePostgres;
  let srv: TestServer;
  beforeAll(async () => {
    pgp = await privatePostgres();
    srv = await startServer({ store: 'postgres', databaseUrl: pgp.url, requireName: false });
  }, 120_000);
  afterAll(async () => {
    await srv?.close();
    pgp?.destroy();
  });
  const ready = async (): Promise<{ status: number; body: Ready }> => {
    const r = await http(srv.url, 'GET', '/ready');
    return { status: r.status, body: r.json as Ready };
  };
  const until = async (cond: () => Promise<boolean>, what: string): Promise<void> => {
    const end = Date.now() + 30_000;
    while (!(await cond())) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };

  it('is 200 with both parts ok, 503 naming the store while it is down, and 200 once it is back', async () => {
    expect(await ready()).toEqual({ status: 200, body: { ready: true, store: { ok: true }, bus: { ok: true, kind: 'local', peers: 0, losses: 0 } } });
    pgp.stop('fast');
    await until(async () => (await ready()).status === 503, 'red');
    const red = (await ready()).body;
    expect(red).toMatchObject({ ready: false, store: { ok: false }, bus: { ok: true } });
    expect(typeof red.store.error).toBe('string');
    // /health still answers: the process lives.
    expect((await http(srv.url, 'GET', '/health')).status).toBe(200);
    pgp.start();
    await until(async () => (await ready()).status === 200, 'green again');
  }, 60_000);
});
