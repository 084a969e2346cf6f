import { buildApp } from './app.js';
import { ConfigError, loadConfig, readEnv } from './config/config.js';
import { routeConsoleToLog } from './log/console.js';
import { createLogger } from './log/logger.js';
import { startChainRelations } from './roles/relations/chain/setup.js';
import { Metrics } from './metrics/metrics.js';
import { isPrimaryOfMany, runPrimary } from './workers.js';

/** Loads configuration, builds the app and listens; the only place that touches process state. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(readEnv());
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\nSee docs/configuration.md and .env.example.\n`);
      process.exit(2);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  routeConsoleToLog(log); // stdout stays pure JSON: a library's console lines become log records
  if (isPrimaryOfMany(config)) {
    runPrimary(config, log);
    return;
  }
  const metrics = new Metrics();
  const chain = config.chain === 'none' ? null : await startChainRelations(config, log, { rpc: metrics.rpc });
  if (chain) {
    log.info({ chain: config.chain, contracts: chain.addresses }, 'relation contracts');
    if (chain.rpcUrl) log.info({ chainRpc: chain.rpcUrl, chainId: config.chainId }, `embedded chain JSON-RPC at ${chain.rpcUrl} (chain id ${config.chainId}; development keys only)`);
    if (chain.demo) {
      for (const id of chain.demo.identities) {
        log.info({ label: id.label, address: id.address, name: id.name, privateKey: id.privateKey }, `demo identity ${id.label} (development key, never use elsewhere)`);
      }
      log.info({ dao: chain.demo.dao }, `demo group "${chain.demo.dao.name}" at ${chain.demo.dao.address}`);
    }
  }
  const app = buildApp(config, log, chain ? { relations: chain.reader, metrics, ...(chain.demo ? { demo: chain.demo } : {}) } : { metrics });
  const port = await app.listen();
  log.info({ port, host: config.host, dataDir: config.dataDir }, `relation-im-proxy listening on http://${config.host}:${port}`);

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    app.close().then(() => chain?.close()).then(() => process.exit(0), (err: unknown) => {
      log.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  // A store that cannot be opened is an operator's matter, said in one line; anything else with its stack.
  const plain = err instanceof Error && (err.name === 'DatabaseUnavailableError' || err.name === 'SchemaTooNewError');
  // A port someone else holds (a second `npm start`): one line naming the variable, no stack.
  const inUse = err instanceof Error && (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
    ? `PORT ${(err as { port?: number }).port ?? ''} on ${(err as { address?: string }).address ?? ''} is in use (another relation-im-proxy?): set PORT to a free port (0 picks one), and DATA_DIR to a directory of its own for a second server`
    : null;
  process.stderr.write(`fatal: ${inUse ?? (plain ? (err as Error).message : err instanceof Error ? err.stack : String(err))}\n`);
  process.exit(1);
});
