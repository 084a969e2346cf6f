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
