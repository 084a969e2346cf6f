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

/** The slice of IndexedDB used (typed here: the SDK's sources also compile without the DOM library). */
interface IdbRequest<T = unknown> { result: T; error: unknown; onsuccess: (() => void) | null; onerror: (() => void) | null }
interface IdbOpenRequest extends IdbRequest<IdbDatabase> { onupgradeneeded: (() => void) | null; onblocked: (() => void) | null }
interface IdbObjectStore { get(key: string): IdbRequest; put(value: string, key: string): IdbRequest; delete(key: string): IdbRequest }
interface IdbTransaction { objectStore(name: string): IdbObjectStore; error: unknown; oncomplete: (() => void) | null; onerror: (() => void) | null; onabort: (() => void) | null }
interface IdbDatabase {
  objectStoreNames: { contains(name: string): boolean };
  createObjectStore(name: string): unknown;
  transaction(store: string, mode: 'readonly' | 'readwrite'): IdbTransaction;
  close(): void;
  onversionchange: (() => void) | null;
}
export interface IdbFactoryLike { open(name: string, version: number): IdbOpenRequest }

/**
 * The browser's storage for the SDK's state: IndexedDB (one object store of string values). The MLS
 * state is too large for localStorage (its quota is a few MB, a 1,000-member group's state alone is
 * megabytes) and too sensitive to sit in a store every script of the origin reads synchronously as
 * plain strings. Each call is its own transaction; `set` resolves once the write is committed, so a
 * value written before a reload is there after it. One connection is opened lazily and reused.
 */
export class IndexedDbStorage implements KeyValueStorage {
  private open: Promise<IdbDatabase> | null = null;

  constructor(
    private readonly dbName = 'relation-im',
    private readonly storeName = 'kv',
    private readonly factory: IdbFactoryLike = (globalThis as unknown as { indexedDB: IdbFactoryLike }).indexedDB,
  ) {}

  private db(): Promise<IdbDatabase> {
    if (!this.open) {
      this.open = new Promise<IdbDatabase>((resolve, reject) => {
        const req = this.factory.open(this.dbName, 1);
        req.onupgradeneeded = () => {
          if (!req.result.objectStoreNames.contains(this.storeName)) req.result.createObjectStore(this.storeName);
        };
        req.onsuccess = () => {
          const db = req.result;
          // Another tab upgrading the database: let it, and reopen on the next call.
          db.onversionchange = () => {
            db.close();
            this.open = null;
          };
          resolve(db);
        };
        req.onerror = () => reject(req.error ?? new Error('IndexedDB open failed'));
        req.onblocked = () => reject(new Error('IndexedDB open blocked by another connection'));
      });
      this.open.catch(() => {
        this.open = null;
      });
    }
    return this.open;
  }

  private async tx<T>(mode: 'readonly' | 'readwrite', run: (s: IdbObjectStore) => IdbRequest<T> | void): Promise<T | undefined> {
    const db = await this.db();
    return new Promise<T | undefined>((resolve, reject) => {
      const t = db.transaction(this.storeName, mode);
      let result: T | undefined;
      const req = run(t.objectStore(this.storeName));
      if (req) req.onsuccess = () => { result = req.result; };
      t.oncomplete = () => resolve(result);
      t.onerror = () => reject(t.error ?? new Error('IndexedDB transaction failed'));
      t.onabort = () => reject(t.error ?? new Error('IndexedDB transaction aborted'));
    });
  }

  async get(key: string): Promise<string | null> {
    const v = await this.tx<unknown>('readonly', (s) => s.get(key));
    return typeof v === 'string' ? v : null;
  }

  async set(key: string, value: string): Promise<void> {
    await this.tx('readwrite', (s) => s.put(value, key));
  }

  async remove(key: string): Promise<void> {
    await this.tx('readwrite', (s) => s.delete(key));
  }

  /** Closes the connection (the next call opens it again). */
  async close(): Promise<void> {
    const open = this.open;
    this.open = null;
    if (open) (await open).close();
  }
}
