/**
 * The bus port: what a cross-process bus adapter offers the push layer (ClusterHub). One channel per
 * deployment (its name from BUS_PREFIX), fire-and-forget publishes, and a subscription that the adapter
 * keeps (re)established. No driver type crosses it; `nats.ts`, `redis.ts` and `memory.ts` implement it
 * and pass one contract suite (`test/push/bus-contract.ts`).
 *
 * Nothing here is trusted for delivery: the hub treats every message as a doorbell that may be lost, and
 * proves the subscription works by receiving its own pings (a reconnect that the driver reports as done
 * is not taken at its word; centrifugo#1189).
 */
export interface BusTransport {
  /** `nats`, `redis` or `memory`, for readiness and logs. */
  readonly kind: string;
  /**
   * Connects and subscribes; resolves once the subscription is in place at the server, so a message
   * published by anyone after that is received. Rejects when the bus cannot be reached at start.
   */
  start(handlers: BusHandlers): Promise<void>;
  /** Best effort: may be dropped (bus down, buffer full); never throws. */
  publish(data: Uint8Array): void;
  /** Unsubscribes and disconnects. */
  close(): Promise<void>;
}

export interface BusHandlers {
  /** A message from any process, this one's own included. */
  message(data: Uint8Array): void;
  /** The adapter lost (false) or regained (true) its connection; `reason` for the logs. */
  state(connected: boolean, reason: string): void;
}
