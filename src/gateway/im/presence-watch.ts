import { AppError } from '../../errors/app-error.js';

/** A connection that asked to be told when some users come online or go offline. */
export interface PresenceWatcher {
  notifyPresence(user: string, online: boolean): void;
}

/**
 * Who watches whose presence (PRESENCE with watch, /im): at most `maxPerWatcher` users per connection,
 * dropped when the connection closes, so the registry is bounded by connections × that limit. The hub says
 * when a user's first connection opens or last one closes (`changed`); each watcher of that user is told.
 */
export class PresenceWatch {
  private readonly byWatched = new Map<string, Set<PresenceWatcher>>();
  private readonly byWatcher = new Map<PresenceWatcher, Set<string>>();

  constructor(readonly maxPerWatcher: number) {}

  /** Adds users to the watcher's list, all or none: INVALID_FIELD when the list would exceed the limit. */
  watch(w: PresenceWatcher, users: readonly string[]): void {
    const mine = this.byWatcher.get(w) ?? new Set<string>();
    const fresh = new Set(users.filter((u) => !mine.has(u)));
    if (mine.size + fresh.size > this.maxPerWatcher) {
      throw new AppError('INVALID_FIELD', `at most ${this.maxPerWatcher} watched users per connection (${mine.size} now)`, { field: 'body.0' });
    }
    if (fresh.size === 0) return;
    this.byWatcher.set(w, mine);
    for (const u of fresh) {
      mine.add(u);
      let set = this.byWatched.get(u);
      if (!set) this.byWatched.set(u, (set = new Set()));
      set.add(w);
    }
  }

  unwatch(w: PresenceWatcher, users: readonly string[]): void {
    const mine = this.byWatcher.get(w);
    if (!mine) return;
    for (const u of users) {
      if (!mine.delete(u)) continue;
      const set = this.byWatched.get(u);
      set?.delete(w);
      if (set?.size === 0) this.byWatched.delete(u);
    }
    if (mine.size === 0) this.byWatcher.delete(w);
  }

  /** Forgets everything the watcher watched (on close). */
  unwatchAll(w: PresenceWatcher): void {
    const mine = this.byWatcher.get(w);
    if (mine) this.unwatch(w, [...mine]);
  }

  changed(user: string, online: boolean): void {
    const set = this.byWatched.get(user);
    // A copy: a watcher that is closed while being told (slow consumer) leaves the set meanwhile.
    if (set) for (const w of [...set]) w.notifyPresence(user, online);
  }

  /** Users watched by this watcher (for tests and stats). */
  watchedBy(w: PresenceWatcher): number {
    return this.byWatcher.get(w)?.size ?? 0;
  }

  /** Watched users and watchers held, for tests and stats. */
  get size(): { watched: number; watchers: number } {
    return { watched: this.byWatched.size, watchers: this.byWatcher.size };
  }
}
