import type { Clock } from '../../clock.js';
import { AppError } from '../../errors/app-error.js';
import type { Hub } from '../../bus/hub.js';
import type { BanRecord, Store } from '../../store/port.js';

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;

/**
 * The operator's ban list (risk control). Kept in the store (durable) and mirrored in memory, so the
 * check on every login, token use and send costs a Set lookup. A ban closes the address's open
 * connections at once (close 4203); its tokens stop working (BANNED) and its sends are refused on every
 * face. A change is announced on the hub (`invalidate('ban', address)`): with a bus every other process
 * reloads the list from the store and closes that address's connections there too; a process back from a
 * bus loss (`'*'`) reloads as well.
 */
export class BanList {
  private readonly banned = new Map<string, BanRecord>();

  constructor(private readonly store: Store, private readonly hub: Hub, private readonly clock: Clock, private readonly onError: (err: unknown) => void = () => undefined) {
    hub.onInvalidate((kind) => {
      if (kind !== 'ban' && kind !== '*') return;
      this.load().then(() => {
        for (const address of this.banned.keys()) this.hub.closeUser(address, 'BANNED');
      }, this.onError);
    });
  }

  async load(): Promise<void> {
    const all = await this.store.listBans();
    this.banned.clear();
    for (const b of all) this.banned.set(b.address, b);
  }

  isBanned(address: string): boolean {
    return this.banned.size > 0 && this.banned.has(address.toLowerCase());
  }

  async ban(address: string, reason: string): Promise<BanRecord> {
    const record: BanRecord = { address: normalise(address), reason: reason.slice(0, 500), createdAt: this.clock.now() };
    await this.store.putBan(record);
    this.banned.set(record.address, record);
    this.hub.closeUser(record.address, 'BANNED');
    this.hub.invalidate('ban', record.address);
    return record;
  }

  /** True when there was a ban to lift. */
  async unban(address: string): Promise<boolean> {
    const a = normalise(address);
    const had = await this.store.deleteBan(a);
    this.banned.delete(a);
    this.hub.invalidate('ban', a);
    return had;
  }

  list(): BanRecord[] {
    return [...this.banned.values()].sort((x, y) => x.createdAt - y.createdAt || x.address.localeCompare(y.address));
  }
}

function normalise(address: string): string {
  if (!ADDRESS.test(address)) throw new AppError('INVALID_FIELD', 'address must be 0x followed by 40 hex digits', { field: 'address' });
  return address.toLowerCase();
}
