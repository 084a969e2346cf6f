import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { dmCid, dmParticipants } from '../../src/roles/chat/ids.js';
import type { StoredEvent } from '../../src/store/port.js';
import { Face } from '../../src/store/port.js';
import { createLogger } from '../../src/log/logger.js';
import { ClusterHub } from '../../src/bus/cluster-hub.js';
import { SeqTracker } from '../../src/bus/seq-tracker.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { MemoryBroker } from '../../src/bus/memory.js';
import { busContract, Sub, until } from './bus-contract.js';

// One broker per prefix, as one NATS subject would be.
const brokers = new Map<string, MemoryBroker>();
const brokerFor = (prefix: string): MemoryBroker => {
  let b = brokers.get(prefix);
  if (!b) brokers.set(prefix, (b = new MemoryBroker()));
  return b;
};

busContract('memory', (prefix) => brokerFor(prefix).transport(), async () => {
  let broker: MemoryBroker | null = null;
  return {
    make: () => (broker ??= new MemoryBroker()).transport(),
    down: async () => broker?.down(),
    up: async () => broker?.up(),
  };
});

describe('ClusterHub on a bus that goes silent', () => {
  it('turns red when its own pings stop coming back though the driver says connected, and recovers', async () => {
    const broker = new MemoryBroker();
    const store = new SqliteStore({ file: ':memory:', synchronous: 'FULL' });
    const hub = new ClusterHub({ transport: broker.transport(), store, log: createLogger('silent'), recipients: async () => [] },
      { pingMs: 50, deadAfterMs: 300, inlineMaxBytes: 1024, trackMax: 10 });
    await hub.start();
    expect(hub.status().ok).toBe(true);
    broker.silent = true;
    await until(() => !hub.status().ok, 'red');
    expect(hub.status().reason).toMatch(/no self-ping/);
    broker.silent = false;
    await until(() => hub.status().ok, 'green again');
    expect(hub.status().losses).toBe(1);
    await hub.close();
    await store.close();
  });
});

describe('ClusterHub doorbells', () => {
  it('carry the event only when a recipient is online on another process, and a process that was not known to have one reads it from the store', async () => {
    const broker = new MemoryBroker();
    const store = new SqliteStore({ file: ':memory:', synchronous: 'FULL' });
    const wire: { p: string; h: number; m: { t: string; c?: string; s?: number; e?: unknown }[] }[] = [];
    const recording = () => {
      const t = broker.transport();
      const publish = t.publish.bind(t);
      t.publish = (data: Uint8Array) => { wire.push(JSON.parse(Buffer.from(data).toString('utf8'))); publish(data); };
      return t;
    };
    const make = () => new ClusterHub({ transport: recording(), store, log: createLogger('silent'),
      recipients: async (e: StoredEvent) => dmParticipants(e.cid) ?? [] }, { pingMs: 50, deadAfterMs: 400, inlineMaxBytes: 1024, trackMax: 100 });
    const a = make();
    const b = make();
    await a.start();
    await b.start();
    await until(() => a.status().peers === 1 && b.status().peers === 1, 'peers to meet');
    const addr = () => '0x' + randomBytes(20).toString('hex');
    const [alice, bob, carol] = [addr(), addr(), addr()];
    const onA = new Sub(alice);
    const onB = new Sub(bob);
    a.add(onA);
    b.add(onB);
    await until(() => a.isOnline(bob), 'presence of bob on A');
    const commit = async (from: string, to: string): Promise<StoredEvent> => {
      const id = '0x' + randomBytes(32).toString('hex');
      const [o] = await store.appendEvents([{ cid: dmCid(from, to), id, face: Face.RELATION_ONE, kind: 0, sender: from, ts: 1, receivedAt: Date.now(),
        body: JSON.stringify({ id, payload: 'hello' }), counts: true, onlyFor: null, hides: null, participants: [from, to] }]);
      if (o?.status !== 'stored') throw new Error('not stored');
      return o.event;
    };
    const bell = (e: StoredEvent) => wire.flatMap((env) => env.m).find((m) => m.t === 'e' && m.c === e.cid && m.s === e.seq);
    // Alice (on A) writes to Bob (on B): the doorbell carries the event, B delivers it.
    const toBob = await commit(alice, bob);
    a.publish([alice, bob].filter((u) => a.isOnline(u)), { event: toBob, cid: toBob.cid, seq: toBob.seq, alert: true });
    await until(() => onB.seqs(toBob.cid).length === 1, 'the push on B');
    expect(bell(toBob)?.e).toMatchObject({ cid: toBob.cid, seq: toBob.seq });
    // Alice writes to Carol, online nowhere else: only (cid, seq) goes on the bus.
    const toCarol = await commit(alice, carol);
    a.publish([alice], { event: toCarol, cid: toCarol.cid, seq: toCarol.seq, alert: true });
    await until(() => bell(toCarol) !== undefined, 'the doorbell');
    expect(bell(toCarol)?.e).toBeUndefined();
    // Carol connects on B, and A rings before it heard of her: B reads the event from the store.
    const onCarol = new Sub(carol);
    b.add(onCarol);
    const again = await commit(alice, carol);
    a.publish([alice], { event: again, cid: again.cid, seq: again.seq, alert: true });
    await until(() => onCarol.seqs(again.cid).includes(again.seq), 'the push to Carol on B');
    expect(bell(again)?.e).toBeUndefined();
    expect(onCarol.got.find((i) => i.event?.seq === again.seq)?.event).toMatchObject({ id: again.id, body: again.body });
    // Every envelope leads with its sender and whether it holds a heartbeat.
    expect(wire.every((env) => Object.keys(env)[0] === 'p' && Object.keys(env)[1] === 'h' && env.h === (env.m.some((m) => m.t === 'hb') ? 1 : 0))).toBe(true);
    await a.close();
    await b.close();
    await store.close();
  });
});

describe('SeqTracker', () => {
  it('tells new, duplicate and missing seqs apart, with late doorbells below the first seen', () => {
    const t = new SeqTracker(2);
    expect(t.missing('c', 5)).toEqual([5]);
    expect(t.claim('c', 5)).toBe(true);
    expect(t.claim('c', 5)).toBe(false);
    expect(t.missing('c', 8)).toEqual([6, 7, 8]);
    expect(t.claim('c', 7)).toBe(true);
    expect(t.missing('c', 8)).toEqual([6, 8]);
    expect(t.claim('c', 6)).toBe(true);
    expect(t.last('c')).toBe(7);
    expect(t.missing('c', 7)).toEqual([]);
    // A doorbell of a commit that raced the first one seen is delivered once, late.
    expect(t.missing('c', 4)).toEqual([4]);
    expect(t.claim('c', 4)).toBe(true);
    expect(t.claim('c', 4)).toBe(false);
    // Bounded: the least recently active conversation is forgotten.
    t.claim('d', 1);
    t.claim('e', 1);
    expect(t.conversations()).toEqual(['d', 'e']);
    expect(t.has('c', 5)).toBe(false);
  });
});
