import type { Hub } from '../../bus/hub.js';
import { LocalAccessEvents, type AccessEvents, type AccessListener } from './events.js';

/**
 * AccessEvents over the push hub's cache-drop broadcast (`Hub.invalidate`), so a role or membership change
 * made on one process drops the access decisions of every process. With BUS=local the hub tells only this
 * process, synchronously, exactly as LocalAccessEvents does. A process that lost the bus for a while is told
 * ('*', '*') when it is back: it then drops every decision (listeners get cid '*').
 */
export class HubAccessEvents implements AccessEvents {
  private readonly local: LocalAccessEvents;

  constructor(private readonly hub: Hub, onError: (err: unknown) => void = () => undefined) {
    this.local = new LocalAccessEvents(onError);
    hub.onInvalidate((kind, key) => {
      if (kind === 'access') {
        const [cid, user] = decode(key);
        if (cid !== null) this.local.changed(cid, user ?? undefined);
      } else if (kind === '*') this.local.changed('*');
    });
  }

  changed(cid: string, user?: string): void {
    this.hub.invalidate('access', JSON.stringify([cid, user ?? null]));
  }

  subscribe(listener: AccessListener): () => void {
    return this.local.subscribe(listener);
  }
}

function decode(key: string): [string | null, string | null] {
  try {
    const v = JSON.parse(key) as unknown;
    if (Array.isArray(v) && typeof v[0] === 'string' && (v[1] === null || typeof v[1] === 'string')) return [v[0], v[1] as string | null];
  } catch {
    // another build's key shape: drop everything below instead
  }
  return ['*', null];
}
