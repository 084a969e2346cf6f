import { describe, expect, it } from 'vitest';
import { LocalHub, type PushItem, type Subscriber } from '../../../src/bus/hub.js';
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
});
