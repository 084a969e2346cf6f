import type { AppendOutcome, NewEvent, Store } from '../../store/port.js';

interface Waiting {
  event: NewEvent;
  resolve: (o: AppendOutcome) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: every event appended in the same event-loop turn (up to `maxBatch`) goes to the store
 * as one batch, at the end of that turn, without waiting for the batches before it to commit. The store
 * applies and answers its calls in call order (Store.appendEvents), so commits — and the pushes that
 * follow them — stay in seq order; the embedded store's writer thread also merges every batch that
 * queued during a commit into the next transaction, so one fsync acknowledges all of them.
 */
export class GroupCommitter {
  private queue: Waiting[] = [];
  private scheduled = false;
  private inFlight = 0;

  /** @param observe told of every batch: its size and the seconds the store took to make it durable. */
  constructor(private readonly store: Store, private readonly maxBatch: number, private readonly observe?: (size: number, seconds: number) => void) {}

  append(event: NewEvent): Promise<AppendOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      while (this.queue.length > 0) void this.flush(this.queue.splice(0, this.maxBatch));
    });
  }

  private async flush(batch: Waiting[]): Promise<void> {
    this.inFlight++;
    try {
      const started = performance.now();
      const outcomes = await this.store.appendEvents(batch.map((w) => w.event));
      this.observe?.(batch.length, (performance.now() - started) / 1000);
      batch.forEach((w, i) => {
        const o = outcomes[i];
        if (o) w.resolve(o);
        else w.reject(new Error('store returned too few outcomes'));
      });
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.inFlight--;
    }
  }

  /** Resolves once everything queued so far has been written (or failed). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight > 0 || this.scheduled) {
      await new Promise((r) => setImmediate(r));
    }
  }
}
