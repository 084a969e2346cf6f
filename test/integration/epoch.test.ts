import { describe, expect, it } from 'vitest';
import type { Config } from '../../src/config/config.js';
import { ImClient, imUrl } from '../support/im-client.js';
import { makeIdentity, signedMessage } from '../support/messages.js';
import { freshSchema } from '../support/pg.js';
import { http, login, startServer, WsClient } from '../support/server.js';
import { tempDir } from '../support/tmp.js';

/** Every place a client is told the store's epoch, read from one running server; all must agree. */
async function announced(overrides: Partial<Config>): Promise<string> {
  const srv = await startServer({ requireName: false, ...overrides });
  try {
    const alice = makeIdentity();
    const bob = makeIdentity();
    const token = await login(srv.url, alice);
    expect((await http(srv.url, 'POST', '/message/send', { body: signedMessage(alice, { receiver: bob.address }) })).status).toBe(200);
    const seen: string[] = [];
    // REST: the list answers stay bare arrays; the epoch is a header
    for (const p of ['/message/list', '/chats/list']) {
      const res = await fetch(srv.url + p, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      expect(Array.isArray(await res.json())).toBe(true);
      seen.push(res.headers.get('x-store-epoch') ?? 'missing');
    }
    // /ws: ready and resumed
    const ws = await WsClient.open(srv.wsUrl);
    ws.send({ type: 'auth', token });
    seen.push((await ws.next((f) => f['type'] === 'ready'))['epoch'] as string);
    ws.send({ type: 'resume', ref: 'r', cursors: { [bob.address.toLowerCase()]: 0 } });
    const resumed = await ws.next((f) => f['type'] === 'resumed');
    expect(resumed['chats']).toMatchObject({ [bob.address.toLowerCase()]: { lastSeq: 1 } });
    seen.push(resumed['epoch'] as string);
    ws.close();
    // /im: AUTH answer key 2, RESUME answer key 1
    const im = await ImClient.open(imUrl(srv.wsUrl));
    const auth = await im.ok(1, { 0: token });
    seen.push(auth.get(2) as string);
    const res = await im.ok(6, { 0: [] });
    seen.push(res.get(1) as string);
    im.close();
    expect(seen[0]).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(seen)).toEqual(new Set([seen[0]]));
    return seen[0] as string;
  } finally {
    await srv.close();
  }
}

describe('the store epoch on both faces', () => {
  it('SQLite: announced everywhere, the same after a restart on the same file, another for a new store', async () => {
    const dir = tempDir('rim-epoch-');
    const first = await announced({ dataDir: dir });
    expect(await announced({ dataDir: dir })).toBe(first);
    expect(await announced({ dataDir: tempDir('rim-epoch-') })).not.toBe(first);
  });

  it('PostgreSQL: announced everywhere, the same after a restart on the same database, another for a new one', async () => {
    const url = await freshSchema();
    const first = await announced({ store: 'postgres', databaseUrl: url });
    expect(await announced({ store: 'postgres', databaseUrl: url })).toBe(first);
    expect(await announced({ store: 'postgres', databaseUrl: await freshSchema() })).not.toBe(first);
  });
});
