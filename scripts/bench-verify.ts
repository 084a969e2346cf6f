/**
 * Benchmark: the archive reader on a long chain on the embedded gateway.
 *
 *   npm run bench:verify [-- --bundles 2000 --per-bundle 5 --parallel 8]
 *
 * Publishes a chain of `bundles` bundles (each `per-bundle` real signed messages, Bundle-Seq 1…n, each
 * Prev-Tx the one before) to an arlocal gateway running in a child process, then measures:
 * - verify (walk + fetch + every id and signature checked): messages/s and bundles/s, with the data
 *   fetched ahead by 1 and by `parallel`;
 * - import into a fresh SQLite store: messages/s, and the importer's RSS at each quarter of the chain
 *   (flat = memory does not grow with the chain's length).
 * The machine is shared while these run: figures are indicative (docs/benchmarks.md says so).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createHash } from 'node:crypto';
import { arweaveFor } from '../src/archive/arweave/client.js';
import { ArweaveUplink } from '../src/archive/arweave/uplink.js';
import { bundleTags } from '../src/archive/format.js';
import { importChain } from '../src/archive/reader/import.js';
import { GatewaySource } from '../src/archive/reader/source.js';
import { verifyChain } from '../src/archive/reader/verify.js';
import { SqliteArchiveStore } from '../src/archive/sqlite/archive-store.js';
import { MessageVerifier } from '../src/roles/identity/verifier.js';
import { createJobRunner } from '../src/roles/identity/worker-pool.js';
import { canonicalJson } from '../src/protocol/message.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { makeSigner, signMessage } from '../test/support/archive-messages.js';

const { values } = parseArgs({ options: { bundles: { type: 'string', default: '2000' }, 'per-bundle': { type: 'string', default: '5' }, parallel: { type: 'string', default: '8' } } });
const bundles = Number(values.bundles);
const perBundle = Number(values['per-bundle']);
const parallel = Number(values.parallel);
for (const [k, v] of [['bundles', bundles], ['per-bundle', perBundle], ['parallel', parallel]] as const) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${k} must be a positive whole number`);
}
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(0)} MB`;

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'bench-verify-'));
const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'arlocal.ts'), path.join(dir, 'arlocal')], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line.startsWith('http://')) resolve(line.trim());
  });
  child.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
});
const mine = async (): Promise<void> => void (await (await fetch(`${url}/mine`)).arrayBuffer());

try {
  const arweave = arweaveFor(url);
  const jwk = await arweave.wallets.generate();
  const uplink = new ArweaveUplink(arweave, jwk);
  await (await fetch(`${url}/mint/${await uplink.owner()}/1000000000000000000000`)).arrayBuffer();
  await mine();

  process.stdout.write(`publishing ${bundles} bundles of ${perBundle} messages…\n`);
  const alice = makeSigner();
  const bob = makeSigner();
  let t = alice.createdAt + 1000;
  let prev: string | null = null;
  const started = performance.now();
  for (let seq = 1; seq <= bundles; seq++) {
    const ms = Array.from({ length: perBundle }, () => signMessage(alice, { receiver: bob.address, timestamp: (t += 10) }));
    const data = Buffer.from(`[${ms.map(canonicalJson).join(',')}]`);
    const tx = await uplink.sign(data, bundleTags({
      seq, prevTx: prev, count: ms.length, firstTs: ms[0]?.timestamp ?? 0, lastTs: ms[ms.length - 1]?.timestamp ?? 0,
      sha256: createHash('sha256').update(data).digest('hex'),
    }));
    await uplink.upload(tx, data, null, async () => {});
    prev = tx.id;
    if (seq % 40 === 0 || seq === bundles) await mine(); // well within the 50-block anchor window
    if (seq % 200 === 0) process.stdout.write(`  ${seq} bundles (${((performance.now() - started) / 1000).toFixed(0)} s)\n`);
  }
  const head = prev as string;
  const total = bundles * perBundle;
  const source = new GatewaySource(url);
  const verifier = new MessageVerifier(createJobRunner(-1), { clockSkewMs: 300_000, maxDelegationMs: 30 * 86_400_000, delegationCacheSize: 10_000 });

  const rows: string[] = [];
  for (const ahead of [...new Set([1, parallel])]) {
    const t0 = performance.now();
    const report = await verifyChain(source, head, verifier, undefined, { fetchAhead: ahead });
    const s = (performance.now() - t0) / 1000;
    if (!report.ok) throw new Error(`the chain did not verify: ${JSON.stringify(report.problems.slice(0, 3))}`);
    rows.push(`| verify, ${ahead} bundle(s) fetched ahead | ${s.toFixed(1)} s | ${Math.round(total / s)} | ${(bundles / s).toFixed(0)} |`);
  }

  const file = path.join(dir, 'import.sqlite');
  const store = new SqliteStore({ file, synchronous: 'NORMAL' });
  const archive = new SqliteArchiveStore(file);
  const rss: string[] = [];
  const t0 = performance.now();
  const report = await importChain(source, head, { store, archive, verifier, commitBatchMax: 4096 }, (p) => {
    if (p.phase === 'verify' && p.bundle % Math.ceil(p.bundles / 4) === 0) rss.push(`${p.bundle}: ${mb(process.memoryUsage().rss)}`);
  });
  const s = (performance.now() - t0) / 1000;
  rows.push(`| import into SQLite | ${s.toFixed(1)} s | ${Math.round(report.imported / s)} | ${(bundles / s).toFixed(0)} |`);
  await archive.close();
  await store.close();
  await verifier.close();

  process.stdout.write(`\nchain: ${bundles} bundles, ${total} messages\n\n| run | time | messages/s | bundles/s |\n| --- | --- | --- | --- |\n${rows.join('\n')}\n`);
  process.stdout.write(`\nimporter RSS by bundle: ${rss.join(', ')}\n`);
} finally {
  child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
