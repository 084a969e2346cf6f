import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../log/logger.js';

/** Winston minted for the embedded wallet whenever its balance runs low (arlocal charges real prices). */
const MINT = '1000000000000000000';
const LOW = 100_000_000_000_000_000n;
/** How long the gateway's process may take to listen (it loads arlocal and opens its database). */
const START_MS = 60_000;

/**
 * The embedded default: an arlocal gateway in a child process of this one (arlocal-child.js), its
 * database under `dir` (kept across restarts), on a free loopback port. Blocks are mined after every
 * accepted bundle and, when `mineEveryMs` > 0, on that interval. The child ends with this process (its
 * IPC channel closes), however this one ends.
 */
export class EmbeddedGateway {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;

  private constructor(private readonly child: ChildProcess, readonly url: string, private readonly log: Logger) {}

  static async start(dir: string, log: Logger, mineEveryMs: number): Promise<EmbeddedGateway> {
    const child = fork(fileURLToPath(new URL('./arlocal-child.js', import.meta.url)), [dir], {
      // not the parent's loaders or flags (tsx, --cpu-prof, --inspect): the child is plain JavaScript
      execArgv: [], stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json',
    });
    // arlocal's console lines, as records of the log (stdout stays pure JSON)
    const clog = log.child({ gateway: 'arlocal' });
    child.on('message', (m: { console?: string; line?: string }) => {
      if (m.console === undefined) return;
      if (m.console === 'error') clog.error(m.line);
      else if (m.console === 'warn') clog.warn(m.line);
      else if (m.console === 'debug') clog.debug(m.line);
      else clog.info(m.line);
    });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('the embedded arlocal gateway did not start in time')); }, START_MS);
      child.on('message', (m: { url?: string; error?: string; console?: string }) => {
        if (m.console !== undefined) return;
        clearTimeout(timer);
        if (m.url) resolve(m.url);
        else reject(new Error(`the embedded arlocal gateway failed to start: ${m.error ?? 'unknown'}`));
      });
      child.once('exit', (code, signal) => { clearTimeout(timer); reject(new Error(`the embedded arlocal gateway exited at start (${signal ?? code})`)); });
      child.once('error', (err) => { clearTimeout(timer); reject(err); });
    });
    child.removeAllListeners('exit');
    child.removeAllListeners('error');
    child.on('error', (err) => log.warn({ err }, 'embedded arlocal gateway process error'));
    // The gateway is a helper: it never keeps this process alive.
    child.unref();
    child.channel?.unref();
    const gw = new EmbeddedGateway(child, url, log);
    child.on('exit', (code, signal) => { if (!gw.stopped) log.error({ code, signal }, 'embedded arlocal gateway process ended; uploads fail until a restart'); });
    if (mineEveryMs > 0) {
      gw.timer = setInterval(() => void gw.mine().catch(() => {}), mineEveryMs);
      gw.timer.unref();
    }
    log.info({ url, dir, pid: child.pid }, 'embedded arlocal gateway started');
    return gw;
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

  /** Stops serving: ends the gateway's process (its database stays in `dir`). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
      if (this.child.connected) this.child.send('stop');
      else this.child.kill('SIGKILL');
      const t = setTimeout(() => this.child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    this.log.info({ url: this.url }, 'embedded arlocal gateway stopped');
  }
}
