/**
 * A real process that archives (or imports) against a SQLite file and a gateway, for crash tests that
 * kill it with SIGKILL. Configured by environment:
 *
 *   CHILD_MODE      archive | import
 *   CHILD_FILE      the SQLite file (store + archive state)
 *   CHILD_PG_URL    archive mode: keep the archive state in PostgreSQL at this URL instead (STORE=postgres)
 *   CHILD_LEASE_MS  archive lease (default 1500)
 *   CHILD_DATA_DIR  DATA_DIR (bundle files)
 *   CHILD_GATEWAY   gateway URL (arlocal)
 *   CHILD_WALLET    archive wallet JWK file (archive mode)
 *   CHILD_HEAD      head transaction (import mode)
 *   CHILD_UNTIL     archive mode: exit once the head has this Bundle-Seq
 *   CHILD_PAUSE_AT  a step to stop at, printing "AT <step>" and waiting to be killed: cut, signed,
 *                   header (header posted, not recorded), chunk:N (chunk N sent, not recorded), uploaded,
 *                   pending, confirmed; import mode: bundle:N (bundle N imported)
 *
 * Prints "STEP …" lines as it goes and "DONE <json>" at the end.
 */
import { readFileSync } from 'node:fs';
import { pino } from 'pino';
import { Archiver, type ArchiverStep } from '../../src/archive/archiver.js';
import { arweaveFor, type Jwk } from '../../src/archive/arweave/client.js';
import { ArweaveUplink } from '../../src/archive/arweave/uplink.js';
import { importChain } from '../../src/archive/reader/import.js';
import { GatewaySource } from '../../src/archive/reader/source.js';
import { PostgresArchiveStore } from '../../src/archive/postgres/archive-store.js';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import type { ArchiveStore } from '../../src/archive/port.js';
import { MessageVerifier } from '../../src/roles/identity/verifier.js';
import { InlineRunner } from '../../src/roles/identity/worker-pool.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';

const env = (k: string): string => {
  const v = process.env[k];
  if (v === undefined) throw new Error(`${k} not set`);
  return v;
};
const say = (line: string): void => {
  process.stdout.write(`${line}\n`);
};
const pauseAt = process.env['CHILD_PAUSE_AT'] ?? '';
const pause = async (what: string): Promise<void> => {
  if (what !== pauseAt) return;
  say(`AT ${what}`);
  await new Promise((r) => setTimeout(r, 120_000)); // killed here
};
const gateway = env('CHILD_GATEWAY');
const file = process.env['CHILD_FILE'] ?? '';
const pgUrl = process.env['CHILD_PG_URL'];

async function archive(): Promise<void> {
  const jwk = JSON.parse(readFileSync(env('CHILD_WALLET'), 'utf8')) as Jwk;
  const mine = async (): Promise<void> => {
    await (await fetch(`${gateway}/mine`)).arrayBuffer();
  };
  const uplink = new ArweaveUplink(arweaveFor(gateway), jwk, { afterAccepted: mine });
  const state: ArchiveStore = pgUrl ? await PostgresArchiveStore.open({ url: pgUrl }) : new SqliteArchiveStore(file);
  const until = Number(env('CHILD_UNTIL'));
  const hook = async (s: ArchiverStep): Promise<void> => {
    let name: string = s.step;
    if (s.step === 'upload-progress') {
      const st = JSON.parse(s.state) as { chunkIndex: number; txPosted: boolean };
      name = st.chunkIndex === 0 ? 'header' : `chunk:${st.chunkIndex}`;
    }
    say(`STEP ${name} ${s.bundle.seq}`);
    await pause(name);
  };
  const archiver = new Archiver(state, uplink, { now: () => Date.now() }, pino({ level: 'silent' }), {
    dataDir: env('CHILD_DATA_DIR'), cron: '0 */12 * * *', sizeTriggerBytes: 50_000_000, pollMs: 60_000, retryBaseMs: 200,
    retryMaxMs: 1000, leaseMs: Number(process.env['CHILD_LEASE_MS'] ?? 1500), confirmations: 2,
  }, hook);
  say('STEP start');
  for (let i = 0; i < 400; i++) {
    const res = await archiver.runOnce(Date.now(), 'tick');
    if (res.error) say(`STEP error ${res.error}`);
    if (res.skipped === 'lease') say('STEP lease-held-elsewhere');
    const head = await state.head();
    if ((head?.seq ?? 0) >= until) {
      say(`DONE ${JSON.stringify({ seq: head?.seq, txid: head?.txid })}`);
      return;
    }
    await new Promise((r) => setTimeout(r, 150));
    await mine();
  }
  throw new Error('the archiver did not reach the head in time');
}

async function load(): Promise<void> {
  const store = new SqliteStore({ file, synchronous: 'NORMAL' });
  const state = new SqliteArchiveStore(file);
  const verifier = new MessageVerifier(new InlineRunner(), { clockSkewMs: 300_000, maxDelegationMs: 30 * 86_400_000, delegationCacheSize: 1000 });
  const report = await importChain(new GatewaySource(gateway), env('CHILD_HEAD'), { store, archive: state, verifier, commitBatchMax: 64 }, (p) => {
    if (p.phase === 'verify') {
      say(`STEP bundle:${p.bundle}`);
      if (pauseAt === `bundle:${p.bundle}`) {
        say(`AT ${pauseAt}`);
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 120_000); // the callback is synchronous: block right here until killed
      }
    }
  });
  say(`DONE ${JSON.stringify(report)}`);
}

(process.env['CHILD_MODE'] === 'import' ? load() : archive()).then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`child: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(3);
});
