import { Backoff } from './backoff.js';
import { Emitter } from './emitter.js';
import { ImError, toImError } from './errors.js';
import type { RelationMessage } from './message.js';
import type { SendResult } from './rest.js';
import { getJson, setJson, type KeyValueStorage } from './storage.js';

export interface OutboxEvents {
  sent: { message: RelationMessage; result: SendResult };
  failed: { message: RelationMessage; error: ImError };
  retrying: { message: RelationMessage; error: ImError; attempt: number; delayMs: number };
}

export interface OutboxOptions {
  storage: KeyValueStorage;
  key: string;
  /** How to send one message now (the socket when connected, else REST). Must throw ImError. */
  transport: (m: RelationMessage) => Promise<SendResult>;
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /** Give up on a message after this long of temporary failures (default 4 min: a message's timestamp must stay within the server's CLOCK_SKEW_MS, 5 min by default). */
  maxAgeMs?: number;
}

interface Entry {
  message: RelationMessage;
  waiters: { resolve: (r: SendResult) => void; reject: (e: ImError) => void }[];
}

/**
 * Messages waiting to be acknowledged, persisted (a reload resends them) and sent one after another in
 * order. Resending is idempotent because the id is the message's hash: the server answers a repeat with
 * the first answer and stores nothing. Temporary errors (network, OVERLOADED, SHUTTING_DOWN …) are retried
 * with full-jitter backoff; any other error ends that send with its code and the next message goes on.
 */
export class Outbox extends Emitter<OutboxEvents> {
  private readonly queue: Entry[] = [];
  private running = false;
  private loaded = false;
  private wake: (() => void) | null = null;
  private stopped = false;

  constructor(private readonly opts: OutboxOptions) {
    super();
  }

  /** Loads messages left by an earlier run and starts sending them. */
  async start(): Promise<void> {
    await this.load();
    this.stopped = false;
    void this.run();
  }

  private loading: Promise<void> | null = null;

  private load(): Promise<void> {
    this.loading ??= (async () => {
      const saved = (await getJson<RelationMessage[]>(this.opts.storage, this.opts.key)) ?? [];
      // Messages queued before the load go after the saved ones (they are newer).
      const fresh = this.queue.splice(0);
      for (const m of saved) if (!fresh.some((e) => e.message.id === m.id)) this.queue.push({ message: m, waiters: [] });
      this.queue.push(...fresh);
      this.loaded = true;
    })();
    return this.loading;
  }

  stop(): void {
    this.stopped = true;
    this.wake?.();
  }

  /** Messages not yet acknowledged. */
  pending(): RelationMessage[] {
    return this.queue.map((e) => e.message);
  }

  /** Queues a signed message; resolves with the server's answer, rejects with the refusal's ImError. */
  send(message: RelationMessage): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => {
      const existing = this.queue.find((e) => e.message.id === message.id);
      if (existing) existing.waiters.push({ resolve, reject });
      else this.queue.push({ message, waiters: [{ resolve, reject }] });
      // Sending works before start(): the stored queue is loaded first, so nothing saved is overwritten.
      void this.load().then(() => this.persist()).then(() => this.run(), (e: unknown) => reject(toImError(e)));
    });
  }

  /** Nudges a waiting retry to go now (e.g. the connection came back). */
  kick(): void {
    this.wake?.();
  }

  private persist(): Promise<void> {
    return setJson(this.opts.storage, this.opts.key, this.queue.map((e) => e.message));
  }

  private async run(): Promise<void> {
    if (this.running || this.stopped || !this.loaded) return;
    this.running = true;
    try {
      while (!this.stopped && this.queue.length > 0) {
        const entry = this.queue[0]!;
        const outcome = await this.attempt(entry);
        if (outcome === 'stopped') return;
        this.queue.shift();
        await this.persist();
        if (outcome.ok) {
          this.emit('sent', { message: entry.message, result: outcome.result });
          for (const w of entry.waiters) w.resolve(outcome.result);
        } else {
          this.emit('failed', { message: entry.message, error: outcome.error });
          for (const w of entry.waiters) w.reject(outcome.error);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private async attempt(entry: Entry): Promise<{ ok: true; result: SendResult } | { ok: false; error: ImError } | 'stopped'> {
    const backoff = new Backoff(this.opts.backoffBaseMs ?? 250, this.opts.backoffCapMs ?? 10_000);
    const maxAge = this.opts.maxAgeMs ?? 240_000;
    for (;;) {
      if (this.stopped) return 'stopped';
      try {
        return { ok: true, result: await this.opts.transport(entry.message) };
      } catch (e) {
        const error = toImError(e);
        if (!error.temporary) return { ok: false, error };
        if (Date.now() - entry.message.timestamp > maxAge) {
          return { ok: false, error: new ImError('TIMEOUT', `not acknowledged within ${maxAge} ms of its timestamp; last error ${error.code}: ${error.message}`, { cause: error }) };
        }
        const delayMs = backoff.next();
        this.emit('retrying', { message: entry.message, error, attempt: backoff.attempt, delayMs });
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => { this.wake = null; resolve(); }, delayMs);
          this.wake = () => { clearTimeout(t); this.wake = null; resolve(); };
        });
      }
    }
  }
}
