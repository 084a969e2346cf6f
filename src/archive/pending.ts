import type { ArchiveStore, PendingSummary } from './port.js';

/**
 * Running total of the face-0 events after the last cut bundle. Each refresh only reads the events
 * committed since the previous one, so checking the size trigger often costs little however large the
 * backlog is. (Relies on commit positions becoming visible in order, which the store port guarantees.)
 */
export class PendingCounter {
  private base = -1;
  private total: PendingSummary = { count: 0, bodyBytes: 0, lastPos: 0 };
  private queue: Promise<unknown> = Promise.resolve();

  /** Refreshes are serialised: two overlapping ones (a status request during a run) must not add the same events twice. */
  refresh(store: Pick<ArchiveStore, 'pendingSince'>, afterPos: number): Promise<PendingSummary> {
    const next = this.queue.then(() => this.step(store, afterPos));
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async step(store: Pick<ArchiveStore, 'pendingSince'>, afterPos: number): Promise<PendingSummary> {
    if (afterPos !== this.base) {
      this.base = afterPos;
      this.total = { count: 0, bodyBytes: 0, lastPos: afterPos };
    }
    const more = await store.pendingSince(this.total.lastPos);
    this.total = {
      count: this.total.count + more.count,
      bodyBytes: this.total.bodyBytes + more.bodyBytes,
      lastPos: more.lastPos,
    };
    return this.total;
  }
}
