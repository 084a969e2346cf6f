import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * `npm start` as an operator runs it (default configuration: the in-process chain with demo identities
 * and the embedded arlocal archive gateway), as a child process through tsx: every line it writes to
 * stdout, from start to shutdown, is one JSON object (arlocal's own `arlocal started on port N`, printed in the gateway's child process, included).
 */
describe('the JSON log', () => {
  it('is pure JSON on stdout through start, archive start and shutdown', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-startlog-'));
    // the defaults of `npm start`, pinned so a developer's environment or .env cannot turn the archive off
    const env: NodeJS.ProcessEnv = {
      ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', CHAIN: 'embedded', ARCHIVE_ENABLED: 'true', ARCHIVE_GATEWAY_URL: '',
    };
    for (const k of Object.keys(env)) if (k.startsWith('VITEST') || k === 'NODE_OPTIONS') delete env[k];
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      // the archive is ready once the embedded gateway answered (its own start line is printed before)
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "archive ready" within 120 s\nstdout:\n${out}\nstderr:\n${err}`)), 120_000);
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('"archive ready"')) {
            clearTimeout(timer);
            resolve();
          }
        });
        void exited.then((code) => reject(new Error(`server exited (${code}) before the archive was ready\n${err}`)));
      });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
    const lines = out.split('\n').filter((l) => l !== '');
    const notJson = lines.filter((l) => {
      try {
        const v: unknown = JSON.parse(l);
        return typeof v !== 'object' || v === null || Array.isArray(v);
      } catch {
        return true;
      }
    });
    expect(notJson).toEqual([]);
    const records = lines.map((l) => JSON.parse(l) as { msg?: string; component?: string });
    // the arlocal line is there, as a record (arlocal runs in a child process that hands its console lines to the log)
    expect(records).toContainEqual(expect.objectContaining({ gateway: 'arlocal', msg: expect.stringMatching(/^arlocal started on port \d+$/) }));
    // the gateway's child process ended with the server
    const started = records.find((r) => r.msg === 'embedded arlocal gateway started') as { pid?: number } | undefined;
    expect(typeof started?.pid).toBe('number');
    expect(() => process.kill(started?.pid as number, 0)).toThrow();
    for (const msg of ['relation-im-proxy listening on', 'embedded arlocal gateway started', 'archive ready', 'shutting down']) {
      expect(records.some((r) => r.msg?.startsWith(msg)), msg).toBe(true);
    }
  }, 180_000);
});
