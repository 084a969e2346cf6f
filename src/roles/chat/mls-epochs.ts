import type { MlsGroupState, Store } from '../../store/port.js';

/**
 * Each MLS group's state as this process last saw it, so an application message costs no store read:
 * filled from the store on a group's first message here and from this process's commit results; epochs
 * only grow, so a stale entry is only ever behind, and the caller re-reads it (`refresh`) before refusing
 * a message as ahead. Bounded: past `max` groups the oldest half is dropped (they are read again).
 */
export class MlsEpochCache {
  private readonly map = new Map<string, MlsGroupState>();
  private readonly reading = new Map<string, Promise<MlsGroupState>>();

  constructor(private readonly store: Store, private readonly max = 100_000) {}

  get(cid: string): Promise<MlsGroupState> {
    const known = this.map.get(cid);
    return known ? Promise.resolve(known) : this.refresh(cid);
  }

  refresh(cid: string): Promise<MlsGroupState> {
    const running = this.reading.get(cid);
    if (running) return running;
    const p = this.store.mlsGroup(cid).then((g) => {
      this.put(g);
      return this.map.get(cid) ?? g;
    }).finally(() => this.reading.delete(cid));
    this.reading.set(cid, p);
    return p;
  }

  /** A commit was stored (or the store named the current epoch): the epoch is at least `epoch`. */
  saw(cid: string, epoch: number): void {
    const g = this.map.get(cid);
    if (g) {
      if (epoch > g.epoch) this.map.set(cid, { ...g, epoch });
    } else {
      this.put({ cid, epoch, pendingRemovalEpoch: null });
    }
  }

  /** Forgets a group (e.g. the proxy proposed a removal in it: the next message reads the store). */
  forget(cid: string): void {
    this.map.delete(cid);
  }

  private put(g: MlsGroupState): void {
    const old = this.map.get(g.cid);
    if (old && old.epoch > g.epoch) return;
    if (this.map.size >= this.max) {
      let n = this.max >> 1;
      for (const k of this.map.keys()) {
        if (n-- <= 0) break;
        this.map.delete(k);
      }
    }
    this.map.set(g.cid, g);
  }
}
