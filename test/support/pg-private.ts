import { execFileSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const BIN = process.env['PG_BIN'] ?? '/usr/lib/postgresql/15/bin';

/** A port nobody listens on right now (the OS picks it; it is released before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

export interface PrivatePostgres {
  url: string;
  port: number;
  start(): void;
  /** Stops the server: `fast` disconnects clients and shuts down cleanly; `immediate` is a crash. */
  stop(mode?: 'fast' | 'immediate'): void;
  /**
   * Freezes (SIGSTOP) or thaws (SIGCONT) the postmaster and every process it started: a database host
   * that hangs without refusing anything (connections accepted by the kernel, no answer ever).
   */
  signal(sig: 'SIGSTOP' | 'SIGCONT'): void;
  destroy(): void;
}

/**
 * A PostgreSQL server of the test's own, in a temp directory on a random port, so a test may stop and
 * start it without touching the shared one. PostgreSQL refuses to run as root: as root the cluster
 * belongs to the `postgres` user and every command runs through runuser.
 */
export async function privatePostgres(): Promise<PrivatePostgres> {
  const dir = mkdtempSync(path.join(tmpdir(), 'rim-pg-'));
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const run = (bin: string, args: string[]): void => {
    const cmd = path.join(BIN, bin);
    if (asRoot) execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { stdio: 'pipe' });
    else execFileSync(cmd, args, { stdio: 'pipe' });
  };
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 -c shared_buffers=16MB`;
  const start = (): void => run('pg_ctl', ['-D', data, '-o', opts, '-l', path.join(dir, 'log'), '-w', '-t', '60', 'start']);
  start();
  let running = true;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    start: () => { start(); running = true; },
    signal: (sig) => {
      const pm = Number(readFileSync(path.join(data, 'postmaster.pid'), 'utf8').split('\n')[0]);
      const kids = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pm)]).toString().split(/\s+/).filter(Boolean).map(Number);
      // Children first on the way down, so none runs on unwatched; the postmaster first on the way up.
      const order = sig === 'SIGSTOP' ? [...kids, pm] : [pm, ...kids];
      for (const pid of order) {
        try { process.kill(pid, sig); } catch { /* exited meanwhile */ }
      }
    },
    stop: (mode = 'fast') => { run('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '60', 'stop']); running = false; },
    destroy: () => {
      if (running) {
        try { run('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']); } catch { /* already gone */ }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
