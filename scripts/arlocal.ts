/**
 * Runs the embedded arlocal gateway on its own, for trying the reader CLI or for benchmarks:
 *   tsx scripts/arlocal.ts [DIR]      (default DIR: ./data/arlocal; prints the URL, stops on SIGINT/SIGTERM)
 */
import path from 'node:path';
import { EmbeddedGateway } from '../src/archive/arweave/embedded.js';
import { createLogger } from '../src/log/logger.js';

const dir = path.resolve(process.argv[2] ?? './data/arlocal');
const gw = await EmbeddedGateway.start(dir, createLogger('warn'), 0);
process.stdout.write(`${gw.url}\n`);
// The gateway runs in a child process that never keeps this one alive: this script waits for a signal.
const keepAlive = setInterval(() => {}, 1 << 30);
const stop = (): void => {
  clearInterval(keepAlive);
  void gw.stop().then(() => process.exit(0));
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
