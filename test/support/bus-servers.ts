import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { tempDir } from './tmp.js';

/** A free TCP port on loopback (the OS picks it; a race with another process is possible but rare). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/**
 * `count` consecutive free ports below the kernel's ephemeral range (32768 and up here), for a process
 * whose ports are fixed before it starts (deploy/cluster.sh: BASE_PORT+i). Ports handed out by `listen(0)`
 * come from the ephemeral range, where the suite's many client connections also take their local ports,
 * so a port free a moment ago may be taken by then; below it only listeners compete.
 */
export async function freePortRange(count: number): Promise<number> {
  const canListen = (port: number): Promise<boolean> => new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
  for (let attempt = 0; attempt < 200; attempt++) {
    const base = 20_000 + Math.floor(Math.random() * 12_000);
    let all = true;
    for (let p = base; p < base + count && all; p++) all = await canListen(p);
    if (all) return base;
  }
  throw new Error(`no ${count} consecutive free ports found in 20000-32767`);
}

async function waitForPort(port: number, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listened on ${port} within ${timeoutMs} ms`);
}

/**
 * A private server (nats-server or redis-server) on a port of its own, that a test may stop and start
 * again on the same port: never the shared one other engineers' runs use.
 */
export class PrivateServer {
  private child: ChildProcess | null = null;

  private constructor(readonly kind: 'nats' | 'redis', readonly port: number, private readonly dir: string) {}

  static async start(kind: 'nats' | 'redis'): Promise<PrivateServer> {
    const s = new PrivateServer(kind, await freePort(), tempDir(`rim-${kind}-`));
    await s.up();
    return s;
  }

  get url(): string {
    return this.kind === 'nats' ? `nats://127.0.0.1:${this.port}` : `redis://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    if (this.child) return;
    const args = this.kind === 'nats'
      ? ['-a', '127.0.0.1', '-p', String(this.port)]
      : ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir];
    this.child = spawn(this.kind === 'nats' ? 'nats-server' : 'redis-server', args, { stdio: 'ignore' });
    await waitForPort(this.port);
  }

  /** Kills the server (SIGKILL: no goodbye to its clients) and waits until it is gone. */
  async down(): Promise<void> {
    const c = this.child;
    if (!c) return;
    this.child = null;
    const gone = new Promise<void>((resolve) => c.once('exit', () => resolve()));
    c.kill('SIGKILL');
    await gone;
  }
}
