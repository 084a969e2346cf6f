import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log/logger.js';
import { ClusterHub } from '../../src/bus/cluster-hub.js';
import { SeqTracker } from '../../src/bus/seq-tracker.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { MemoryBroker } from '../../src/bus/memory.js';
import { busContract, until } from './bus-contract.js';

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
