import { getJson, setJson, type KeyValueStorage } from './storage.js';

interface Saved {
  epoch: string | null;
  cursors: Record<string, number>;
  /** Set after the first full sync: from then on a chat without a cursor is read from its first seq. */
  initialized: boolean;
}

/**
 * Per-chat cursors (highest `seq` delivered) of one proxy and user, persisted through the storage, with
 * the store epoch they belong to (SPEC section 9). When the proxy announces another epoch, the cursors
 * mean nothing any more (seqs were renumbered): they are dropped and the client resynchronises.
 */
export class CursorStore {
  private state: Saved = { epoch: null, cursors: {}, initialized: false };
  private loaded = false;

  constructor(private readonly storage: KeyValueStorage, private readonly key: string) {}

  async load(): Promise<void> {
    if (this.loaded) return;
    const s = await getJson<Saved>(this.storage, this.key);
    if (s && typeof s === 'object' && s.cursors && typeof s.cursors === 'object') {
      this.state = { epoch: typeof s.epoch === 'string' ? s.epoch : null, cursors: { ...s.cursors }, initialized: s.initialized === true };
    }
    this.loaded = true;
  }

  get epoch(): string | null { return this.state.epoch; }
  get initialized(): boolean { return this.state.initialized; }

  /**
   * Applies the epoch the server announced. Returns true when it differs from the stored one: the
   * cursors were dropped. An absent epoch (servers before epochs) changes nothing; a first announced
   * epoch is adopted with the cursors kept (same store, newer server).
   */
  async applyEpoch(announced: string | null | undefined): Promise<boolean> {
    if (typeof announced !== 'string' || announced === '') return false;
    if (this.state.epoch === announced) return false;
    const changed = this.state.epoch !== null;
    this.state = changed ? { epoch: announced, cursors: {}, initialized: false } : { ...this.state, epoch: announced };
    await this.save();
    return changed;
  }

  get(chatId: string): number | undefined {
    return this.state.cursors[chatId.toLowerCase()];
  }

  all(): Record<string, number> {
    return { ...this.state.cursors };
  }

  /** Raises a chat's cursor (never lowers it). */
  async advance(chatId: string, seq: number): Promise<void> {
    const k = chatId.toLowerCase();
    if ((this.state.cursors[k] ?? -1) >= seq) return;
    this.state.cursors[k] = seq;
    await this.save();
  }

  async remove(chatId: string): Promise<void> {
    delete this.state.cursors[chatId.toLowerCase()];
    await this.save();
  }

  async markInitialized(): Promise<void> {
    if (this.state.initialized) return;
    this.state.initialized = true;
    await this.save();
  }

  async clear(): Promise<void> {
    this.state = { epoch: this.state.epoch, cursors: {}, initialized: false };
    await this.save();
  }

  private save(): Promise<void> {
    return setJson(this.storage, this.key, this.state);
  }
}

/** Remembers recently delivered (chat, seq) pairs so a frame seen twice is delivered once. */
export class SeenSet {
  private readonly set = new Set<string>();
  constructor(private readonly max = 20_000) {}
  /** True the first time a pair is offered. */
  add(chatId: string, seq: number): boolean {
    const k = `${chatId.toLowerCase()}#${seq}`;
    if (this.set.has(k)) return false;
    this.set.add(k);
    if (this.set.size > this.max) {
      const first = this.set.values().next().value;
      if (first !== undefined) this.set.delete(first);
    }
    return true;
  }
}
