/**
 * Reader CLI for the permanent archive (docs/archive.md).
 *
 *   archive verify [--gateway URL] [--head TX | --proxy URL | --owner ADDRESS] [--json]
 *   archive import [--gateway URL] [--head TX | --proxy URL | --owner ADDRESS]   (into DATA_DIR's store)
 *
 * The head is taken from --head, else from the proxy's GET /archive/head, else found by GraphQL as the
 * owner's bundle with the highest Bundle-Seq. Progress goes to stderr; the result to stdout.
 * Exit status: 0 the chain is sound (or imported), 1 problems were found, 2 bad usage or unreachable.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { importChain } from '../src/archive/reader/import.js';
import { GatewaySource } from '../src/archive/reader/source.js';
import { progressLine, progressMeter } from '../src/archive/reader/progress.js';
import { FETCH_AHEAD, verifyChain } from '../src/archive/reader/verify.js';
import { describe, findHead } from '../src/archive/reader/walk.js';
import { SqliteArchiveStore } from '../src/archive/sqlite/archive-store.js';
import { loadConfig, readEnv } from '../src/config/config.js';
import { MessageVerifier } from '../src/roles/identity/verifier.js';
import { createJobRunner } from '../src/roles/identity/worker-pool.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';

const USAGE = `usage: archive <verify|import> [--gateway URL] [--head TX | --proxy URL | --owner ADDRESS] [--json] [--parallel N]
  --gateway  Arweave gateway to read from (default: ARCHIVE_GATEWAY_URL, else https://arweave.net)
  --head     transaction id of the newest bundle to start from
  --proxy    a proxy whose GET /archive/head names the head (and the owner)
  --owner    the archive wallet's address: the head is found by GraphQL
  --json     print the report as JSON (and no progress)
  --parallel bundles fetched ahead in parallel while verifying (default ${FETCH_AHEAD})
import writes into the store under DATA_DIR (the proxy must not be running), with the same
archive wallet configured the proxy then continues the same chain.`;

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    allowPositionals: true,
    options: {
      gateway: { type: 'string' }, head: { type: 'string' }, proxy: { type: 'string' }, owner: { type: 'string' },
      json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false }, parallel: { type: 'string' },
    },
  });
  const command = positionals[0];
  if (values.help || (command !== 'verify' && command !== 'import')) {
    process.stderr.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const config = loadConfig(readEnv());
  const gateway = values.gateway ?? (config.archiveGatewayUrl || 'https://arweave.net');
  const source = new GatewaySource(gateway);
  let head = values.head ?? null;
  if (!head && values.proxy) {
    const res = await fetch(`${values.proxy.replace(/\/+$/, '')}/archive/head`);
    const body = (await res.json()) as { head: { txid: string } | null };
    head = body.head?.txid ?? null;
    if (!head) throw new Error(`${values.proxy} has no archive head yet`);
  }
  if (!head && values.owner) head = await findHead(source, values.owner);
  if (!head) {
    process.stderr.write(values.owner ? `no archive bundle of ${values.owner} on ${gateway}\n` : `${USAGE}\n`);
    return 2;
  }

  const parallel = values.parallel === undefined ? FETCH_AHEAD : Number(values.parallel);
  if (!Number.isInteger(parallel) || parallel < 1 || parallel > 64) {
    process.stderr.write('--parallel must be a whole number from 1 to 64\n');
    return 2;
  }
  // Progress on stderr: one line rewritten in place on a terminal, a line every 5 s otherwise; none with --json.
  const tty = process.stderr.isTTY && !values.json;
  const verb = command === 'import' ? 'imported' : 'verified';
  const progress = values.json ? undefined : progressMeter((v) => {
    const line = progressLine(v, verb);
    process.stderr.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
  }, { everyMs: tty ? 200 : 5000 });
  const started = performance.now();
  const verifier = new MessageVerifier(createJobRunner(config.verifyWorkers), {
    clockSkewMs: config.clockSkewMs, maxDelegationMs: config.maxDelegationMs, delegationCacheSize: config.delegationCacheSize,
  });
  try {
    if (command === 'verify') {
      const report = await verifyChain(source, head, verifier, progress, { fetchAhead: parallel });
      const seconds = (performance.now() - started) / 1000;
      if (tty) process.stderr.write('\n');
      if (values.json) process.stdout.write(`${JSON.stringify({ ...report, seconds: Number(seconds.toFixed(3)), messagesPerSecond: Math.round(report.messages / seconds) }, null, 2)}\n`);
      else {
        process.stdout.write(`head ${report.head} (owner ${report.owner ?? '?'}): ${report.bundles} bundle(s), ${report.messages} message(s) in ${seconds.toFixed(1)} s (${Math.round(report.messages / seconds)} messages/s)\n`);
        for (const p of report.problems) process.stdout.write(`${describe(p)}\n`);
        process.stdout.write(report.ok ? 'OK: the chain is complete and every message verifies\n' : `FAILED: ${report.problems.length} problem(s)\n`);
      }
      return report.ok ? 0 : 1;
    }
    const file = path.join(config.dataDir, 'relation-im.sqlite');
    const store = new SqliteStore({ file, synchronous: 'NORMAL' });
    const archive = new SqliteArchiveStore(file);
    try {
      const report = await importChain(source, head, { store, archive, verifier, commitBatchMax: config.commitBatchMax }, progress);
      const seconds = (performance.now() - started) / 1000;
      const rate = Math.round((report.imported + report.alreadyPresent) / seconds);
      if (tty) process.stderr.write('\n');
      process.stdout.write(values.json ? `${JSON.stringify({ ...report, seconds: Number(seconds.toFixed(3)), messagesPerSecond: rate, peakRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`
        : `imported ${report.bundles} bundle(s) (${report.skippedBundles} done by an earlier run): ${report.imported} message(s) stored, `
          + `${report.alreadyPresent} already present, in ${seconds.toFixed(1)} s (${rate} messages/s, peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MB); archive head set to ${head}\n`);
      return 0;
    } catch (e) {
      if (tty) process.stderr.write('\n');
      process.stdout.write(`FAILED: ${e instanceof Error ? e.message : String(e)}\n`);
      return 1;
    } finally {
      await archive.close();
      await store.close();
    }
  } finally {
    await verifier.close();
  }
}

// The verifier's worker threads are unref'd (they must not keep a server alive): hold the loop open
// ourselves until the command is done, or Node would exit while a signature check is in flight.
const keepAlive = setInterval(() => {}, 1 << 30);
main().then((code) => {
  clearInterval(keepAlive);
  process.exit(code);
}, (e: unknown) => {
  process.stderr.write(`archive: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(2);
});
