import type { AppendOutcome, NewEvent, Store } from '../store/port.js';

interface Waiting {
  event: NewEvent;
  resolve: (o: AppendOutcome) => void;
  reject: (e: unknown) => void;
}

/**
 * Group commit: every event appended in the same event-loop turn (up to `maxBatch`) is written in one
 * store transaction, so one fsync acknowledges many messages. Flushes run one at a time, which keeps a
 * process's commits — and so its pushes — in seq order.
 */
export class GroupCommitter {
  private queue: Waiting[] = [];
  private flushing = false;
  private scheduled = false;

  constructor(private readonly store: Store, private readonly maxBatch: number) {}

  append(event: NewEvent): Promise<AppendOutcome> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.flushing || this.queue.length === 0) return;
    this.flushing = true;
    const batch = this.queue.splice(0, this.maxBatch);
    try {
      const outcomes = await this.store.appendEvents(batch.map((w) => w.event));
      batch.forEach((w, i) => {
        const o = outcomes[i];
        if (o) w.resolve(o);
        else w.reject(new Error('store returned too few outcomes'));
      });
    } catch (e) {
      for (const w of batch) w.reject(e);
    } finally {
      this.flushing = false;
      if (this.queue.length > 0) this.schedule();
    }
  }

  /** Resolves once everything queued so far has been written (or failed). */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.flushing || this.scheduled) {
      await new Promise((r) => setImmediate(r));
    }
  }
}
