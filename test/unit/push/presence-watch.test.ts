import { describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors/app-error.js';
import { PresenceWatch, type PresenceWatcher } from '../../../src/gateway/im/presence-watch.js';
import { LocalHub, type PushItem, type Subscriber } from '../../../src/bus/hub.js';

class Recorder implements PresenceWatcher {
  readonly seen: [string, boolean][] = [];
  notifyPresence(user: string, online: boolean): void {
    this.seen.push([user, online]);
  }
}

const conn = (user: string): Subscriber => ({ user, tokenHash: 't', deliver: (_: PushItem) => undefined, close: () => undefined });

describe('PresenceWatch', () => {
  it('tells the watchers of a user, only them, and forgets a watcher entirely', () => {
    const pw = new PresenceWatch(10);
    const [x, y] = [new Recorder(), new Recorder()];
    pw.watch(x, ['a', 'b']);
    pw.watch(y, ['b']);
    pw.changed('a', true);
    pw.changed('b', false);
    pw.changed('c', true);
    expect(x.seen).toEqual([['a', true], ['b', false]]);
    expect(y.seen).toEqual([['b', false]]);
    pw.unwatch(x, ['b', 'never-watched']);
    pw.changed('b', true);
    expect(x.seen).toHaveLength(2);
    expect(y.seen).toEqual([['b', false], ['b', true]]);
    pw.unwatchAll(x);
    pw.unwatchAll(y);
    expect(pw.size).toEqual({ watched: 0, watchers: 0 });
  });

  it('bounds the users per watcher, all or nothing, counting a repeated user once', () => {
    const pw = new PresenceWatch(3);
    const x = new Recorder();
    pw.watch(x, ['a', 'b']);
    pw.watch(x, ['a', 'b', 'b']);
    expect(pw.watchedBy(x)).toBe(2);
    expect(() => pw.watch(x, ['c', 'd'])).toThrow(AppError);
    expect(pw.watchedBy(x)).toBe(2);
    pw.watch(x, ['c']);
    expect(pw.watchedBy(x)).toBe(3);
  });

  it('is told by the hub of a user\'s first connection and last close only', () => {
    const hub = new LocalHub();
    const pw = new PresenceWatch(10);
    hub.onPresence((u, online) => pw.changed(u, online));
    const x = new Recorder();
    pw.watch(x, ['a']);
    const [a1, a2] = [conn('a'), conn('a')];
    hub.add(a1);
    hub.add(a2);
    hub.remove(a1);
    hub.remove(a1);
    hub.remove(a2);
    expect(x.seen).toEqual([['a', true], ['a', false]]);
  });
});
