/**
 * The access invalidation hook: whoever changes a role or a membership announces it here, and every cache
 * of access decisions (the /im gateway's AccessCache, any other face's) drops what it held about it, so a
 * change made through one face takes effect on every face at once.
 *
 * Deliberately tiny so a cross-process bus can carry it: an adapter implements `changed` by publishing
 * `{cid, user}` on the bus's control broadcast and calls its local `subscribe` listeners for each notice it
 * receives (its own included). A lost notice costs at most the cache's TTL, never a wrong grant beyond it.
 */
export interface AccessEvents {
  /** Roles or membership in `cid` changed: for `user`, or for everyone in it when `user` is omitted. */
  changed(cid: string, user?: string): void;
  /** Listens to every change (this process's and, with a bus, every other's); returns the unsubscribe. */
  subscribe(listener: AccessListener): () => void;
}

export type AccessListener = (cid: string, user: string | undefined) => void;

/** The in-process implementation: listeners are called synchronously, before `changed` returns. */
export class LocalAccessEvents implements AccessEvents {
  readonly #listeners = new Set<AccessListener>();

  constructor(private readonly onError: (err: unknown) => void = () => undefined) {}

  changed(cid: string, user?: string): void {
    for (const l of this.#listeners) {
      try {
        l(cid, user);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  subscribe(listener: AccessListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}
