/**
 * Where the SDK keeps its state (session key, token, cursors). Methods may be synchronous or return
 * promises (IndexedDB, a browser extension's `chrome.storage`, a file in Node).
 */
export interface KeyValueStorage {
  get(key: string): string | null | undefined | Promise<string | null | undefined>;
  set(key: string, value: string): void | Promise<void>;
  remove(key: string): void | Promise<void>;
}

export class MemoryStorage implements KeyValueStorage {
  private readonly map = new Map<string, string>();
  get(key: string): string | null { return this.map.get(key) ?? null; }
  set(key: string, value: string): void { this.map.set(key, value); }
  remove(key: string): void { this.map.delete(key); }
}

/** The slice of the Web Storage API used (window.localStorage, sessionStorage). */
export interface WebStorageLike {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

export class LocalStorage implements KeyValueStorage {
  constructor(private readonly store: WebStorageLike = (globalThis as unknown as { localStorage: WebStorageLike }).localStorage, private readonly prefix = 'relation-im:') {}
  get(key: string): string | null { return this.store.getItem(this.prefix + key); }
  set(key: string, value: string): void { this.store.setItem(this.prefix + key, value); }
  remove(key: string): void { this.store.removeItem(this.prefix + key); }
}

export async function getJson<T>(s: KeyValueStorage, key: string): Promise<T | null> {
  const v = await s.get(key);
  if (v === null || v === undefined) return null;
  try {
    return JSON.parse(v) as T;
  } catch {
    return null;
  }
}

export async function setJson(s: KeyValueStorage, key: string, value: unknown): Promise<void> {
  await s.set(key, JSON.stringify(value));
}
