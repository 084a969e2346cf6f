import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePortRange, PrivateServer } from '../support/bus-servers.js';
import { makeIdentity, signedMessage } from '../support/messages.js';
import { freshDatabase } from '../support/pg.js';
import { http, login, WsClient } from '../support/server.js';
import { tempDir } from '../support/tmp.js';

const root = path.resolve(import.meta.dirname, '../..');

/**
 * deploy/cluster.sh as a newcomer runs it (README "Running many processes"): two processes on one
 * PostgreSQL and NATS (a private nats-server, which one test stops) behind HAProxy with the checked-in
 * deploy/haproxy.cfg; clients only know the load balancer's address.
 */
describe('deploy/cluster.sh behind HAProxy', () => {
  let script: ChildProcess;
  let lb: string;
  let ports: number[];
  let nats: PrivateServer;

  beforeAll(async () => {
    nats = await PrivateServer.start('nats');
    const base = await freePortRange(3);
    ports = [base + 1, base + 2];
    const clusterDir = tempDir('rim-lb-');
    const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
    script = spawn('bash', [path.join(root, 'deploy/cluster.sh'), '2'], {
      cwd: root, stdio: ['ignore', 'pipe', 'pipe'], detached: true,
      env: {
        ...process.env, DATABASE_URL: await freshDatabase('rim_lb'), NATS_URL: nats.url, BUS_PING_MS: '200', BUS_DOWN_AFTER_MS: '1000', BUS_PREFIX: `rim-lb-${randomBytes(6).toString('hex')}`,
        BASE_PORT: String(base), LB_PORT: String(base), CLUSTER_DIR: clusterDir, RUN: `${process.execPath} --import ${tsx} src/main.ts`,
        VERIFY_WORKERS: '1', REQUIRE_NAME: 'false', LOG_LEVEL: 'warn',
      },
    });
    let scriptErr = '';
    script.stderr?.on('data', (d: Buffer) => { scriptErr += d.toString(); });
    script.stdout?.resume();
    lb = `http://127.0.0.1:${base}`;
    const end = Date.now() + 60_000;
    for (;;) {
      const ok = await fetch(`${lb}/ready`).then((r) => r.status === 200, () => false);
      const both = ok && (await Promise.all(ports.map((p) => fetch(`http://127.0.0.1:${p}/ready`).then((r) => r.status === 200, () => false)))).every(Boolean);
      if (both) break;
      if (Date.now() > end || script.exitCode !== null) {
        const logs = ['p1.log', 'p2.log', 'haproxy.log'].map((f) => {
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
  }, 90_000);

  afterAll(async () => {
    if (script && script.exitCode === null) {
      const gone = new Promise((r) => script.once('exit', r));
      process.kill(-(script.pid as number), 'SIGTERM'); // the script and everything it started
      await gone;
    }
    await nats?.down();
  });

  it('spreads WebSocket connections over both processes and pushes a send to all of them', async () => {
    const alice = makeIdentity();
    const bob = makeIdentity();
    const token = await login(lb, bob);
    const devices: WsClient[] = [];
    const held = (): Promise<number[]> => Promise.all(ports.map(async (p) => ((await http(`http://127.0.0.1:${p}`, 'GET', '/health')).json as { connections: number }).connections));
    // HAProxy balances by least connections over the processes its own checks found ready (they may
    // lag the processes by a check or two): each process soon holds some of bob's devices.
    while (devices.length < 20 && !(await held()).every((n) => n > 0)) {
      devices.push(await WsClient.open(`${lb.replace('http', 'ws')}/ws`, token));
      if (devices.length > 2) await new Promise((r) => setTimeout(r, 300));
    }
    expect((await held()).every((n) => n > 0)).toBe(true);
    const m = signedMessage(alice, { receiver: bob.address, payload: 'through the balancer' });
    expect((await http(lb, 'POST', '/message/send', { body: m })).status).toBe(200);
    for (const d of devices) expect(await d.next((f) => f['type'] === 'message')).toMatchObject({ message: { id: m.id } });
    for (const d of devices) d.close();
  });

  it('keeps taking sends through the balancer while the bus is down everywhere, and pushes them when it is back', async () => {
    const alice = makeIdentity();
    const bob = makeIdentity();
    const device = await WsClient.open(`${lb.replace('http', 'ws')}/ws`, await login(lb, bob));
    await nats.down();
    const notReady = async (): Promise<boolean> => (await Promise.all(ports.map((p) => fetch(`http://127.0.0.1:${p}/ready`).then((r) => r.status)))).every((s) => s === 503);
    for (const end = Date.now() + 30_000; !(await notReady());) {
      if (Date.now() > end) throw new Error('the processes did not turn red');
      await new Promise((r) => setTimeout(r, 100));
    }
    // No process is ready, so HAProxy uses the live ones: the send is acknowledged (it committed).
    const m = signedMessage(alice, { receiver: bob.address, payload: 'while the bus is away' });
    const sent = await (async () => {
      for (const end = Date.now() + 15_000; ;) {
        const r = await http(lb, 'POST', '/message/send', { body: m });
        if (r.status === 200 || Date.now() > end) return r;
        await new Promise((res) => setTimeout(res, 200)); // HAProxy's checks take a second or two to switch
      }
    })();
    expect(sent.status).toBe(200);
    await nats.up();
    expect(await device.next((f) => f['type'] === 'message', 30_000)).toMatchObject({ message: { id: m.id } });
    device.close();
  }, 60_000);
});
