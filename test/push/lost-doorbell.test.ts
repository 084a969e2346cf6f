import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ClusterHub } from '../../src/bus/cluster-hub.js';
import { MemoryBroker } from '../../src/bus/memory.js';
import type { BusHandlers, BusTransport } from '../../src/bus/transport.js';
import { AppError } from '../../src/errors/app-error.js';
import { createLogger } from '../../src/log/logger.js';
import { dmCid, dmParticipants } from '../../src/roles/chat/ids.js';
import { Face, type NewEvent, type StoredEvent } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { Sub, until } from './bus-contract.js';

/**
 * One process's bus connection that a test can fault on its own (the broker's faults hit everyone):
 * drop its next doorbell envelope on the way out, tell its hub the driver reconnects, or vanish without
 * a goodbye (kill -9).
 */
class FaultyTransport implements BusTransport {
  readonly kind = 'memory';
  private handlers: BusHandlers | null = null;
  dropNextDoorbell = false;
  gone = false;
  private readonly inner: BusTransport;

  constructor(broker: MemoryBroker) {
    this.inner = broker.transport();
  }

  async start(handlers: BusHandlers): Promise<void> {
    this.handlers = handlers;
    await this.inner.start({
      message: (d) => { if (!this.gone) handlers.message(d); },
      state: (c, r) => handlers.state(c, r),
    });
  }

  publish(data: Uint8Array): void {
    if (this.gone) return;
    if (this.dropNextDoorbell && Buffer.from(data).toString().includes('"t":"e"')) {
      this.dropNextDoorbell = false;
      return;
    }
    this.inner.publish(data);
  }

  /** The driver says it lost the server (and later that it is back); nothing it publishes meanwhile arrives. */
  tell(connected: boolean): void {
    this.handlers?.state(connected, connected ? 'test: reconnected' : 'test: disconnected');
  }

  async close(): Promise<void> {
    await this.inner.close();
  }
}

const addr = (): string => '0x' + randomBytes(20).toString('hex');
function dmEvent(from: string, to: string): NewEvent {
  const id = '0x' + randomBytes(32).toString('hex');
  return {
    cid: dmCid(from, to), id, face: Face.RELATION_ONE, kind: 0, sender: from, ts: Date.now(), receivedAt: Date.now(),
    body: JSON.stringify({ id, payload: 'x' }), counts: true, onlyFor: null, hides: null, participants: [from, to],
  };
}

describe('ClusterHub: a doorbell lost at the end of a burst still arrives live', () => {
  let store: SqliteStore;
  let hubs: ClusterHub[] = [];

  /** Store reads the hubs make that fail as PostgreSQL's do when the pool times out (STORE_UNAVAILABLE), by method: how many more. */
  let failing: Partial<Record<keyof SqliteStore, number>> = {};

  async function cluster(count: number, catchupMs = 0): Promise<{ hubs: ClusterHub[]; transports: FaultyTransport[] }> {
    store = new SqliteStore({ file: ':memory:', synchronous: 'FULL' });
    failing = {};
    // The hubs' view of the store: the real one, except reads a test has told to fail.
    const hubStore = new Proxy(store, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver) as unknown;
        if (typeof v !== 'function') return v;
        return (...args: unknown[]) => {
          const left = failing[key as keyof SqliteStore] ?? 0;
          if (left > 0) {
            failing[key as keyof SqliteStore] = left - 1;
            return Promise.reject(new AppError('STORE_UNAVAILABLE', undefined, { cause: 'Error: timeout exceeded when trying to connect' }));
          }
          return (v as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    });
    const broker = new MemoryBroker();
    const transports: FaultyTransport[] = [];
    const made: ClusterHub[] = [];
    for (let i = 0; i < count; i++) {
      const t = new FaultyTransport(broker);
      transports.push(t);
      const hub = new ClusterHub({
        transport: t, store: hubStore, log: createLogger('silent'),
        recipients: async (e: StoredEvent) => dmParticipants(e.cid) ?? [],
        readPush: (_user, cid, seq) => ({ read: { cid, seq } }),
      }, { pingMs: 50, deadAfterMs: 400, inlineMaxBytes: 1024, trackMax: 100, catchupMs });
      await hub.start();
      made.push(hub);
    }
    hubs = made;
    await until(() => made.every((h) => h.status().peers >= count - 1), 'peers to meet');
    return { hubs: made, transports };
  }

  afterEach(async () => {
    for (const h of hubs.splice(0)) await h.close();
    await store?.close();
  });

  const commit = async (e: NewEvent): Promise<StoredEvent> => {
    const [o] = await store.appendEvents([e]);
    if (!o || o.status === 'refused') throw new Error('no stored outcome');
    return o.event;
  };
  const publish = (hub: ClusterHub, e: StoredEvent): void => {
    hub.publish((dmParticipants(e.cid) ?? []).filter((u) => hub.isOnline(u)), { event: e, cid: e.cid, seq: e.seq, alert: true });
  };

  it('fills a lost seq below one this process delivered from its own commit', async () => {
    const { hubs: [a, b], transports: [ta] } = await cluster(2);
    const alice = addr();
    const bob = addr();
    const onB = new Sub(bob);
    b!.add(onB);
    await until(() => a!.isOnline(bob), 'presence');
    const cid = dmCid(alice, bob);
    publish(a!, await commit(dmEvent(alice, bob)));
    await until(() => onB.seqs(cid).length === 1, 'the first push');
    // A's doorbell of seq 2 is lost; B commits seq 3 itself and delivers it. A's next envelope shows B
    // the gap, and the sweep must not take "3 delivered" for "everything up to 3 delivered".
    ta!.dropNextDoorbell = true;
    publish(a!, await commit(dmEvent(alice, bob)));
    publish(b!, await commit(dmEvent(bob, alice)));
    await until(() => onB.seqs(cid).includes(2), 'seq 2 on B');
    expect([...onB.seqs(cid)].sort()).toEqual([1, 2, 3]);
  });

  it('fills a lost seq again when the store fails a read of the fill after the event was read (issue 19, the cluster soak)', async () => {
    // The 3-process soak on a loaded machine: PostgreSQL's pool timed out (STORE_UNAVAILABLE) inside a gap
    // fill, after the missing event was read but while its muted members were; the seq had been marked
    // delivered before that read, so no later sweep or catch-up filled it and the push was lost.
    const { hubs: [a, b], transports: [ta] } = await cluster(2);
    const alice = addr();
    const bob = addr();
    const onB = new Sub(bob);
    b!.add(onB);
    await until(() => a!.isOnline(bob), 'presence');
    const cid = dmCid(alice, bob);
    publish(a!, await commit(dmEvent(alice, bob)));
    await until(() => onB.seqs(cid).length === 1, 'the first push');
    // A's doorbell of seq 2 is lost; its doorbell of seq 3 makes B fill seq 2 from the store, and the
    // first read of who muted the chat fails.
    failing = { mutedUsers: 1 };
    ta!.dropNextDoorbell = true;
    publish(a!, await commit(dmEvent(alice, bob)));
    publish(a!, await commit(dmEvent(alice, bob)));
    await until(() => failing.mutedUsers === 0, 'the failed read');
    await until(() => onB.seqs(cid).includes(2) && onB.seqs(cid).includes(3), 'seqs 2 and 3 on B', 5_000);
    expect(onB.seqs(cid)).toEqual([1, 2, 3]);
  });

  it('lets the peers fill what a process rang while its driver was reconnecting', async () => {
    const { hubs: [a, b], transports: [ta] } = await cluster(2);
    const alice = addr();
    const bob = addr();
    const onB = new Sub(bob);
    b!.add(onB);
    await until(() => a!.isOnline(bob), 'presence');
    const cid = dmCid(alice, bob);
    publish(a!, await commit(dmEvent(alice, bob)));
    await until(() => onB.seqs(cid).length === 1, 'the first push');
    ta!.tell(false);
    publish(a!, await commit(dmEvent(alice, bob))); // the last of the burst, rung into a dead connection
    ta!.tell(true);
    await until(() => onB.seqs(cid).length === 2, 'seq 2 on B');
    expect(onB.seqs(cid)).toEqual([1, 2]);
  });

  it('fills what a process killed before its doorbell left had committed', async () => {
    const { hubs: [a, b], transports: [ta] } = await cluster(2);
    const alice = addr();
    const bob = addr();
    const onB = new Sub(bob);
    b!.add(onB);
    await until(() => a!.isOnline(bob), 'presence');
    const cid = dmCid(alice, bob);
    publish(a!, await commit(dmEvent(alice, bob)));
    await until(() => onB.seqs(cid).length === 1, 'the first push');
    await commit(dmEvent(alice, bob)); // committed and answered; then kill -9 before the doorbell left
    ta!.gone = true;
    await until(() => onB.seqs(cid).length === 2, 'seq 2 on B', 10_000);
    expect(onB.seqs(cid)).toEqual([1, 2]);
    expect(b!.status().peers).toBe(0);
  });

  it('with a quiet catch-up, fills a lost last doorbell that no envelope gap reveals', async () => {
    const { hubs: [a, b] } = await cluster(2, 200);
    const alice = addr();
    const bob = addr();
    const onB = new Sub(bob);
    b!.add(onB);
    await until(() => a!.isOnline(bob), 'presence');
    const cid = dmCid(alice, bob);
    publish(a!, await commit(dmEvent(alice, bob)));
    await until(() => onB.seqs(cid).length === 1, 'the first push');
    // Committed without any doorbell at all (as a commit whose publish never happened): only the
    // catch-up of the conversation that was live on B can find it.
    await commit(dmEvent(alice, bob));
    await until(() => onB.seqs(cid).length === 2, 'seq 2 on B');
    expect(onB.seqs(cid)).toEqual([1, 2]);
  });

  it('tells the read marker in force again after the bus was lost, as its push may be gone', async () => {
    const { hubs: [a, b], transports: [ta] } = await cluster(2);
    const alice = addr();
    const bob = addr();
    const onB = new Sub(bob);
    b!.add(onB);
    await until(() => a!.isOnline(bob), 'presence');
    const cid = dmCid(alice, bob);
    publish(a!, await commit(dmEvent(alice, bob)));
    await until(() => onB.seqs(cid).length === 1, 'the first push');
    // Bob reads on his device on A while A's driver is away: the marker's push is lost on the bus.
    await store.ensureChat(bob, cid, alice);
    ta!.tell(false);
    await store.markRead(bob, cid, 1);
    a!.publish([bob], { frame: '{}', read: { cid, seq: 1 } });
    ta!.tell(true);
    await until(() => onB.got.some((i) => i.read?.cid === cid && i.read.seq === 1), 'the marker on B');
  });
});
