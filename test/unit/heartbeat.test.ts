import { afterEach, describe, expect, it } from 'vitest';
import { StaggeredHeartbeat } from '../../src/gateway/ws/heartbeat.js';

/** Ticks a heartbeat `n` times, recording at which tick each item was visited. */
function drive(hb: StaggeredHeartbeat<number>, n: number, visits: Map<number, number[]>, clock: { tick: number }): number {
  let most = 0;
  for (let k = 0; k < n; k++, clock.tick++) {
    const before = [...visits.values()].reduce((a, v) => a + v.length, 0);
    hb.tick();
    most = Math.max(most, [...visits.values()].reduce((a, v) => a + v.length, 0) - before);
  }
  return most;
}

describe('StaggeredHeartbeat', () => {
  let hb: StaggeredHeartbeat<number> | null = null;
  afterEach(() => hb?.stop());

  it('visits each item once per period, a slice per tick, never all in one tick', () => {
    const items = new Set(Array.from({ length: 1000 }, (_, i) => i));
    const visits = new Map<number, number[]>();
    const clock = { tick: 1 };
    // 30 s period: 100 ms ticks, 300 ticks per period, 4 items per tick for 1,000 items
    hb = new StaggeredHeartbeat(items, 30_000, (i) => visits.set(i, [...(visits.get(i) ?? []), clock.tick]));
    expect(drive(hb, 1199, visits, clock)).toBe(4); // rounds begin at ticks 300, 600, 900 (and 1200), each done 250 ticks later
    for (const i of items) {
      const v = visits.get(i) ?? [];
      // first visit a period after the start at the earliest (as setInterval), then exactly a period apart
      expect(v[0]).toBeGreaterThanOrEqual(300);
      expect(v.length).toBe(3);
      for (let k = 1; k < v.length; k++) expect((v[k] as number) - (v[k - 1] as number)).toBe(300);
    }
  });

  it('visits a lone item once per period, not once per tick', () => {
    const visits = new Map<number, number[]>();
    const clock = { tick: 1 };
    hb = new StaggeredHeartbeat(new Set([7]), 60_000, (i) => visits.set(i, [...(visits.get(i) ?? []), clock.tick]));
    drive(hb, 1300, visits, clock); // 100 ms ticks, 600 per period
    expect(visits.get(7)).toEqual([600, 1200]);
  });

  it('visits items added during a round, skips deleted ones, and goes on after a throw', () => {
    const items = new Set([1, 2, 3]);
    const seen: number[] = [];
    hb = new StaggeredHeartbeat(items, 1000, (i) => { seen.push(i); if (i === 1) throw new Error('boom'); });
    for (let k = 0; k < 10; k++) hb.tick(); // 100 ms ticks, 10 per period: the round begins at the 10th, one item per tick
    expect(seen).toEqual([1]);
    items.delete(2);
    items.add(4);
    for (let k = 0; k < 10; k++) hb.tick();
    expect(seen).toEqual([1, 3, 4, 1]);
  });

  it('does nothing on an empty set', () => {
    let n = 0;
    hb = new StaggeredHeartbeat(new Set<number>(), 100, () => n++);
    for (let k = 0; k < 50; k++) hb.tick();
    expect(n).toBe(0);
  });
});
