import path from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../log/logger.js';
import { Archiver, type ArchiverHook } from './archiver.js';
import { arweaveFor } from './arweave/client.js';
import { EmbeddedGateway } from './arweave/embedded.js';
import { ArweaveUplink } from './arweave/uplink.js';
import { loadWallet } from './arweave/wallet.js';
import type { ArchiveStore } from './port.js';
import { archiveRoutes } from './routes.js';
import { PostgresArchiveStore } from './postgres/archive-store.js';
import { SqliteArchiveStore } from './sqlite/archive-store.js';
import type { WriterClient } from '../store/sqlite/writer-client.js';

export interface ArchiveComponent {
  archiver: Archiver;
  store: ArchiveStore;
  uplink: ArweaveUplink;
  /** The gateway uploads go to (the embedded one's loopback URL when none is configured). */
  gatewayUrl: string;
  /** Express router with GET /archive/head and GET /archive/status. */
  routes: ReturnType<typeof archiveRoutes>;
  /** Stops the archiver (a running upload stops at its next chunk, resumable), the gateway and the state store. */
  close(): Promise<void>;
}

export interface ArchiveOverrides {
  clock?: Clock;
  /** The SQLite store's writer: the archive's state is then read and written on its thread. */
  writer?: WriterClient;
  store?: ArchiveStore;
  hook?: ArchiverHook;
  holder?: string;
}

/**
 * Builds the archive from the config: state beside the store (the SQLite file `storeFile`, or PostgreSQL at
 * DATABASE_URL with STORE=postgres), the wallet, the
 * gateway (configured, or arlocal embedded under DATA_DIR/arlocal) and the archiver. Not started:
 * call `archiver.start()`.
 */
export async function createArchive(config: Config, storeFile: string, log: Logger, overrides: ArchiveOverrides = {}): Promise<ArchiveComponent> {
  const alog = log.child({ component: 'archive' });
  const embedded = config.archiveGatewayUrl === ''
    ? await EmbeddedGateway.start(path.join(config.dataDir, 'arlocal'), alog, config.archiveMineMs)
    : null;
  const gatewayUrl = embedded?.url ?? config.archiveGatewayUrl;
  const arweave = arweaveFor(gatewayUrl);
  const walletFile = config.archiveWalletFile !== '' ? config.archiveWalletFile : path.join(config.dataDir, 'archive-wallet.json');
  const jwk = await loadWallet(arweave, walletFile, embedded !== null);
  const uplink = new ArweaveUplink(arweave, jwk, {
    afterAccepted: async () => embedded?.mine(),
    close: async () => embedded?.stop(),
  });
  if (embedded) await embedded.fund(await uplink.owner());
  // The archive state lives where the store does: the SQLite file, or the PostgreSQL database that every
  // process of a cluster shares (its lease row then elects the one archiver among them).
  const store = overrides.store ?? (config.store === 'postgres'
    ? await PostgresArchiveStore.open({ url: config.databaseUrl, onIdleError: (err) => alog.warn({ err }, 'archive: PostgreSQL connection lost; the pool reconnects') })
    : new SqliteArchiveStore(storeFile, overrides.writer ? { writer: overrides.writer } : {}));
  const archiver = new Archiver(store, uplink, overrides.clock ?? systemClock, alog, {
    dataDir: config.dataDir,
    cron: config.archiveCron,
    sizeTriggerBytes: config.archiveSizeTriggerBytes,
    pollMs: config.archivePollMs,
    retryBaseMs: config.archiveRetryBaseMs,
    retryMaxMs: config.archiveRetryMaxMs,
    leaseMs: config.archiveLeaseMs,
    confirmations: config.archiveConfirmations,
    ...(overrides.holder !== undefined ? { holder: overrides.holder } : {}),
  }, overrides.hook);
  const routes = archiveRoutes({ status: () => archiver.status(), log: alog });
  alog.info({ gateway: gatewayUrl, owner: await uplink.owner(), cron: config.archiveCron }, 'archive ready');
  let closed = false;
  return {
    archiver, store, uplink, gatewayUrl, routes,
    async close() {
      if (closed) return;
      closed = true;
      await archiver.stop();
      await uplink.close();
      await store.close();
    },
  };
}
