/**
 * Issue 17, "2 to 50 clients committing at the same epoch at once: exactly one wins, all converge, no
 * fork (randomized, many runs)". `sdk/test/mls-race.test.ts` runs one race of 2..8 devices in `npm test`;
 * this runs many, up to 50 devices, against the real server (its MLS Delivery Service), the in-process
 * chain and the demo identities, and prints what it saw:
 *
 *   npx tsx scripts/mls-committers.ts [--runs 20] [--min 2] [--max 50] [--seed N]
 *
 * Each run takes a DAO of its own (created on the chain for the run, the demo wallets as members), joins N
 * devices to its MLS group (N drawn from min..max), lets every device commit at the same epoch at once
 * (an empty commit with a path, `MlsEncryptor.update`), then checks: how many commits the store took
 * (must be exactly 1), whether every device reached the winner's epoch (converged), whether their epoch
 * authenticators agree (a fork otherwise), and that a message sent afterwards is read by all. Exit status
 * 1 if any run broke a rule.
 */
import { parseArgs } from 'node:util';
import { Wallet } from 'ethers';
import WebSocket from 'ws';
import { RelationActions } from '../src/roles/relations/chain/demo.js';
import { ethersProvider } from '../src/roles/relations/chain/eip1193.js';
import { RelationClient } from '../sdk/src/client.js';
import type { IncomingMessage, UndecryptableInfo } from '../sdk/src/connection.js';
import type { WebSocketCtor } from '../sdk/src/live.js';
import { MlsEncryptor } from '../sdk/src/mls/mls-encryptor.js';
import { privateKeySigner } from '../sdk/src/signer.js';
import { MemoryStorage } from '../sdk/src/storage.js';
import { startDemo, until, type Demo } from '../sdk/test/support.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' }, min: { type: 'string', default: '2' }, max: { type: 'string', default: '50' }, seed: { type: 'string' } } });
const runs = Number(values.runs);
const min = Number(values.min);
const max = Number(values.max);
let seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const firstSeed = seed;
/** mulberry32: the run sizes are reproducible with --seed. */
function random(): number {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const live = { heartbeatMs: 5_000, backoffBaseMs: 50, backoffCapMs: 400 };
interface Dev { client: RelationClient; mls: MlsEncryptor; got: IncomingMessage[]; bad: UndecryptableInfo[] }

const demo: Demo = await startDemo({ allowDevPlaintext: false, relationsRefreshMs: 200, mlsMaxDevices: 1000 });
const provider = ethersProvider(demo.chain.chain!, demo.chain.chain!.chainId);
const actions = new RelationActions(demo.chain.addresses);
const who: (keyof Demo['keys'])[] = ['alice', 'bob', 'carol'];
const members = who.map((w) => new Wallet(demo.keys[w]).address.toLowerCase());

async function device(w: keyof Demo['keys']): Promise<Dev> {
  const client = new RelationClient({ baseUrl: demo.srv.url, signer: privateKeySigner(demo.keys[w]), storage: new MemoryStorage(), WebSocket: WebSocket as unknown as WebSocketCtor, live });
  const d: Dev = { client, mls: client.encryptor as MlsEncryptor, got: [], bad: [] };
  client.on('message', (m) => d.got.push(m));
  client.on('undecryptable', (u) => d.bad.push(u));
  client.on('error', () => undefined);
  await client.start();
  await until(() => client.connection.connected, 30_000, 'connected');
  return d;
}
const reads = async (d: Dev, t: string): Promise<boolean> => (await Promise.all(d.got.map((m) => d.client.decrypt(m.message)))).includes(t);

const totals = { runs: 0, oneWinner: 0, converged: 0, forks: 0, allRead: 0, devices: 0, undecryptable: 0 };
const broken: string[] = [];
process.stdout.write(`mls-committers: ${runs} run(s), ${min}..${max} devices, seed ${firstSeed}\n`);
for (let run = 1; run <= runs; run++) {
  const n = min + Math.floor(random() * (max - min + 1));
  const started = performance.now();
  const owner = new Wallet(demo.keys.alice, provider);
  const dao = (await actions.createDao(owner, `race ${run} ${Date.now()}`, { freeJoin: true })).toLowerCase();
  await actions.addMembers(owner, dao, members);
  await until(async () => (await Promise.all(members.map((m) => demo.chain.reader.isMember(dao, m)))).every(Boolean), 30_000, 'members on chain');
  const devs: Dev[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const d = await device(who[i % who.length]!);
      devs.push(d);
      await d.mls.join(dao, 1);
    }
    // Everyone has processed every join: one epoch for all before the race.
    await until(async () => {
      const e = await Promise.all(devs.map((d) => d.mls.epochOf(dao)));
      return e.every((x) => x !== null && x === e[0]);
    }, 120_000, 'all joined at one epoch');
    const before = (await devs[0]!.mls.epochOf(dao))!;
    const joinedMs = performance.now() - started;
    const raceStart = performance.now();
    const won = await Promise.all(devs.map((d) => d.mls.update(dao, 1).catch(() => false)));
    const winners = won.filter(Boolean).length;
    let converged = true;
    await until(async () => (await Promise.all(devs.map((d) => d.mls.epochOf(dao)))).every((x) => x === before + 1n), 120_000, 'converged').catch(() => { converged = false; });
    const raceMs = performance.now() - raceStart;
    const hashes = new Set(await Promise.all(devs.map((d) => d.mls.epochAuthHash(dao))));
    const fork = hashes.size !== 1;
    const last = `after race ${run}`;
    await devs[n - 1]!.client.send(dao, last, { kind: 1 });
    let allRead = true;
    await until(async () => (await Promise.all(devs.slice(0, -1).map((d) => reads(d, last)))).every(Boolean), 60_000, 'all read').catch(() => { allRead = false; });
    const undecryptable = devs.reduce((s, d) => s + d.bad.length, 0);
    totals.runs++;
    totals.devices += n;
    totals.undecryptable += undecryptable;
    if (winners === 1) totals.oneWinner++;
    if (converged) totals.converged++;
    if (fork) totals.forks++;
    if (allRead) totals.allRead++;
    const ok = winners === 1 && converged && !fork && allRead;
    if (!ok) broken.push(`run ${run}`);
    process.stdout.write(`run ${String(run).padStart(3)}: ${String(n).padStart(2)} devices, epoch ${before} -> ${before + 1n}, winners ${winners}, converged ${converged}, fork ${fork}, all read ${allRead}, undecryptable ${undecryptable}; joins ${(joinedMs / 1000).toFixed(1)} s, race + convergence ${raceMs.toFixed(0)} ms${ok ? '' : '  <-- BROKEN'}\n`);
  } finally {
    for (const d of devs) {
      await d.client.rest.mlsRemoveDevice(d.mls.deviceId ?? '').catch(() => undefined);
      d.client.close();
    }
  }
}
process.stdout.write(`runs ${totals.runs}, devices ${totals.devices} (mean ${(totals.devices / Math.max(1, totals.runs)).toFixed(1)}), exactly one winner ${totals.oneWinner}, converged ${totals.converged}, forks ${totals.forks}, all read ${totals.allRead}, undecryptable reports ${totals.undecryptable}\n`);
if (broken.length > 0) process.stdout.write(`BROKEN: ${broken.join(', ')}\n`);
await demo.close();
process.exit(broken.length > 0 ? 1 : 0);
