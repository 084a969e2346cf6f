import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BusStatus } from '../../bus/cluster-hub.js';
import type { Store } from '../../store/port.js';

export interface ReadinessDeps {
  store: Pick<Store, 'lastSeq'>;
  bus: () => BusStatus;
  /** Longest the store may take to answer the probe. */
  storeTimeoutMs?: number;
}

export interface Readiness {
  ready: boolean;
  store: { ok: boolean; error?: string };
  bus: BusStatus;
}

/** Asks the store one cheap read within a deadline and the bus for its self-ping state. */
export async function checkReadiness(deps: ReadinessDeps): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${deps.storeTimeoutMs ?? 2000} ms`)), deps.storeTimeoutMs ?? 2000);
  });
  let store: Readiness['store'];
  try {
    await Promise.race([deps.store.lastSeq('ready:probe'), deadline]);
    store = { ok: true };
  } catch (e) {
    store = { ok: false, error: e instanceof Error ? e.message : String(e) };
  } finally {
    clearTimeout(timer);
  }
  const bus = deps.bus();
  return { ready: store.ok && bus.ok, store, bus };
}

/**
 * GET /ready: 200 when the store answers and the bus carries this process's own pings, else 503 with
 * the same JSON body saying which is not (a load balancer takes the process out until it recovers by
 * itself). GET /health stays the liveness answer: it only says the process runs.
 */
export function readiness(deps: ReadinessDeps): (req: IncomingMessage, res: ServerResponse) => void {
  return (_req, res) => {
    void checkReadiness(deps).then((r) => {
      const body = JSON.stringify(r);
      res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(body);
    });
  };
}
