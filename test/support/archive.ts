/** A real archive rig for tests: SQLite store + archive state in a temp dir, a real arlocal gateway, real wallets. */
import { rmSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { tempDir as makeTempDir } from './tmp.js';
import { GroupCommitter } from '../../src/roles/chat/committer.js';
import { MessageService } from '../../src/roles/chat/message-service.js';
import { Archiver, type ArchiverHook, type ArchiverOptions } from '../../src/archive/archiver.js';
import { arweaveFor, type ArweaveClient, type Jwk } from '../../src/archive/arweave/client.js';
import { EmbeddedGateway } from '../../src/archive/arweave/embedded.js';
import { ArweaveUplink } from '../../src/archive/arweave/uplink.js';
import { GatewaySource } from '../../src/archive/reader/source.js';
import { SqliteArchiveStore } from '../../src/archive/sqlite/archive-store.js';
import { MessageVerifier } from '../../src/roles/identity/verifier.js';
import { InlineRunner } from '../../src/roles/identity/worker-pool.js';
import { LocalHub } from '../../src/bus/hub.js';
import { NoRelations } from '../../src/roles/relations/none.js';
import type { RelationMessage } from '../../src/protocol/message.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeSigner, signMessage, type Signer } from './archive-messages.js';

export const silentLog = pino({ level: 'silent' });

export function tempDir(prefix = 'archive-'): string {
  return makeTempDir(prefix);
}

export function newVerifier(): MessageVerifier {
  return new MessageVerifier(new InlineRunner(), { clockSkewMs: 300_000, maxDelegationMs: 30 * 86_400_000, delegationCacheSize: 1000 });
}

/** One arlocal per test file. */
export async function startGateway(): Promise<{ gateway: EmbeddedGateway; arweave: ArweaveClient; source: GatewaySource; dir: string }> {
  const dir = tempDir('arlocal-');
  const gateway = await EmbeddedGateway.start(dir, silentLog, 0);
  return { gateway, arweave: arweaveFor(gateway.url), source: new GatewaySource(gateway.url), dir };
}

/** A settable clock. */
export class TestClock {
  constructor(public t = 1_767_300_000_000) {}
  now(): number {
    return this.t;
  }
}

export interface Rig {
  dir: string;
  storeFile: string;
  store: SqliteStore;
  archive: SqliteArchiveStore;
  clock: TestClock;
  uplink: ArweaveUplink;
  jwk: Jwk;
  owner: string;
  alice: Signer;
  bob: Signer;
  /** Sends `n` messages alice → bob through the real MessageService; payload sized to `payloadBytes`. */
  send(n: number, payloadBytes?: number): Promise<RelationMessage[]>;
  archiver(opts?: Partial<ArchiverOptions>, hook?: ArchiverHook): Archiver;
  close(): Promise<void>;
}

let wallet: Promise<Jwk> | null = null;

export async function makeRig(gw: { gateway: EmbeddedGateway; arweave: ArweaveClient }, opts: { freshWallet?: boolean } = {}): Promise<Rig> {
  const dir = tempDir();
  const storeFile = path.join(dir, 'relation-im.sqlite');
  const store = new SqliteStore({ file: storeFile, synchronous: 'NORMAL' });
  const archive = new SqliteArchiveStore(storeFile);
  const clock = new TestClock();
  // A chain per owner: each rig gets its own wallet unless told to share (RSA-4096 generation is slow).
  const jwk = opts.freshWallet === false ? await (wallet ??= gw.arweave.wallets.generate()) : await gw.arweave.wallets.generate();
  const uplink = new ArweaveUplink(gw.arweave, jwk, { afterAccepted: () => gw.gateway.mine() });
  const owner = await uplink.owner();
  await gw.gateway.fund(owner);
  const alice = makeSigner();
  const bob = makeSigner();
  const msgClock = new TestClock();
  const messages = new MessageService({
    store, committer: new GroupCommitter(store, 512), verifier: newVerifier(), relations: new NoRelations(), push: new LocalHub(),
    clock: msgClock, requireName: false, maxPending: Number.MAX_SAFE_INTEGER,
  });
  let t = alice.createdAt + 60_000;
  const archivers: Archiver[] = [];
  return {
    dir, storeFile, store, archive, clock, uplink, jwk, owner, alice, bob,
    async send(n, payloadBytes = 16) {
      const sent: RelationMessage[] = [];
      for (let i = 0; i < n; i++) {
        t += 1000;
        const payload = Buffer.from(`${t}:${i}:`.padEnd(Math.max(1, Math.floor(payloadBytes * 3 / 4)), 'x')).toString('base64');
        const m = signMessage(alice, { receiver: bob.address, timestamp: t, payload });
        msgClock.t = t;
        await messages.submit(m);
        sent.push(m);
      }
      return sent;
    },
    archiver(o = {}, hook) {
      const a = new Archiver(archive, uplink, clock, silentLog, {
        dataDir: dir, cron: '0 */12 * * *', sizeTriggerBytes: 1_000_000, pollMs: 60_000, retryBaseMs: 1000, retryMaxMs: 60_000,
        leaseMs: 30_000, random: () => 0.5, ...o,
      }, hook);
      archivers.push(a);
      return a;
    },
    async close() {
      for (const a of archivers) await a.stop().catch(() => undefined);
      await archive.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
