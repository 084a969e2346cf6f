/**
 * The long form of test/multiprocess/push-kill.test.ts: three server processes on PostgreSQL + NATS, one
 * killed with SIGKILL per round (in turn), alice sending to bob on both faces through every process, a
 * child spinning on the CPU; every acknowledged message must reach each of bob's live connections as a
 * live push, once. Prints one JSON report (missing must be [], duplicates 0; latencyMs from the answer to
 * the push on bob's socket) and a summary line: acknowledged lost (the acknowledged seq does not hold the
 * message) 0, stored twice 0, seqs gap-free. Exit 1 otherwise.
 *
 *   npx tsx scripts/push-kill-loop.ts --rounds 60 [--perProcess 12] [--busy 1]
 *
 * Needs nats-server on PATH and PostgreSQL at TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres);
 * a database of its own is created and dropped.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { numericArgs } from './bench-server.js';
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { startChainRpc } from '../test/support/chain-rpc.js';
import { makeIdentity } from '../test/support/messages.js';
import { runPushKill } from '../test/support/push-kill.js';

const arg = numericArgs();
const args = { rounds: arg('rounds', 60), perProcess: arg('perProcess', 12), busy: arg('busy', 1) };
const admin = process.env['TEST_DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const db = `rim_pkloop_${randomBytes(6).toString('hex')}`;
const q = async (sql: string): Promise<void> => {
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  try { await c.query(sql); } finally { await c.end(); }
};
/** A nats-server of the run's own on a free port (test/support/bus-servers.ts is vitest-bound). */
async function privateNats(): Promise<{ url: string; down(): Promise<void> }> {
  const port = await new Promise<number>((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => { const a = s.address(); s.close(() => resolve(typeof a === 'object' && a ? a.port : 0)); });
  });
  const child = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  for (let i = 0; i < 300; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); resolve(true); });
      c.once('error', () => resolve(false));
    });
    if (ok) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { url: `nats://127.0.0.1:${port}`, down: async () => { child.kill('SIGKILL'); } };
}
const [alice, bob] = [makeIdentity(), makeIdentity()];
const [chain, nats] = await Promise.all([startChainRpc([alice.address, bob.address]), privateNats()]);
await q(`CREATE DATABASE ${db}`);
const url = new URL(admin);
url.pathname = `/${db}`;
const started = Date.now();
try {
  const report = await runPushKill({
    env: {
      STORE: 'postgres', DATABASE_URL: url.toString(), BUS: 'nats', NATS_URL: nats.url,
      BUS_PREFIX: `rim-pkloop-${randomBytes(6).toString('hex')}`, BUS_PING_MS: '200', BUS_DOWN_AFTER_MS: '1500', PG_ACQUIRE_TIMEOUT_MS: '30000', ...chain.env,
    },
    alice, bob, rounds: args.rounds, perProcess: args.perProcess, busy: args.busy !== 0,
    log: (s) => console.error(s),
  });
  console.log(JSON.stringify({ ...report, seconds: Math.round((Date.now() - started) / 1000) }));
  const s = report.store;
  const acked = report.acked.rest + report.acked.im;
  console.log(`${report.kills} kill -9 over 3 processes; acknowledged ${acked} (REST ${report.acked.rest}, /im ${report.acked.im}; ${report.acked.byKilled} by the process then killed);`
    + ` acknowledged lost ${s.ackedNotStored}, stored twice ${s.duplicateMessages} (R1 ids ${s.duplicateIds}), seqs 1..${s.events} ${s.gapFree ? 'gap-free' : 'WITH GAPS'};`
    + ` live pushes ${report.delivered}/${report.expected}, missing ${report.missing.length}, pushed twice ${report.duplicates}`);
  if (report.missing.length > 0 || report.duplicates > 0 || !s.gapFree || s.ackedNotStored > 0 || s.duplicateIds > 0 || s.duplicateMessages > 0) process.exitCode = 1;
} finally {
  await nats.down();
  await chain.close();
  await q(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
}
