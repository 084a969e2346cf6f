/**
 * Benchmark: one 100 MB bundle through the archiver against a local arlocal gateway.
 *
 *   npm run bench:archive [-- --mb 100 --payload-kb 20]
 *
 * Fills a fresh SQLite store with real signed messages until the pending data reaches the size trigger,
 * then runs the archiver once (the size trigger cuts the bundle) and prints the time to cut (plan +
 * stream to file + record), sign (read file, chunk + merkle root, RSA signature), upload (chunked) and
 * accept, and the proxy process's peak RSS in each phase. The gateway runs in a child process so that the
 * figure is the proxy's own memory, not arlocal's.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { Archiver, type ArchiverStep } from '../src/archive/archiver.js';
import { arweaveFor } from '../src/archive/arweave/client.js';
import { ArweaveUplink } from '../src/archive/arweave/uplink.js';
import { bundleBytes } from '../src/archive/format.js';
import { SqliteArchiveStore } from '../src/archive/sqlite/archive-store.js';
import { canonicalJson } from '../src/protocol/message.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { makeSigner, signMessage } from '../test/support/archive-messages.js';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '100' }, 'payload-kb': { type: 'string', default: '20' } } });
const trigger = Math.round(Number(values.mb) * 1024 * 1024);
const payloadBytes = Math.round(Number(values['payload-kb']) * 1024);
const mb = (n: number): string => `${(n / 1024 / 1024).toFixed(1)} MB`;
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'bench-archive-'));
const child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'arlocal.ts'), path.join(dir, 'arlocal')], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  const rl = createInterface({ input: child.stdout });
  rl.on('line', (line) => {
    if (line.startsWith('http://')) resolve(line.trim());
  });
  child.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
});

const arweave = arweaveFor(url);
const jwk = await arweave.wallets.generate();
const uplink = new ArweaveUplink(arweave, jwk, {
  afterAccepted: async () => void (await fetch(`${url}/mine`)).arrayBuffer(),
});
await (await fetch(`${url}/mint/${await uplink.owner()}/1000000000000000000`)).arrayBuffer();

const file = path.join(dir, 'relation-im.sqlite');
const store = new SqliteStore({ file, synchronous: 'NORMAL' });
const archive = new SqliteArchiveStore(file);
const alice = makeSigner();
const bob = makeSigner();
const cid = `dm:${[alice.address, bob.address].map((a) => a.toLowerCase()).sort().join(':')}`;

process.stdout.write(`filling the store with ${mb(trigger)} of signed messages (${values['payload-kb']} KB payloads)…\n`);
let count = 0;
let bodyBytes = 0;
let t = alice.createdAt + 1000;
while (bundleBytes(count, bodyBytes) < trigger) {
  const batch = [];
  for (let i = 0; i < 200 && bundleBytes(count, bodyBytes) < trigger; i++) {
    const m = signMessage(alice, { receiver: bob.address, timestamp: (t += 10), payload: Buffer.alloc(Math.floor(payloadBytes * 3 / 4), count % 251).toString('base64') });
    const body = canonicalJson(m);
    bodyBytes += Buffer.byteLength(body);
    count += 1;
    batch.push({ cid, id: m.id, face: 0 as const, kind: 0, sender: alice.address.toLowerCase(), ts: m.timestamp, receivedAt: m.timestamp, body, counts: true, onlyFor: null, hides: null, participants: null });
  }
  await store.appendEvents(batch);
}
process.stdout.write(`${count} messages, bundle of ${mb(bundleBytes(count, bodyBytes))}\n`);

global.gc?.();
let peak = process.memoryUsage().rss;
const baseline = peak;
const sampler = setInterval(() => {
  peak = Math.max(peak, process.memoryUsage().rss);
}, 20);
const marks: { step: string; at: number; peak: number }[] = [];
const mark = (step: string): void => {
  peak = Math.max(peak, process.memoryUsage().rss);
  marks.push({ step, at: performance.now(), peak });
  peak = process.memoryUsage().rss;
};
const clock = { now: () => Date.now() };
const archiver = new Archiver(archive, uplink, clock, pino({ level: 'silent' }), {
  dataDir: dir, cron: '0 */12 * * *', sizeTriggerBytes: trigger, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000, leaseMs: 600_000,
}, (st: ArchiverStep) => {
  if (st.step !== 'upload-progress') mark(st.step);
});
mark('start');
const result = await archiver.runOnce(clock.now(), 'poll');
mark('confirmed');
clearInterval(sampler);
if (result.confirmed.length !== 1) throw new Error(`expected one bundle, got ${JSON.stringify(result)}`);
const head = await archive.head();
const at = (step: string): { at: number; peak: number } => marks.find((m) => m.step === step) ?? { at: NaN, peak: NaN };
const rows: [string, string, string][] = [
  ['cut (plan, stream to file, record)', s(at('cut').at - at('start').at), mb(at('cut').peak)],
  ['sign (read file, chunk, merkle, RSA)', s(at('signed').at - at('cut').at), mb(at('signed').peak)],
  ['upload (chunked, 256 KiB chunks)', s(at('uploaded').at - at('signed').at), mb(at('uploaded').peak)],
  ['pending + confirmed (mine a block, head)', s(at('confirmed').at - at('uploaded').at), mb(at('confirmed').peak)],
];
process.stdout.write(`\nbundle 1: ${head?.count} messages, ${mb(head?.bytes ?? 0)}, tx ${head?.txid}\n`);
process.stdout.write(`proxy RSS before: ${mb(baseline)}\n\n| step | time | peak RSS of the proxy |\n| --- | --- | --- |\n`);
for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
process.stdout.write(`| total | ${s(at('confirmed').at - at('start').at)} | ${mb(Math.max(...marks.map((m) => m.peak)))} |\n`);

await archiver.stop();
await archive.close();
await store.close();
child.kill('SIGTERM');
await new Promise((r) => child.once('exit', r));
rmSync(dir, { recursive: true, force: true });
