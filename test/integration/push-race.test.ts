import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dmCid } from '../../src/roles/chat/ids.js';
import type { Store } from '../../src/store/port.js';
import { ImClient, imUrl, type M } from '../support/im-client.js';
import { makeIdentity, signedMessage, type Identity } from '../support/messages.js';
import { http, login, startServer, WsClient, type TestServer } from '../support/server.js';

/**
 * A recipient who connects while a message is on its way into the store (after the sender's request
 * was checked, before its commit) must get it live: the connection's resume read the store before the
 * commit, so the push is the only way it can arrive. Found by sdk/test/live.test.ts under load: the
 * pushes' audience was the recipients online when the request was checked, so a device that came
 * online in between got neither the replay nor the push, and its next message moved the cursor past it.
 */
describe('a recipient who connects while a message is being committed', () => {
  let srv: TestServer;
  let alice: Identity;
  let carol: Identity;
  let gate: { hold: boolean; entered: () => void; release: () => void };
  beforeAll(async () => {
    srv = await startServer();
    alice = makeIdentity();
    carol = makeIdentity();
    // Holds the next commit at the store's door when asked: the request was checked, nothing stored yet.
    const store = srv.app.store as Store;
    const append = store.appendEvents.bind(store);
    gate = { hold: false, entered: () => undefined, release: () => undefined };
    store.appendEvents = async (events) => {
      if (gate.hold) {
        gate.hold = false;
        await new Promise<void>((resolve) => {
          gate.release = resolve;
          gate.entered();
        });
      }
      return append(events);
    };
  });
  afterAll(async () => { await srv.close(); });

  /** Arms the gate; resolves once a commit waits at it. */
  const armed = (): Promise<void> => new Promise((resolve) => {
    gate.hold = true;
    gate.entered = resolve;
  });

  it('on /ws: gets the push, after a resume that found nothing new', async () => {
    const carolToken = await login(srv.url, carol);
    const m = signedMessage(alice, { receiver: carol.address });
    const waiting = armed();
    const sent = http(srv.url, 'POST', '/message/send', { body: m });
    await waiting;
    // Carol is offline so far; she connects and resumes while the message waits at the store.
    const c = await WsClient.open(srv.wsUrl, carolToken);
    c.send({ type: 'resume', ref: 'r', cursors: { [alice.address.toLowerCase()]: 0 } });
    expect(await c.next((f) => f['type'] === 'resumed')).toMatchObject({ chats: { [alice.address.toLowerCase()]: { lastSeq: 0 } } });
    gate.release();
    expect((await sent).status).toBe(200);
    const push = await c.next((f) => f['type'] === 'message');
    expect(push).toMatchObject({ chatId: alice.address.toLowerCase(), message: { id: m.id, seq: 1 } });
    c.close();
  });

  it('on /im: gets the push', async () => {
    const amy = makeIdentity();
    const ben = makeIdentity();
    const url = imUrl(srv.wsUrl);
    const a = await ImClient.open(url, await login(srv.url, amy));
    const benToken = await login(srv.url, ben);
    const cid = dmCid(amy.address, ben.address);
    const waiting = armed();
    const sent = a.ok(3, { 1: cid, 2: 1, 7: { 0: 'while you were connecting' } });
    await waiting;
    const b = await ImClient.open(url, benToken);
    gate.release();
    const mid = (await sent).get(0) as number;
    const push = await b.push((e: M) => e.get(1) === cid && e.get(3) === mid);
    expect(push.get(7)).toEqual(new Map([[0, 'while you were connecting']]));
    a.close();
    b.close();
  });
});
