/** A tiny typed event emitter (no Node `events` in the browser build). */
export class Emitter<E extends object> {
  private readonly handlers = new Map<keyof E, Set<(v: never) => void>>();

  on<K extends keyof E>(event: K, h: (v: E[K]) => void): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(h as (v: never) => void);
    return () => this.off(event, h);
  }

  off<K extends keyof E>(event: K, h: (v: E[K]) => void): void {
    this.handlers.get(event)?.delete(h as (v: never) => void);
  }

  protected emit<K extends keyof E>(event: K, v: E[K]): void {
    for (const h of [...(this.handlers.get(event) ?? [])]) {
      try {
        (h as (v: E[K]) => void)(v);
      } catch {
        // A failing listener must not break the connection's state machine.
      }
    }
  }
}

/** An async iterator fed by push(); ends on close(). */
export class AsyncQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiters: ((r: IteratorResult<T>) => void)[] = [];
  private done = false;

  push(v: T): void {
    if (this.done) return;
    const w = this.waiters.shift();
    if (w) w({ value: v, done: false });
    else this.items.push(v);
  }

  close(): void {
    this.done = true;
    for (const w of this.waiters) w({ value: undefined, done: true });
    this.waiters = [];
  }

  next(): Promise<IteratorResult<T>> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve({ value: v, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  return(): Promise<IteratorResult<T>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
