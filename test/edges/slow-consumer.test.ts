import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

const rawSocket = (ws: unknown): Socket => (ws as { _socket: Socket })._socket;
const until = async (cond: () => boolean, timeoutMs = 60_000): Promise<void> => {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/**
 * Sends 60 KB messages from `from` to `to` (8 at a time) until the server cut `to` as a slow consumer
 * (it is no longer online), and returns the seqs the server acknowledged.
 */
async function flood(srv: TestServer, from: Identity, to: Identity): Promise<number[]> {
  const acked: number[] = [];
  const user = to.address.toLowerCase();
  let sent = 0;
  while (srv.app.hub.isOnline(user)) {
    if (sent > 4000) throw new Error('never cut');
    const batch = await Promise.all(Array.from({ length: 8 }, () => http(srv.url, 'POST', '/message/send', {
      body: signedMessage(from, { receiver: to.address, payload: 'p'.repeat(60_000) }),
    })));
    sent += 8;
    for (const r of batch) {
      expect(r.status).toBe(200);
      acked.push((r.json as { seq: number }).seq);
    }
  }
  return acked;
}

/**
 * Issue 12: a client that stopped reading for more than a couple of seconds never learned it was cut:
 * its 4008 waited behind the queue and the server dropped TCP after 2 s (1006). Now nothing more is
 * queued after the close, the connection is kept WS_SLOW_CONSUMER_GRACE_MS, and the client that reads
 * again sees 4008; the resume after it loses nothing.
 */
describe('slow consumers', () => {
  let srv: TestServer;
  afterEach(async () => { await srv?.close(); });

  it('/ws: a client that reads again after 3 s sees 4008, and the resume loses nothing', async () => {
    srv = await startServer({ wsMaxBufferedBytes: 1_048_576, wsSlowConsumerGraceMs: 30_000 });
    const alice = makeIdentity();
    const bob = makeIdentity();
    const token = await login(srv.url, bob);
    const c = await WsClient.open(srv.wsUrl, token);
    rawSocket(c.ws).pause(); // stops reading: the kernel buffers fill, then the server's queue
    const acked = await flood(srv, alice, bob);
    await new Promise((r) => setTimeout(r, 3000)); // longer than the old 2 s hard cut
    rawSocket(c.ws).resume();
    expect(await c.closed).toBe(4008);
    const seen = new Set(c.all.filter((f) => f['type'] === 'message').map((f) => (f['message'] as { seq: number }).seq));
    const last = Math.max(0, ...seen);
    const again = await WsClient.open(srv.wsUrl, token);
    again.send({ type: 'resume', ref: 'r', cursors: { [alice.address]: last } });
    await again.next((f) => f['type'] === 'resumed');
    for (const f of again.all) if (f['type'] === 'message') seen.add((f['message'] as { seq: number }).seq);
    for (const seq of acked) expect(seen.has(seq), `seq ${seq}`).toBe(true);
    again.close();
  }, 120_000);

  it('/im: the same, with RESUME', async () => {
    srv = await startServer({ wsMaxBufferedBytes: 1_048_576, wsSlowConsumerGraceMs: 30_000 });
    const alice = makeIdentity();
    const bob = makeIdentity();
    const token = await login(srv.url, bob);
    const c = await ImClient.open(imUrl(srv.wsUrl), token);
    rawSocket(c.ws).pause();
    const acked = await flood(srv, alice, bob);
    await new Promise((r) => setTimeout(r, 3000));
    rawSocket(c.ws).resume();
    expect(await c.closed).toBe(4008);
    const cid = `dm:${[alice.address.toLowerCase(), bob.address.toLowerCase()].sort().join(':')}`;
    const seen = new Set(c.pushes.map((b: M) => b.get(3) as number));
    const again = await ImClient.open(imUrl(srv.wsUrl), token);
    await again.ok(6, { 0: [[cid, Math.max(0, ...seen)]] });
    for (const b of again.pushes) seen.add(b.get(3) as number);
    for (const seq of acked) expect(seen.has(seq), `mid ${seq}`).toBe(true);
    again.close();
  }, 120_000);
});
