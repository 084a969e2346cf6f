// @ts-check
/**
 * The embedded arlocal gateway's own process (forked by embedded.ts). arlocal handles every uploaded
 * chunk on its event loop (JSON of 256 KiB base64 chunks, its own SQLite): in the proxy's process, a
 * 100 MB bundle going up held the proxy's main thread for whole seconds in all, and the send-to-push
 * p99 at 1,000 msg/s rose from ~50 ms to ~200 ms while it did. Plain JavaScript so that it forks the
 * same under the dist build and under tsx/vitest.
 *
 * argv[2]: the data directory. Tells the parent `{ url }` (or `{ error }`) over IPC once listening, and
 * exits when the parent says `stop` or goes away (its IPC channel closes, e.g. the proxy was killed -9):
 * the process is killed rather than arlocal stopped, because arlocal's stop() drops its persisted tables.
 */
import ArLocalModule from 'arlocal';
import { createServer } from 'node:net';
import { format } from 'node:util';

/** @type {any} */
const mod = ArLocalModule;
const ArLocal = mod.default ?? mod;
const dir = process.argv[2];

/** @returns {Promise<number>} */
const freePort = () => new Promise((resolve, reject) => {
  const s = createServer();
  s.once('error', reject);
  s.listen(0, '127.0.0.1', () => {
    const a = s.address();
    const port = typeof a === 'object' && a ? a.port : 0;
    s.close(() => resolve(port));
  });
});

const send = (/** @type {unknown} */ m) => process.send?.(m);
// What arlocal prints (its start line, its route errors) goes to the proxy's JSON log, not to bare stdout.
for (const level of /** @type {const} */ (['log', 'info', 'debug', 'warn', 'error'])) {
  console[level] = (...a) => send({ console: level, line: format(...a) });
}
process.on('disconnect', () => process.exit(0));
process.on('message', (m) => { if (m === 'stop') process.exit(0); });

for (let attempt = 1; ; attempt++) {
  try {
    const port = await freePort();
    const arlocal = new ArLocal(port, false, dir, true);
    // arlocal appends a request log to ./logs in the working directory; nothing of ours should write there
    arlocal.log.logInFile = () => {};
    await arlocal.start();
    const server = arlocal.getServer();
    const ok = await new Promise((resolve) => {
      if (server.listening) resolve(true);
      server.once('listening', () => resolve(true));
      server.once('error', () => resolve(false));
    });
    if (ok) {
      send({ url: `http://127.0.0.1:${port}` });
      break;
    }
  } catch (e) {
    if (attempt >= 5) {
      send({ error: e instanceof Error ? e.message : String(e) });
      process.exit(1);
    }
  }
  if (attempt >= 5) {
    send({ error: 'could not find a free port for the embedded arlocal gateway' });
    process.exit(1);
  }
}
