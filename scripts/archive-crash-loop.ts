/**
 * A longer crash loop than `npm test` runs: kill -9 an archiving process at random moments.
 *
 *   node --import tsx scripts/archive-crash-loop.ts [--rounds 20] [--max-delay-ms 1500]
 *
 * Each round adds messages (some rounds large enough for several chunks), starts an archiving child
 * (test/support/archive-child.ts) on one SQLite file against an arlocal gateway in another child, kills
 * it with SIGKILL after a random delay (wherever it is: cutting, signing, uploading, waiting for
 * confirmations), then lets a new child finish. After every round: one bundle per Bundle-Seq on the
 * gateway, the head confirmed, and at the end the whole chain verifies. Exits 1 on the first violation.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { arweaveFor } from '../src/archive/arweave/client.js';
import { GatewaySource } from '../src/archive/reader/source.js';
import { verifyChain } from '../src/archive/reader/verify.js';
import { SqliteArchiveStore } from '../src/archive/sqlite/archive-store.js';
import { GroupCommitter } from '../src/roles/chat/committer.js';
import { MessageService } from '../src/roles/chat/message-service.js';
import { MessageVerifier } from '../src/roles/identity/verifier.js';
import { InlineRunner } from '../src/roles/identity/worker-pool.js';
import { LocalHub } from '../src/bus/hub.js';
import { NoRelations } from '../src/roles/relations/none.js';
import { SqliteStore } from '../src/store/sqlite/sqlite-store.js';
import { makeSigner, signMessage } from '../test/support/archive-messages.js';
import { children, kill9, run } from '../test/support/child.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '20' }, 'max-delay-ms': { type: 'string', default: '1500' } } });
const rounds = Number(values.rounds);
const maxDelay = Number(values['max-delay-ms']);
const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'archive-crash-loop-'));
const gwProc = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'arlocal.ts'), path.join(dir, 'arlocal')], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  createInterface({ input: gwProc.stdout }).on('line', (l) => l.startsWith('http://') && resolve(l.trim()));
  gwProc.once('exit', (c) => reject(new Error(`gateway exited ${c}`)));
});
const fail = (why: string): never => {
  process.stderr.write(`VIOLATION: ${why}\n`);
  process.exit(1);
};

let code = 0;
try {
  await (await fetch(`${url}/mine`)).arrayBuffer();
  const arweave = arweaveFor(url);
  const jwk = await arweave.wallets.generate();
  const owner = await arweave.wallets.jwkToAddress(jwk);
  await (await fetch(`${url}/mint/${owner}/1000000000000000000000`)).arrayBuffer();
  const wallet = path.join(dir, 'wallet.json');
  writeFileSync(wallet, JSON.stringify(jwk));
  const file = path.join(dir, 'relation-im.sqlite');
  const store = new SqliteStore({ file, synchronous: 'NORMAL' });
  const state = new SqliteArchiveStore(file);
  const verifier = new MessageVerifier(new InlineRunner(), { clockSkewMs: 300_000, maxDelegationMs: 30 * 86_400_000, delegationCacheSize: 1000 });
  const alice = makeSigner();
  const bob = makeSigner();
  const clock = { t: alice.createdAt + 60_000, now() { return this.t; } };
  const service = new MessageService({
    store, committer: new GroupCommitter(store, 512), verifier, relations: new NoRelations(), push: new LocalHub(), clock, requireName: false, maxPending: Number.MAX_SAFE_INTEGER,
  });
  const source = new GatewaySource(url);
  const base = { CHILD_MODE: 'archive', CHILD_FILE: file, CHILD_DATA_DIR: dir, CHILD_GATEWAY: url, CHILD_WALLET: wallet };
  let sent = 0;
  for (let round = 1; round <= rounds; round++) {
    const big = round % 3 === 0;
    for (let i = 0; i < (big ? 6 : 3); i++) {
      clock.t += 1000;
      await service.submit(signMessage(alice, { receiver: bob.address, timestamp: clock.t, payload: Buffer.from(`${round}:${i}`.padEnd(big ? 110_000 : 100, 'x')).toString('base64') }));
      sent += 1;
    }
    const delay = Math.floor(Math.random() * maxDelay);
    const dying = run({ ...base, CHILD_UNTIL: String(round) });
    await dying.waitFor(/^STEP start$/); // the delay counts from the archiver's start, not the process's
    await new Promise((r) => setTimeout(r, delay));
    const last = dying.lines.filter((l) => l.startsWith('STEP')).pop() ?? '(starting)';
    await kill9(dying);
    const reborn = run({ ...base, CHILD_UNTIL: String(round) });
    await reborn.waitFor(/^DONE /);
    await reborn.exited;
    const head = await state.head();
    if (head?.seq !== round) fail(`round ${round}: head is ${head?.seq}`);
    const onGateway = await source.bundlesOf(owner);
    if (onGateway.length !== round) fail(`round ${round}: ${onGateway.length} bundles on the gateway`);
    process.stdout.write(`round ${round}: killed after ${delay} ms at "${last}"; head ${head?.seq} ${head?.txid}\n`);
  }
  const report = await verifyChain(source, (await state.head())?.txid as string, verifier);
  if (!report.ok || report.messages !== sent) fail(`verify: ${JSON.stringify(report).slice(0, 500)}`);
  process.stdout.write(`OK: ${rounds} kills, ${report.bundles} bundles, ${report.messages} messages, the chain verifies\n`);
  await state.close();
  await store.close();
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.stack : String(e)}\n`);
  code = 2;
} finally {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  gwProc.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
process.exit(code);
