import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CLOSE_CODES, ERROR_CATALOGUE, type CloseName, type ErrorCode } from '../errors/catalogue.js';

/** Where a send arrived: `POST /message/send`, a `/ws` `send` frame, an `/im` SEND (cmd 3). */
export type SendFace = 'rest' | 'ws' | 'im';
/** The two WebSocket faces. */
export type SocketFace = 'ws' | 'im';

const SEND_FACES: readonly SendFace[] = ['rest', 'ws', 'im'];
const SOCKET_FACES: readonly SocketFace[] = ['ws', 'im'];
const CODES = Object.keys(ERROR_CATALOGUE) as ErrorCode[];
const CODE_INDEX = new Map<string, number>(CODES.map((c, i) => [c, i]));
const CLOSES = Object.keys(CLOSE_CODES) as CloseName[];
const CLOSE_INDEX = new Map<string, number>(CLOSES.map((c, i) => [c, i]));
/** JSON-RPC methods the relation reader calls; anything else is counted as `other` (labels stay bounded). */
const RPC_METHODS = new Set(['eth_call', 'eth_getLogs', 'eth_blockNumber', 'eth_getBlockByNumber', 'eth_getCode', 'eth_chainId']);

/** Counts the sends of one face; `accepted` is one array increment (no label lookup on the hot path). */
export interface SendMeter {
  accepted(): void;
  refused(code: string): void;
}

/** What a WebSocket face reports: a server-side close and its reason (SLOW_CONSUMER among them). */
export interface SocketMeter {
  closed(reason: CloseName): void;
}

/** Observes one JSON-RPC call of the relation reader (`error`: no answer / an error answer). */
export type RpcObserver = (method: string, seconds: number, error?: 'transport' | 'rpc') => void;

/** The archive figures the metrics read at scrape time (a subset of `Archiver.status()`). */
export interface ArchiveFigures {
  pending: { messages: number; bytes: number };
  lastBundle: { cutAt: number } | null;
  lastError: { failures: number } | null;
}

/**
 * The process's Prometheus metrics (prom-client), in a registry of their own (several apps can share a
 * process in tests). Hot-path counters are plain numbers in arrays, copied into the prom-client counters
 * when `/metrics` is scraped, so a send costs an array increment and never builds a label string.
 * Names, labels and meanings: docs/operations.md.
 */
/** prom-client default metrics whose collection costs time per open handle or descriptor (see the constructor). */
export const EXPENSIVE_DEFAULTS = [
  'process_open_fds', 'nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_requests',
  'nodejs_active_requests_total', 'nodejs_active_resources', 'nodejs_active_resources_total',
] as const;

export class Metrics {
  readonly registry = new Registry();
  readonly #accepted = new Float64Array(SEND_FACES.length);
  readonly #refused = new Float64Array(SEND_FACES.length * CODES.length);
  readonly #closes = new Float64Array(SOCKET_FACES.length * CLOSES.length);
  readonly #commitSize: Histogram;
  readonly #commitSeconds: Histogram;
  readonly #fanout: Histogram;
  readonly #fanoutSeconds: Histogram;
  readonly #rpcSeconds: Histogram<'method'>;
  readonly #rpcErrors: Counter<'method' | 'kind'>;
  readonly #rateLimitStoreErrors: Counter<'store'>;
  #connections: () => Record<SocketFace, { open: number; authenticated: number }> = () => ({ ws: { open: 0, authenticated: 0 }, im: { open: 0, authenticated: 0 } });
  #archive: (() => Promise<ArchiveFigures | null>) | null = null;
  readonly #startedAt = Date.now();

  /** @param options.archiveTimeoutMs how long a scrape waits for the archiver's status before it reports rim_archive_up 0 (2 s). */
  constructor(options: { defaultMetrics?: boolean; archiveTimeoutMs?: number } = {}) {
    const archiveTimeoutMs = options.archiveTimeoutMs ?? 2000;
    const registers = [this.registry];
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry });
      // These walk every open handle, request and file descriptor at each scrape: with 10,000 sockets one
      // scrape held the event loop ~25 ms (a group fan-out waited behind it). rim_connections counts the
      // sockets; process_max_fds stays.
      for (const name of EXPENSIVE_DEFAULTS) this.registry.removeSingleMetric(name);
    }
    const accepted = this.#accepted;
    const refused = this.#refused;
    const closes = this.#closes;
    new Counter({
      name: 'rim_sends_accepted_total', help: 'Sends answered with success (resends of a stored id included), by face.', labelNames: ['face'], registers,
      collect() {
        this.reset();
        SEND_FACES.forEach((face, f) => this.inc({ face }, accepted[f] ?? 0));
      },
    });
    new Counter({
      name: 'rim_sends_refused_total', help: 'Sends answered with an error, by face and catalogue code.', labelNames: ['face', 'code'], registers,
      collect() {
        this.reset();
        SEND_FACES.forEach((face, f) => CODES.forEach((code, c) => {
          const n = refused[f * CODES.length + c] ?? 0;
          if (n > 0) this.inc({ face, code }, n);
        }));
      },
    });
    new Counter({
      name: 'rim_ws_closes_total', help: 'WebSocket connections closed by the server, by face and close reason (catalogue name).', labelNames: ['face', 'reason'], registers,
      collect() {
        this.reset();
        SOCKET_FACES.forEach((face, f) => CLOSES.forEach((reason, r) => {
          const n = closes[f * CLOSES.length + r] ?? 0;
          if (n > 0) this.inc({ face, reason }, n);
        }));
      },
    });
    new Counter({
      name: 'rim_slow_consumer_cuts_total', help: 'Connections cut off as slow consumers (close 4008), by face.', labelNames: ['face'], registers,
      collect() {
        this.reset();
        const r = CLOSE_INDEX.get('SLOW_CONSUMER') as number;
        SOCKET_FACES.forEach((face, f) => this.inc({ face }, closes[f * CLOSES.length + r] ?? 0));
      },
    });
    this.#commitSize = new Histogram({
      name: 'rim_commit_batch_size', help: 'Events per group commit (one store call).', registers,
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096],
    });
    this.#commitSeconds = new Histogram({
      name: 'rim_commit_seconds', help: 'Time from posting a batch to the store until it is durable.', registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.#fanout = new Histogram({
      name: 'rim_push_recipients', help: 'Connections one push was delivered to (this process).', registers,
      buckets: [0, 1, 2, 5, 10, 50, 100, 500, 1000, 5000, 10000],
    });
    this.#fanoutSeconds = new Histogram({
      name: 'rim_push_fanout_seconds', help: 'Time from a push being published until it was handed to the kernel on every connection it was written to (this process).', registers,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.#rpcSeconds = new Histogram({
      name: 'rim_relation_rpc_seconds', help: 'Latency of the relation reader\'s JSON-RPC calls, by method.', labelNames: ['method'], registers,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    });
    this.#rpcErrors = new Counter({
      name: 'rim_relation_rpc_errors_total', help: 'Relation JSON-RPC calls that failed: transport (no answer) or rpc (an error answer, e.g. a revert).', labelNames: ['method', 'kind'], registers,
    });
    this.#rateLimitStoreErrors = new Counter({
      name: 'rim_rate_limit_store_errors_total', help: 'Requests the shared rate-limit store (RATE_LIMIT_STORE redis or postgres) could not count in time; this process counted them on its own.', labelNames: ['store'], registers,
    });
    const self = this;
    new Gauge({
      name: 'rim_connections', help: 'Open WebSocket connections, by face and whether authenticated.', labelNames: ['face', 'state'], registers,
      collect() {
        this.reset();
        const c = self.#connections();
        for (const face of SOCKET_FACES) {
          this.set({ face, state: 'open' }, c[face].open);
          this.set({ face, state: 'authenticated' }, c[face].authenticated);
        }
      },
    });
    // One archive status per scrape, shared by its five gauges: each reads it in its own collect, so all
    // show this scrape's figures (set from another gauge's collect, they showed the previous scrape's).
    let asked: { at: number; status: Promise<ArchiveFigures | null> } | null = null;
    const archiveStatus = (): Promise<ArchiveFigures | null> => {
      if (!asked || Date.now() - asked.at > 500) {
        // Bounded: a scrape answers in time with the archiver down (rim_archive_up 0) rather than wait
        // for it (its status once waited for a whole bundle upload, and the scrape with it).
        const source = self.#archive;
        asked = {
          at: Date.now(),
          status: source
            ? new Promise<ArchiveFigures | null>((resolve) => {
              const timer = setTimeout(() => resolve(null), archiveTimeoutMs);
              timer.unref();
              source().then((st) => { clearTimeout(timer); resolve(st); }, () => { clearTimeout(timer); resolve(null); });
            })
            : Promise.resolve(null),
        };
      }
      return asked.status;
    };
    const archiveGauge = (name: string, help: string, value: (s: ArchiveFigures) => number): void => {
      new Gauge({
        name, help, registers,
        async collect() {
          const status = await archiveStatus();
          if (status) this.set(value(status));
        },
      });
    };
    archiveGauge('rim_archive_backlog_bytes', 'Bytes of committed Relation ONE messages not yet in any bundle (bundle-encoded size).', (st) => st.pending.bytes);
    archiveGauge('rim_archive_backlog_messages', 'Committed Relation ONE messages not yet in any bundle.', (st) => st.pending.messages);
    archiveGauge('rim_archive_backlog_age_seconds', 'Upper bound on how long the backlog has waited: since the last bundle was cut (since this process started when there is none); 0 when nothing is pending.',
      (st) => (st.pending.messages === 0 ? 0 : Math.max(0, (Date.now() - (st.lastBundle?.cutAt ?? self.#startedAt)) / 1000)));
    archiveGauge('rim_archive_upload_failures', 'Consecutive failures of the archive upload now being retried (0 when the last attempt succeeded).', (st) => st.lastError?.failures ?? 0);
    new Gauge({
      name: 'rim_archive_up', help: '1 when the archiver answered its status at this scrape, 0 when it failed, did not answer within 2 s, or is not enabled.', registers,
      async collect() {
        this.set((await archiveStatus()) ? 1 : 0);
      },
    });
  }

  /** The counters of one face's sends, bound once. */
  sends(face: SendFace): SendMeter {
    const f = SEND_FACES.indexOf(face);
    const accepted = this.#accepted;
    const refused = this.#refused;
    const internal = CODE_INDEX.get('INTERNAL') as number;
    return {
      accepted: () => { accepted[f] = (accepted[f] ?? 0) + 1; },
      refused: (code) => {
        const i = f * CODES.length + (CODE_INDEX.get(code) ?? internal);
        refused[i] = (refused[i] ?? 0) + 1;
      },
    };
  }

  socket(face: SocketFace): SocketMeter {
    const base = SOCKET_FACES.indexOf(face) * CLOSES.length;
    const closes = this.#closes;
    return {
      closed: (reason) => {
        const i = base + (CLOSE_INDEX.get(reason) ?? 0);
        closes[i] = (closes[i] ?? 0) + 1;
      },
    };
  }

  /** One group commit: its size and how long the store took to make it durable. */
  readonly commit = (size: number, seconds: number): void => {
    this.#commitSize.observe(size);
    this.#commitSeconds.observe(seconds);
  };

  /** One push delivered to `connections` connections of this process. */
  readonly fanout = (connections: number): void => {
    this.#fanout.observe(connections);
  };

  /** One push handed to the kernel on every connection it was written to, `seconds` after it was published. */
  readonly fanoutWritten = (_connections: number, seconds: number): void => {
    this.#fanoutSeconds.observe(seconds);
  };

  /** A shared rate-limit store (RATE_LIMIT_STORE) failed or was too slow: this process counted the request on its own. */
  readonly rateLimitStoreError = (store: string): void => {
    this.#rateLimitStoreErrors.inc({ store });
  };

  readonly rpc: RpcObserver = (method, seconds, error) => {
    const m = RPC_METHODS.has(method) ? method : 'other';
    this.#rpcSeconds.observe({ method: m }, seconds);
    if (error) this.#rpcErrors.inc({ method: m, kind: error });
  };

  /** Where the connection gauge reads its figures at scrape time. */
  connectionsFrom(source: () => Record<SocketFace, { open: number; authenticated: number }>): void {
    this.#connections = source;
  }

  /** Where the archive gauges read their figures at scrape time (null: no archiver in this process). */
  archiveFrom(source: (() => Promise<ArchiveFigures | null>) | null): void {
    this.#archive = source;
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
