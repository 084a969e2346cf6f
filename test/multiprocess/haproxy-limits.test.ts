import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePortRange } from '../support/bus-servers.js';
import { freshDatabase } from '../support/pg.js';
import { tempDir } from '../support/tmp.js';

const root = path.resolve(import.meta.dirname, '../..');
const NONCES_PER_MIN = 6;

/** GET `url` on a fresh connection from `from` (a loopback address of its own: a client of its own). */
function get(url: string, from: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = request({ host: u.hostname, port: u.port, path: u.pathname, localAddress: from, agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * deploy/cluster.sh with three processes behind HAProxy, as documented: HAProxy sends each client's
 * address in a PROXY v2 header (TRUSTED_PROXIES=127.0.0.1) and the limits count in PostgreSQL for all
 * processes (RATE_LIMIT_STORE=postgres). Clients are 127.0.0.2 and 127.0.0.3.
 */
describe('rate limits of a three-process cluster behind HAProxy', () => {
  let script: ChildProcess;
  let lb: string;
  let ports: number[];

  beforeAll(async () => {
    const base = await freePortRange(4);
    ports = [base + 1, base + 2, base + 3];
    const clusterDir = tempDir('rim-lbrl-');
    const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
    script = spawn('bash', [path.join(root, 'deploy/cluster.sh'), '3'], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
      env: {
        ...process.env, DATABASE_URL: await freshDatabase('rim_lbrl'), BUS_PREFIX: `rim-lbrl-${randomBytes(6).toString('hex')}`,
        BASE_PORT: String(base), LB_PORT: String(base), CLUSTER_DIR: clusterDir, RUN: `${process.execPath} --import ${tsx} src/main.ts`,
        VERIFY_WORKERS: '1', REQUIRE_NAME: 'false', LOG_LEVEL: 'warn', RATE_NONCE_PER_MIN: String(NONCES_PER_MIN),
      },
    });
    let scriptErr = '';
    script.stderr?.on('data', (d: Buffer) => { scriptErr += d.toString(); });
    script.stdout?.resume();
    lb = `http://127.0.0.1:${base}`;
    const end = Date.now() + 240_000; // three processes through tsx on a shared two-core machine
    for (;;) {
      const ok = await fetch(`${lb}/ready`).then((r) => r.status === 200, () => false);
      const all = ok && (await Promise.all(ports.map((p) => fetch(`http://127.0.0.1:${p}/ready`).then((r) => r.status === 200, () => false)))).every(Boolean);
      if (all) break;
      if (Date.now() > end || script.exitCode !== null) {
        const logs = ['p1.log', 'p2.log', 'p3.log', 'haproxy.log'].map((f) => {
          try {
            return `${f}: ${readFileSync(path.join(clusterDir, f), 'utf8').slice(-1500)}`;
          } catch {
            return `${f}: (none)`;
          }
        });
        throw new Error(`the cluster did not come up (script exit ${script.exitCode}): ${scriptErr}\n${logs.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 300_000);

  afterAll(async () => {
    if (script && script.exitCode === null) {
      const gone = new Promise((r) => script.once('exit', r));
      process.kill(-(script.pid as number), 'SIGTERM');
      await gone;
    }
  });

  it('limits one client at RATE_NONCE_PER_MIN in total over the three processes, and not another client', async () => {
    // 127.0.0.2 asks every process directly, two nonces each: its whole allowance, counted in one store.
    const direct: number[] = [];
    for (const p of ports) for (let i = 0; i < NONCES_PER_MIN / 3; i++) direct.push(await get(`http://127.0.0.1:${p}/auth/nonce`, '127.0.0.2'));
    expect(direct).toEqual(Array(NONCES_PER_MIN).fill(200));
    // Through HAProxy it is the same client (the PROXY header names 127.0.0.2), whichever process answers.
    const through: number[] = [];
    for (let i = 0; i < 6; i++) through.push(await get(`${lb}/auth/nonce`, '127.0.0.2'));
    expect(through).toEqual(Array(6).fill(429));
    // Another client behind the same balancer has its own allowance, all of it.
    const other: number[] = [];
    for (let i = 0; i < NONCES_PER_MIN; i++) other.push(await get(`${lb}/auth/nonce`, '127.0.0.3'));
    expect(other).toEqual(Array(NONCES_PER_MIN).fill(200));
    expect(await get(`${lb}/auth/nonce`, '127.0.0.3')).toBe(429);
  });
});
