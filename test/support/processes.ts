import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const root = path.resolve(import.meta.dirname, '../..');

export interface ServerProcess {
  name: string;
  child: ChildProcess;
  url: string;
  wsUrl: string;
  imUrl: string;
  /** Resolves when the process has exited. */
  exited: Promise<number | null>;
  /** Lines the process logged at warn level or above (for a failing test's message). */
  warnings: string[];
  kill(signal: NodeJS.Signals): Promise<void>;
}

/**
 * Starts `src/main.ts` as a process of its own (as `npm start` would, through tsx) with `env` over a
 * quiet test default, and resolves once it listens.
 */
export function startServerProcess(name: string, cwd: string, env: Record<string, string>): Promise<ServerProcess> {
  // The loader is named by absolute URL because the process runs in its own directory (no .env there).
  const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  const child = spawn(process.execPath, ['--import', tsx, path.join(root, 'src/main.ts')], {
    cwd,
    env: {
      ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: cwd, LOG_LEVEL: 'info', VERIFY_WORKERS: '1', CHAIN: 'none',
      ARCHIVE_ENABLED: 'false', REQUIRE_NAME: 'false', ALLOW_DEV_PLAINTEXT: 'true', ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const warnings: string[] = [];
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      if (/"level":(40|50|60)/.test(line)) warnings.push(line.slice(0, 1000));
      const m = /"port":(\d+),"host"/.exec(line);
      if (m) {
        const url = `http://127.0.0.1:${m[1]}`;
        resolve({
          name, child, url, wsUrl: `ws://127.0.0.1:${m[1]}/ws`, imUrl: `ws://127.0.0.1:${m[1]}/im`, exited, warnings,
          async kill(signal) {
            if (child.exitCode === null && child.signalCode === null) child.kill(signal);
            await exited;
          },
        });
      }
    });
    void exited.then((code) => reject(new Error(`${name} exited early with ${code}: ${stderr.slice(-2000)} ${warnings.join('\n')}`)));
  });
}
