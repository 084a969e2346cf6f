import type { KeyValueStorage } from '@relation-im/sdk';

/**
 * The SDK's KeyValueStorage on IndexedDB (one object store of strings), so the MLS state (device key,
 * private KeyPackages, each group's ratchet state, X-Wing keys of several KB each) is not squeezed into
 * localStorage's few MB nor written synchronously on the main thread. Values are kept in memory as well:
 * reads after the first are synchronous-fast, and a write resolves once IndexedDB committed it (the SDK
 * awaits it before a KeyPackage's public half leaves the device). Replace with the SDK's own
 * IndexedDbStorage once it has one.
 */
export class IdbStorage implements KeyValueStorage {
  private readonly db: Promise<IDBDatabase>;
  private readonly cache = new Map<string, string | null>();

  constructor(name = 'relation-im', private readonly store = 'kv') {
    this.db = new Promise((resolve, reject) => {
      const req = indexedDB.open(name, 1);
      req.onupgradeneeded = () => req.result.createObjectStore(store);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error ?? new Error('IndexedDB open failed'));
    });
  }

  private async tx<T>(mode: IDBTransactionMode, f: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
    const db = await this.db;
    return new Promise<T>((resolve, reject) => {
      const t = db.transaction(this.store, mode);
      const req = f(t.objectStore(this.store));
      t.oncomplete = () => resolve(req.result);
      t.onerror = () => reject(t.error ?? new Error('IndexedDB transaction failed'));
      t.onabort = () => reject(t.error ?? new Error('IndexedDB transaction aborted'));
    });
  }

  async get(key: string): Promise<string | null> {
    if (this.cache.has(key)) return this.cache.get(key) ?? null;
    const v = await this.tx('readonly', (s) => s.get(key) as IDBRequest<unknown>);
    const out = typeof v === 'string' ? v : null;
    if (!this.cache.has(key)) this.cache.set(key, out);
    return this.cache.get(key) ?? null;
  }

  async set(key: string, value: string): Promise<void> {
    this.cache.set(key, value);
    await this.tx('readwrite', (s) => s.put(value, key));
  }

  async remove(key: string): Promise<void> {
    this.cache.set(key, null);
    await this.tx('readwrite', (s) => s.delete(key));
  }
}
