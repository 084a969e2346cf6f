/**
 * Visits every item of a live set once per `periodMs`, a slice at a time, instead of all of them in one
 * timer callback. Pinging 1,128 sockets at once held the event loop ~60 ms on a 2-core VM (a socket
 * write is a syscall that wakes the peer), so every 30 s each send waiting behind it was late by that
 * much: the send-to-push p99 at 1,000 msg/s was that stall. In slices, a tick every `tickMs` takes its
 * share of the set (size / ticks per period, at least one), continuing where the last tick stopped, so
 * each item is still visited once per period, about `periodMs` after its last visit.
 *
 * Items added during a round are visited in that round (a Set's iterator sees them); items deleted are
 * skipped. `visit` must not throw (a throw is caught and the round goes on).
 */
export class StaggeredHeartbeat<T> {
  private readonly timer: NodeJS.Timeout;
  private readonly ticksPerPeriod: number;
  private round: Iterator<T> | null = null;
  /** Ticks since the current round began; a round begins once per period, however soon the last one ended. */
  private ticks = 0;

  constructor(private readonly items: Set<T>, periodMs: number, private readonly visit: (item: T) => void) {
    // Ticks of 10-100 ms: small enough that a tick's share is a few sockets, few enough to cost nothing.
    const tickMs = Math.max(10, Math.min(100, Math.floor(periodMs / 10)));
    this.ticksPerPeriod = Math.max(1, Math.round(periodMs / tickMs));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  /** One tick: the next share of the set. Public for tests. */
  tick(): void {
    this.ticks++;
    if (this.round === null) {
      if (this.ticks < this.ticksPerPeriod || this.items.size === 0) return;
      this.round = this.items.values();
      this.ticks = 0;
    }
    let share = Math.max(1, Math.ceil(this.items.size / this.ticksPerPeriod));
    while (share > 0) {
      const next = this.round.next();
      if (next.done) {
        // This round is over; the next begins a period after this one began.
        this.round = null;
        return;
      }
      share--;
      try {
        this.visit(next.value);
      } catch {
        // one item's failure does not stop the others' heartbeat
      }
    }
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
