/**
 * What every benchmark needs from the server: the dist build started in its own process, run as
 * `npm start` runs it, and SIWE logins for the load generator's wallets.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Wallet } from 'ethers';
import { SiweMessage } from 'siwe';

const here = path.dirname(fileURLToPath(import.meta.url));

export interface BenchServer {
  url: string;
  pid: number;
  stop(): void;
}

/**
 * Starts `dist/src/main.js` on a free loopback port with its store in `dataDir`, with the same V8 flag
 * as `npm start` and then BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"). Server error
 * logs and the recovery backend line are printed through `log`.
 */
export function startBenchServer(dataDir: string, env: Record<string, string>, log: (s: string) => void): Promise<BenchServer> {
  const nodeArgs = ['--max-semi-space-size=64', ...(process.env['BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean)];
  const child = spawn(process.execPath, [...nodeArgs, path.join(here, '../src/main.js')], {
    cwd: dataDir, stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', SQLITE_SYNCHRONOUS: 'FULL', ...env },
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const m = /"port":(\d+)/.exec(line);
      if (m) resolve({ url: `http://127.0.0.1:${m[1]}`, pid: child.pid ?? 0, stop: () => child.kill('SIGTERM') });
      if (/"level":(50|60)/.test(line)) log(`server error: ${line.slice(0, 2000)}`);
      const b = /"backend":"(\w+)","keccak":"(\w+)","verifyThreads":(\d+)/.exec(line);
      if (b) log(`server: recovery ${b[1]}, keccak ${b[2]}, ${b[3]} verify threads`);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

/** SIWE login with the wallet itself; returns the bearer token. */
export async function loginToken(url: string, who: Wallet): Promise<string> {
  const { nonce } = (await (await fetch(`${url}/auth/nonce`)).json()) as { nonce: string };
  const message = new SiweMessage({ domain: new URL(url).host, address: who.address, uri: url, version: '1', chainId: 1, nonce, issuedAt: new Date().toISOString() }).prepareMessage();
  const res = await fetch(`${url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ message, signature: who.signMessageSync(message) }) });
  return ((await res.json()) as { token: string }).token;
}
