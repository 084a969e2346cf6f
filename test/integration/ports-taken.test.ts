import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** A port held by someone else (another proxy's chain, a Hardhat node on 8545, another server). */
function occupy(): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer((c) => c.destroy());
    s.listen(0, '127.0.0.1', () => resolve(s));
  });
}
const portOf = (s: Server): number => (s.address() as { port: number }).port;

/** `npm start` as a child (through tsx) with `env`; resolves once it logged `until`, or once it exited. */
function start(env: Record<string, string>, until: string): Promise<{ out: string; err: string; code: number | null | 'running'; kill(): Promise<void> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-ports-'));
  const full: NodeJS.ProcessEnv = { ...process.env, HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', ARCHIVE_ENABLED: 'false', VERIFY_WORKERS: '1', ...env };
  for (const k of Object.keys(full)) if (k.startsWith('VITEST') || k === 'NODE_OPTIONS') delete full[k];
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: root, env: full, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const kill = async (): Promise<void> => {
    if (child.exitCode === null) child.kill('SIGKILL');
    await exited;
    rmSync(dataDir, { recursive: true, force: true });
  };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`neither "${until}" nor an exit within 120 s\n${out}\n${err}`)), 120_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(until)) {
        clearTimeout(timer);
        resolve({ out, err, code: 'running', kill });
      }
    });
    void exited.then(async (code) => {
      clearTimeout(timer);
      await kill();
      resolve({ out, err, code, kill });
    });
  });
}

describe('ports already taken at start', () => {
  const held: Server[] = [];
  afterEach(async () => {
    await Promise.all(held.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('serves the embedded chain\'s JSON-RPC on a free port, said in one warn line, when CHAIN_RPC_PORT is taken', async () => {
    const taken = await occupy();
    held.push(taken);
    const run = await start({ PORT: '0', CHAIN: 'embedded', CHAIN_RPC_PORT: String(portOf(taken)) }, 'relation-im-proxy listening on');
    try {
      expect(run.code, run.err).toBe('running');
      const records = run.out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; chainRpc?: string });
      const warn = records.find((r) => r.msg.includes('CHAIN_RPC_PORT'));
      expect(warn).toMatchObject({ level: 40, msg: expect.stringContaining(`CHAIN_RPC_PORT ${portOf(taken)} on 127.0.0.1 is in use`) });
      const url = warn?.chainRpc as string;
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(url).not.toBe(`http://127.0.0.1:${portOf(taken)}`);
      const answer = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }) });
      expect(await answer.json()).toMatchObject({ result: '0x7a69' });
      expect(run.err).toBe('');
    } finally {
      await run.kill();
    }
  }, 180_000);

  it('refuses a taken PORT with one line naming PORT, no stack trace', async () => {
    const taken = await occupy();
    held.push(taken);
    const run = await start({ PORT: String(portOf(taken)), CHAIN: 'none' }, 'relation-im-proxy listening on');
    expect(run.code).toBe(1);
    expect(run.err.trim().split('\n')).toEqual([`fatal: PORT ${portOf(taken)} on 127.0.0.1 is in use (another relation-im-proxy?): set PORT to a free port (0 picks one), and DATA_DIR to a directory of its own for a second server`]);
  }, 180_000);
});
