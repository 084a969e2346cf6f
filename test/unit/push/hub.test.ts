import { describe, expect, it } from 'vitest';
import { FANOUT_CHUNK, LocalHub, type PushItem, type Subscriber } from '../../../src/bus/hub.js';
import type { CloseName } from '../../../src/errors/catalogue.js';

class Sub implements Subscriber {
  got: PushItem[] = [];
  closed: CloseName | null = null;
  constructor(readonly user: string, readonly tokenHash: string, private readonly fail = false) {}
  deliver(item: PushItem): void {
    if (this.fail) throw new Error('socket exploded');
    this.got.push(item);
  }
  close(reason: CloseName): void {
    this.closed = reason;
  }
}

describe('LocalHub', () => {
  it('delivers to every connection of every named user, and to no one else', () => {
    const hub = new LocalHub();
    const a1 = new Sub('a', 't1');
    const a2 = new Sub('a', 't2');
    const b = new Sub('b', 't3');
    [a1, a2, b].forEach((s) => hub.add(s));
    hub.publish(['a'], { frame: 'x' });
    expect([a1.got.length, a2.got.length, b.got.length]).toEqual([1, 1, 0]);
    expect(hub.connections).toBe(3);
  });

  it('keeps delivering when one connection throws, closes that one and reports it', () => {
    const errors: unknown[] = [];
    const hub = new LocalHub((e) => errors.push(e));
    const bad = new Sub('a', 't1', true);
    const good = new Sub('a', 't2');
    hub.add(bad);
    hub.add(good);
    expect(() => hub.publish(['a'], { frame: 'x' })).not.toThrow();
    expect(good.got).toHaveLength(1);
    expect(bad.closed).toBe('GOING_AWAY');
    expect(errors).toHaveLength(1);
  });

  it('forgets users whose last connection closed', () => {
    const hub = new LocalHub();
    const s = new Sub('a', 't');
    hub.add(s);
    hub.remove(s);
    expect(hub.isOnline('a')).toBe(false);
    expect(hub.connections).toBe(0);
  });

  it('closes only the connections of a revoked token', () => {
    const hub = new LocalHub();
    const s1 = new Sub('a', 'gone');
    const s2 = new Sub('a', 'kept');
    hub.add(s1);
    hub.add(s2);
    hub.revokeToken('gone');
    expect([s1.closed, s2.closed]).toEqual(['TOKEN_EXPIRED', null]);
  });

  it('delivers a large fan-out in chunks of FANOUT_CHUNK per turn, in publish order for every connection, and reports when every write is done', async () => {
    const written: [number, number][] = [];
    const hub = new LocalHub(undefined, undefined, (connections, seconds) => written.push([connections, seconds]));
    const pending: (() => void)[] = [];
    class Writer extends Sub {
      override deliver(item: PushItem): void {
        super.deliver(item);
        const done = item.written?.();
        if (done) pending.push(done);
      }
    }
    const n = FANOUT_CHUNK * 2 + 100;
    const subs = Array.from({ length: n }, (_, i) => new Writer(`u${i}`, `t${i}`));
    subs.forEach((s) => hub.add(s));
    const users = subs.map((s) => s.user);
    const first: PushItem = { frame: 'first' };
    const second: PushItem = { frame: 'second' };
    hub.publish(users, first);
    // Only the first chunk is delivered in the publishing turn; a direct push queues behind the fan-out.
    expect(subs.filter((s) => s.got.length > 0)).toHaveLength(FANOUT_CHUNK);
    hub.publish([`u${n - 1}`], second);
    expect(subs[n - 1]?.got).toEqual([]);
    await new Promise<void>((resolve) => {
      const wait = (): void => { if (hub.queued === 0) resolve(); else setImmediate(wait); };
      wait();
    });
    for (const s of subs.slice(0, n - 1)) expect(s.got.map((g) => g.frame)).toEqual(['first']);
    expect(subs[n - 1]?.got.map((g) => g.frame)).toEqual(['first', 'second']);
    // The write callback is lent to the connections only while the hub delivers.
    expect(first.written).toBeUndefined();
    // Reported once per fan-out, when the last write of it is called back, not before.
    expect(written).toHaveLength(0);
    pending.splice(0).forEach((done) => done());
    expect(written.map(([c]) => c)).toEqual([n, 1]);
  });
});
