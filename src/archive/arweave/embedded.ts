import ArLocalModule from 'arlocal';
import { createServer, type Server } from 'node:http';
import { createServer as netServer, type AddressInfo } from 'node:net';
import type { Logger } from '../../log/logger.js';

type ArLocalClass = typeof ArLocalModule.default;
// arlocal is CommonJS with `exports.default`: Node hands us the exports object, some loaders (vitest) the class.
const ArLocal: ArLocalClass = (ArLocalModule as { default?: ArLocalClass }).default ?? (ArLocalModule as unknown as ArLocalClass);
type ArLocalInstance = InstanceType<ArLocalClass>;
/** Internals of arlocal we have to reach (its API offers no way to stop without dropping persisted tables). */
interface ArLocalInternals {
  log: { logInFile(args: unknown): void };
  apollo?: { stop(): Promise<void> };
}

/** Winston minted for the embedded wallet whenever its balance runs low (arlocal charges real prices). */
const MINT = '1000000000000000000';
const LOW = 100_000_000_000_000_000n;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = netServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * The embedded default: an arlocal gateway in this process, its database under `dir` (kept across
 * restarts), on a free loopback port. Blocks are mined after every accepted bundle and, when
 * `mineEveryMs` > 0, on that interval.
 */
export class EmbeddedGateway {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  private constructor(private readonly arlocal: ArLocalInstance, readonly url: string, private readonly log: Logger) {}

  static async start(dir: string, log: Logger, mineEveryMs: number): Promise<EmbeddedGateway> {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const arlocal = new ArLocal(port, false, dir, true);
      // arlocal appends a request log to ./logs in the working directory; nothing of ours should write there
      (arlocal as unknown as ArLocalInternals).log.logInFile = () => {};
      await arlocal.start();
      const server: Server = arlocal.getServer() ?? createServer();
      const ok = await new Promise<boolean>((resolve) => {
        if (server.listening) resolve(true);
        server.once('listening', () => resolve(true));
        server.once('error', () => resolve(false));
      });
      if (ok) {
        const gw = new EmbeddedGateway(arlocal, `http://127.0.0.1:${port}`, log);
        if (mineEveryMs > 0) {
          gw.timer = setInterval(() => void gw.mine().catch(() => {}), mineEveryMs);
          gw.timer.unref();
        }
        log.info({ url: gw.url, dir }, 'embedded arlocal gateway started');
        return gw;
      }
      if (attempt >= 5) throw new Error('could not find a free port for the embedded arlocal gateway');
    }
  }

  /** Mines the pending transactions into a block. */
  async mine(): Promise<void> {
    if (this.stopped) return;
    const res = await fetch(`${this.url}/mine`);
    if (!res.ok) throw new Error(`arlocal mine failed: ${res.status}`);
    await res.arrayBuffer();
  }

  /** Keeps the wallet able to pay for uploads (test tokens only exist on the local gateway). */
  async fund(address: string): Promise<void> {
    const res = await fetch(`${this.url}/wallet/${address}/balance`);
    const balance = res.ok ? BigInt((await res.text()).trim() || '0') : 0n;
    if (balance >= LOW) return;
    const mint = await fetch(`${this.url}/mint/${address}/${MINT}`);
    if (!mint.ok) throw new Error(`arlocal mint failed: ${mint.status}`);
    await mint.arrayBuffer();
  }

  /**
   * Stops serving. The database connection is deliberately left open: arlocal's own stop() drops its
   * tables when persisting, and its route modules cache handles to that connection, so a gateway started
   * again in this process on the same directory keeps working.
   */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    const server = this.arlocal.getServer();
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    await (this.arlocal as unknown as ArLocalInternals).apollo?.stop().catch(() => {});
    this.log.info({ url: this.url }, 'embedded arlocal gateway stopped');
  }
}
