import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { dmCid, dmParticipants } from '../../src/roles/chat/ids.js';
import type { CloseName } from '../../src/errors/catalogue.js';
import { createLogger } from '../../src/log/logger.js';
import { ClusterHub } from '../../src/bus/cluster-hub.js';
import type { PushItem, Subscriber } from '../../src/bus/hub.js';
import type { BusTransport } from '../../src/bus/transport.js';
import { Face, type NewEvent, type StoredEvent } from '../../src/store/port.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

/** A connection stand-in that records what the hub delivers to it. */
export class Sub implements Subscriber {
  readonly got: PushItem[] = [];
  closed: CloseName | null = null;
  constructor(readonly user: string, readonly tokenHash = randomBytes(8).toString('hex')) {}
  deliver(item: PushItem): void {
    this.got.push(item);
  }
  close(reason: CloseName): void {
    this.closed = reason;
  }
  /** Seqs of the events delivered in `cid`, in delivery order. */
  seqs(cid: string): number[] {
    return this.got.filter((i) => i.event?.cid === cid).map((i) => i.event?.seq ?? -1);
  }
}

export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const addr = (): string => '0x' + randomBytes(20).toString('hex');
let n = 0;
function dmEvent(from: string, to: string, bodyBytes = 40): NewEvent {
  n++;
  const id = '0x' + randomBytes(32).toString('hex');
  return {
    cid: dmCid(from, to), id, face: Face.RELATION_ONE, kind: 0, sender: from, ts: 1000 + n, receivedAt: Date.now(),
    body: JSON.stringify({ id, payload: 'x'.repeat(bodyBytes) }), counts: true, onlyFor: null, hides: null, participants: [from, to],
  };
}

export interface Outage {
  /** Transports on the server that will go away. */
  make(prefix: string): BusTransport;
  /** Takes the bus away (the server dies). */
  down(): Promise<void>;
  /** Brings it back on the same address. */
  up(): Promise<void>;
}

/**
 * The bus contract: every bus adapter (memory, NATS, Redis) carries the same ClusterHub behaviour, with
 * a real store to fill gaps from. `make(prefix)` returns a fresh transport on the channel `prefix`; each
 * test uses a random prefix, so runs never see each other's messages.
 */
export function busContract(name: string, make: (prefix: string) => BusTransport, outage?: () => Promise<Outage>): void {
  describe(`bus contract: ${name}`, () => {
    let hubs: ClusterHub[] = [];
    let store: SqliteStore;

    async function cluster(count: number, on: (prefix: string) => BusTransport = make): Promise<ClusterHub[]> {
      const prefix = `rim-test-${randomBytes(6).toString('hex')}`;
      store ??= new SqliteStore({ file: ':memory:', synchronous: 'FULL' });
      const made: ClusterHub[] = [];
      for (let i = 0; i < count; i++) {
        const hub = new ClusterHub({
          transport: on(prefix), store, log: createLogger('silent'),
          recipients: async (e: StoredEvent) => (e.onlyFor !== null ? [e.onlyFor] : dmParticipants(e.cid) ?? []),
        }, { pingMs: 100, deadAfterMs: 800, inlineMaxBytes: 1024, trackMax: 1000 });
        await hub.start();
        made.push(hub);
      }
      hubs.push(...made);
      // Every hub has heard every other once (heartbeats), so presence and sweeps have their peers.
      await until(() => made.every((h) => h.status().peers >= count - 1), 'peers to meet');
      return made;
    }

    async function commit(e: NewEvent): Promise<StoredEvent> {
      const [o] = await store.appendEvents([e]);
      if (!o) throw new Error('no outcome');
      if (o.status === 'refused') throw new Error(o.code);
      return o.event;
    }

    /** What the domain does after a commit: publish to the recipients it believes online. */
    function publish(hub: ClusterHub, e: StoredEvent): void {
      const users = (dmParticipants(e.cid) ?? []).filter((u) => hub.isOnline(u));
      hub.publish(users, { event: e, cid: e.cid, seq: e.seq, alert: true });
    }

    afterEach(async () => {
      for (const h of hubs.splice(0)) await h.close();
      await store?.close();
      store = undefined as unknown as SqliteStore;
    });

    it('is ready once its own ping came back', async () => {
      const [a] = await cluster(1);
      expect(a?.status()).toMatchObject({ ok: true, peers: 0 });
    });

    it('delivers an event committed on one process to the recipients\' connections on the others, once each', async () => {
      const [a, b, c] = await cluster(3);
      const alice = addr();
      const bob = addr();
      const onB = new Sub(bob);
      const onC = new Sub(bob);
      const aliceOnC = new Sub(alice);
      b!.add(onB);
      c!.add(onC);
      c!.add(aliceOnC);
      await until(() => a!.isOnline(bob) && a!.isOnline(alice), 'presence to reach A');
      const cid = dmCid(alice, bob);
      for (let i = 0; i < 5; i++) publish(a!, await commit(dmEvent(alice, bob)));
      await until(() => onB.seqs(cid).length === 5 && onC.seqs(cid).length === 5 && aliceOnC.seqs(cid).length === 5, 'five pushes on B and C');
      await new Promise((r) => setTimeout(r, 300));
      expect(onB.seqs(cid)).toEqual([1, 2, 3, 4, 5]);
      expect(onC.seqs(cid)).toEqual([1, 2, 3, 4, 5]);
      expect(onB.got.every((i) => i.alert === true)).toBe(true);
    });

    it('fills a gap from the store when a doorbell was lost', async () => {
      const [a, b] = await cluster(2);
      const alice = addr();
      const bob = addr();
      const onB = new Sub(bob);
      b!.add(onB);
      await until(() => a!.isOnline(bob), 'presence');
      const cid = dmCid(alice, bob);
      publish(a!, await commit(dmEvent(alice, bob)));
      await until(() => onB.seqs(cid).length === 1, 'the first push');
      // Two events committed whose doorbells never ring (as if lost), then one that does.
      await commit(dmEvent(alice, bob));
      await commit(dmEvent(alice, bob));
      publish(a!, await commit(dmEvent(alice, bob)));
      await until(() => onB.seqs(cid).length === 4, 'the gap filled');
      expect(onB.seqs(cid)).toEqual([1, 2, 3, 4]);
    });

    it('reads an event too big to ride in the doorbell from the store', async () => {
      const [a, b] = await cluster(2);
      const alice = addr();
      const bob = addr();
      const onB = new Sub(bob);
      b!.add(onB);
      await until(() => a!.isOnline(bob), 'presence');
      const e = await commit(dmEvent(alice, bob, 5000));
      publish(a!, e);
      await until(() => onB.got.length === 1, 'the push');
      expect(onB.got[0]?.event?.body).toBe(e.body);
    });

    it('does not deliver twice what a process delivered from its own commit', async () => {
      const [a, b] = await cluster(2);
      const alice = addr();
      const bob = addr();
      const bobOnA = new Sub(bob);
      const bobOnB = new Sub(bob);
      a!.add(bobOnA);
      b!.add(bobOnB);
      await until(() => a!.isOnline(bob) && b!.isOnline(bob), 'presence');
      const cid = dmCid(alice, bob);
      // A and B write the same conversation at once; each publishes its own commits.
      const writes: Promise<void>[] = [];
      for (let i = 0; i < 20; i++) {
        const hub = i % 2 === 0 ? a! : b!;
        writes.push(commit(dmEvent(alice, bob)).then((e) => publish(hub, e)));
      }
      await Promise.all(writes);
      await until(() => bobOnA.seqs(cid).length >= 20 && bobOnB.seqs(cid).length >= 20, 'all twenty on both');
      await new Promise((r) => setTimeout(r, 300));
      for (const s of [bobOnA, bobOnB]) {
        expect(s.seqs(cid).length).toBe(20);
        expect([...s.seqs(cid)].sort((x, y) => x - y)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      }
    });

    it('carries read-marker pushes, logout and cache invalidation to every process', async () => {
      const [a, b] = await cluster(2);
      const bob = addr();
      const keep = new Sub(bob, 'kept');
      const gone = new Sub(bob, 'revoked');
      b!.add(keep);
      b!.add(gone);
      const told: string[] = [];
      b!.onInvalidate((kind, key) => told.push(`${kind}:${key}`));
      a!.onInvalidate((kind, key) => told.push(`A ${kind}:${key}`));
      await until(() => a!.isOnline(bob), 'presence');
      a!.publish([bob], { frame: '{"type":"read"}', read: { cid: 'c', seq: 3 } });
      a!.revokeToken('revoked');
      a!.invalidate('access', 'k1');
      await until(() => keep.got.length === 1 && gone.closed !== null && told.length === 2, 'all three');
      expect(keep.got[0]).toMatchObject({ frame: '{"type":"read"}', read: { cid: 'c', seq: 3 } });
      expect([keep.closed, gone.closed]).toEqual([null, 'TOKEN_EXPIRED']);
      expect(told.sort()).toEqual(['A access:k1', 'access:k1']);
    });

    it('tells presence across processes, and forgets the users of a process that left', async () => {
      const [a, b] = await cluster(2);
      const changes: string[] = [];
      a!.onPresence((u, on) => changes.push(`${u.slice(0, 6)}:${on}`));
      const bob = addr();
      const s1 = new Sub(bob);
      const s2 = new Sub(bob);
      b!.add(s1);
      b!.add(s2);
      await until(() => a!.isOnline(bob), 'online on A');
      b!.remove(s1);
      b!.add(s1);
      b!.remove(s1);
      b!.remove(s2);
      await until(() => !a!.isOnline(bob), 'offline on A');
      expect(changes).toEqual([`${bob.slice(0, 6)}:true`, `${bob.slice(0, 6)}:false`]);
      b!.add(new Sub(bob));
      await until(() => a!.isOnline(bob), 'online again');
      await b!.close();
      await until(() => !a!.isOnline(bob), 'offline once B left');
    });

    if (outage) {
      it('goes red while the bus is away, and when it is back delivers what was committed meanwhile', async () => {
        const ctl = await outage();
        const [a, b] = await cluster(2, (p) => ctl.make(p));
        const alice = addr();
        const bob = addr();
        const onB = new Sub(bob);
        b!.add(onB);
        await until(() => a!.isOnline(bob), 'presence');
        const cid = dmCid(alice, bob);
        publish(a!, await commit(dmEvent(alice, bob)));
        await until(() => onB.seqs(cid).length === 1, 'the first push');
        await ctl.down();
        await until(() => !a!.status().ok && !b!.status().ok, 'both red');
        // Sends keep committing while the bus is away; their doorbells go nowhere. One of them starts a
        // conversation B has never seen, so only the store can tell B about it.
        const carol = addr();
        const carolOnB = new Sub(carol);
        b!.add(carolOnB);
        for (let i = 0; i < 3; i++) publish(a!, await commit(dmEvent(alice, bob)));
        publish(a!, await commit(dmEvent(alice, carol)));
        await ctl.up();
        await until(() => a!.status().ok && b!.status().ok, 'both green again', 30_000);
        await until(() => onB.seqs(cid).length === 4, 'the missed three', 30_000);
        expect(onB.seqs(cid)).toEqual([1, 2, 3, 4]);
        await until(() => carolOnB.seqs(dmCid(alice, carol)).length === 1, 'the new conversation', 30_000);
        expect(b!.status().losses).toBeGreaterThanOrEqual(1);
        publish(a!, await commit(dmEvent(alice, bob)));
        await until(() => onB.seqs(cid).length === 5, 'live again');
      }, 60_000);
    }
  });
}
