/**
 * Group fan-out benchmark: a DAO with N members on the local chain (served over HTTP JSON-RPC, as a real
 * node would be), the real server in its own process reading it with CHAIN=rpc, all N members connected
 * over /ws. Measures the cold load of the member set and the time for one group message to reach every
 * connection.
 *
 *   npm run bench:group -- [--members 10000] [--messages 20] [--runs 3] [--store sqlite|postgres|both]
 *
 * Each run sends `--messages` group messages one after another; the figures are printed per run and as
 * the median of the runs. `--store postgres` runs the server on a scratch database of the local
 * PostgreSQL (BENCH_DATABASE_URL to use another); `both` runs SQLite, then PostgreSQL.
 */
import { benchStore, loginToken, median, numericArgs, processCpuSeconds, startBenchServer, storeKinds, type StoreKind } from './bench-server.js';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { hexlify, Wallet } from 'ethers';
import WebSocket from 'ws';
import { ChainRelations } from '../src/roles/relations/chain/chain-relations.js';
import { deployRelationContracts } from '../src/roles/relations/chain/deploy.js';
import { RelationActions } from '../src/roles/relations/chain/demo.js';
import { ethersProvider, HttpEip1193 } from '../src/roles/relations/chain/eip1193.js';
import { LocalChain } from '../src/roles/relations/chain/local-chain.js';
import { serveChainRpc } from '../src/roles/relations/chain/rpc-server.js';
import { benchIdentity, benchMessage } from './bench-sign.js';

const num = numericArgs();
const MEMBERS = num('members', 10_000);
const MESSAGES = num('messages', 20);
const RUNS = num('runs', 3);
const now = (): number => performance.timeOrigin + performance.now();
const log = (s: string): void => { process.stdout.write(`${s}\n`); };
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

async function main(): Promise<void> {
  log(`machine: ${availableParallelism()} cores, node ${process.version}; ${MEMBERS} members, ${MESSAGES} group messages`);
  const chain = await LocalChain.start({ accounts: 2 });
  const provider = ethersProvider(chain, chain.chainId);
  const addresses = await deployRelationContracts(new Wallet(chain.keys[0] as string, provider));
  const ownerKey = chain.keys[1] as string;
  const owner = new Wallet(ownerKey, provider);
  const actions = new RelationActions(addresses);
  await actions.registerName(owner, 'bench-owner');
  const dao = (await actions.createDao(owner, 'Bench Group')).toLowerCase();
  const members = Array.from({ length: MEMBERS }, () => new Wallet(hexlify(randomBytes(32))));
  const t0 = now();
  await actions.addMembers(owner, dao, members.map((m) => m.address));
  log(`setup: ${MEMBERS} members added on chain in ${((now() - t0) / 1000).toFixed(1)} s (not part of the figures)`);

  // The chain as a JSON-RPC endpoint on loopback (the same server as the embedded chain's CHAIN_RPC_PORT).
  const rpc = await serveChainRpc(chain, '127.0.0.1', 0);
  const rpcUrl = rpc.url;

  const cold = new ChainRelations({ provider: ethersProvider(new HttpEip1193(rpcUrl, 30_000), chain.chainId), addresses, refreshMs: 3_600_000, stateTtlMs: 3_600_000, rpcTimeoutMs: 30_000, maxStaleMs: 3_600_000, fromBlock: 0, logRange: 10_000 });
  const tc = now();
  const loaded = await cold.members(dao);
  log(`member set cold load over JSON-RPC: ${loaded.length} members in ${((now() - tc) / 1000).toFixed(2)} s (target < 5 s)`);
  await cold.close();

  for (const kind of storeKinds()) await runOn(kind, { members, ownerKey, dao, rpcUrl, chainId: chain.chainId, addresses });
  await rpc.close();
  await chain.close();
}

interface GroupSetup { members: Wallet[]; ownerKey: string; dao: string; rpcUrl: string; chainId: number; addresses: Awaited<ReturnType<typeof deployRelationContracts>> }

async function runOn(kind: StoreKind, setup: GroupSetup): Promise<void> {
  const { members, ownerKey, dao, rpcUrl, addresses } = setup;
  const chain = { chainId: setup.chainId };
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-bench-group-'));
  const store = await benchStore(kind);
  log(`--- store: ${kind}${kind === 'postgres' ? ' (PostgreSQL 15 on this machine, same cores)' : ' (SQLite synchronous=FULL)'}`);
  const server = await startBenchServer(dataDir, { ...store.env,
    CHAIN: 'rpc', RPC_URL: rpcUrl, CHAIN_ID: String(chain.chainId), NAME_SERVICE_ADDRESS: addresses.nameService,
    FOLLOW_REGISTER_ADDRESS: addresses.followRegister, DAO_REGISTER_ADDRESS: addresses.daoRegister, RELATIONS_RPC_TIMEOUT_MS: '30000',
  }, log);
  const url = server.url;
  const received = new Map<string, number[]>();
  const waiters = new Map<string, () => void>();
  const ID_AT = '"message":{"id":"';
  try {
    const sockets: WebSocket[] = [];
    const tl = now();
    for (let i = 0; i < members.length; i += 200) {
      await Promise.all(members.slice(i, i + 200).map(async (w) => {
        const token = await loginToken(url, w);
        sockets.push(await new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${token}`, { perMessageDeflate: false });
          ws.on('message', (raw) => {
            // Read in the frame's bytes, not a decoded copy: the load generator shares the cores.
            const data = raw as Buffer;
            const at = data.indexOf(ID_AT);
            if (at < 0) {
              if (data.includes('"ready"')) resolve(ws);
              return;
            }
            const id = data.toString('latin1', at + ID_AT.length, at + ID_AT.length + 66);
            const times = received.get(id) ?? [];
            times.push(now());
            received.set(id, times);
            if (times.length === MEMBERS) waiters.get(id)?.();
          });
          ws.on('error', reject);
        }));
      }));
    }
    log(`setup: ${sockets.length} members logged in and connected in ${((now() - tl) / 1000).toFixed(1)} s`);

    const sender = benchIdentity(ownerKey);
    const sendOne = async (): Promise<{ sentAt: number; times: number[] }> => {
      const m = benchMessage(sender, dao, 'Z3JvdXAtcGF5bG9hZA==', 1);
      const all = new Promise<void>((resolve) => waiters.set(m.id, resolve));
      const sentAt = now();
      const res = await fetch(`${url}/message/send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(m) });
      if (res.status !== 200) throw new Error(`send failed: ${res.status} ${await res.text()}`);
      await Promise.race([all, new Promise((r) => setTimeout(r, 30_000))]);
      waiters.delete(m.id);
      return { sentAt, times: received.get(m.id) ?? [] };
    };
    const first = await sendOne();
    log(`first group message (server loads the member set cold): all ${first.times.length} reached in ${(Math.max(...first.times) - first.sentAt).toFixed(0)} ms`);
    const medians = { last: [] as number[], lastP99: [] as number[], server: [] as number[], serverP99: [] as number[] };
    for (let run = 1; run <= RUNS; run++) {
      const lastArrivals: number[] = [];
      const deliveries: number[] = [];
      const serverParts: number[] = [];
      const cpu0 = { server: processCpuSeconds(server.pid), self: process.cpuUsage() };
      let fan = await fanoutTotals(url);
      for (let i = 0; i < MESSAGES; i++) {
        const r = await sendOne();
        if (r.times.length < MEMBERS) log(`  message ${i}: only ${r.times.length}/${MEMBERS} delivered within 30 s`);
        lastArrivals.push(Math.max(...r.times) - r.sentAt);
        for (const t of r.times) deliveries.push(t - r.sentAt);
        // The server's part alone: from its publish until the frame was handed to the kernel on every socket
        // (rim_push_fanout_seconds; one fan-out per message here, as nobody muted the group).
        const after = await fanoutTotals(url);
        if (after.count === fan.count + 1) serverParts.push((after.sum - fan.sum) * 1000);
        fan = after;
      }
      const serverCpu = (processCpuSeconds(server.pid) ?? NaN) - (cpu0.server ?? NaN);
      const selfCpu = process.cpuUsage(cpu0.self);
      lastArrivals.sort((a, b) => a - b);
      deliveries.sort((a, b) => a - b);
      serverParts.sort((a, b) => a - b);
      log(`[run ${run}/${RUNS}, load average ${loadavg()[0]?.toFixed(2)}] one group message to all ${MEMBERS} connections (time until the last one has it): p50 ${pct(lastArrivals, 50).toFixed(0)} ms, p99 ${pct(lastArrivals, 99).toFixed(0)} ms (target p99 <= 100 ms)`);
      log(`  per connection (${deliveries.length} deliveries): p50 ${pct(deliveries, 50).toFixed(0)} ms, p99 ${pct(deliveries, 99).toFixed(0)} ms`);
      log(`  server's part alone (publish -> frame handed to the kernel on all ${MEMBERS} sockets, ${serverParts.length} fan-outs): p50 ${pct(serverParts, 50).toFixed(1)} ms, p99 ${pct(serverParts, 99).toFixed(1)} ms`);
      const perDelivery = (x: number): number => (x * 1e6) / (MESSAGES * MEMBERS);
      const serverUs = perDelivery(serverCpu);
      const selfUs = perDelivery((selfCpu.user + selfCpu.system) / 1e6);
      log(`  CPU per delivery: server ${serverUs.toFixed(1)} us (all threads; includes the send's verify and commit), load generator ${selfUs.toFixed(1)} us (its own receiving);`
        + ` machine bound: ${MEMBERS} x ${(serverUs + selfUs).toFixed(1)} us on ${availableParallelism()} cores = ${((MEMBERS * (serverUs + selfUs)) / 1000 / availableParallelism()).toFixed(0)} ms at the least for the last member`);
      medians.last.push(pct(lastArrivals, 50));
      medians.lastP99.push(pct(lastArrivals, 99));
      medians.server.push(pct(serverParts, 50));
      medians.serverP99.push(pct(serverParts, 99));
    }
    const list = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(' / ');
    log(`summary ${kind}: last member p50 ${median(medians.last).toFixed(0)} ms, p99 ${median(medians.lastP99).toFixed(0)} ms (median of ${RUNS} runs: p99 ${list(medians.lastP99)}; target <= 100 ms: ${median(medians.lastP99) <= 100 ? 'met' : 'missed'});`
      + ` server's part alone p50 ${median(medians.server).toFixed(1)} ms, p99 ${median(medians.serverP99).toFixed(1)} ms (p99 ${list(medians.serverP99)})`);
    for (const s of sockets) s.terminate();
  } finally {
    server.stop();
    await new Promise((r) => setTimeout(r, 500));
    rmSync(dataDir, { recursive: true, force: true });
    await store.drop();
  }
}

/** The server's rim_push_fanout_seconds histogram totals, from its /metrics. */
async function fanoutTotals(url: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sum = /^rim_push_fanout_seconds_sum (\S+)$/m.exec(text);
  const count = /^rim_push_fanout_seconds_count (\S+)$/m.exec(text);
  return { sum: Number(sum?.[1] ?? NaN), count: Number(count?.[1] ?? NaN) };
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
