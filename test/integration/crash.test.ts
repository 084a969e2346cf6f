import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { makeIdentity, signedMessage } from '../support/messages.js';
import { http, login } from '../support/server.js';

const root = path.resolve(import.meta.dirname, '../..');

/** Starts `src/main.ts` as its own process and resolves with its port once it listens. */
function startProcess(dataDir: string): Promise<{ child: ChildProcess; url: string }> {
  // The loader is named by absolute URL because the process runs in its own DATA_DIR (no .env, no node_modules).
  const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  const child = spawn(process.execPath, ['--import', tsx, path.join(root, 'src/main.ts')], {
    cwd: dataDir,
    env: { ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', SQLITE_SYNCHRONOUS: 'FULL', VERIFY_WORKERS: '1', CHAIN: 'none', ARCHIVE_ENABLED: 'false', RATE_LIMIT_EXEMPT: '127.0.0.1,::1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    lines.on('line', (line) => {
      const m = /"port":(\d+)/.exec(line);
      if (m) resolve({ child, url: `http://127.0.0.1:${m[1]}` });
    });
    child.once('exit', (code) => reject(new Error(`server exited early with ${code}`)));
  });
}

describe('durability', () => {
  const dirs: string[] = [];
  afterAll(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

  it('loses no acknowledged message when the process is killed mid-stream (SIGKILL)', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-crash-'));
    dirs.push(dataDir);
    const first = await startProcess(dataDir);
    const alice = makeIdentity();
    const bob = makeIdentity();
    const acked = new Set<string>();
    const messages = Array.from({ length: 400 }, () => signedMessage(alice, { receiver: bob.address }));
    let killed = false;
    const sends = messages.map(async (m) => {
      try {
        const res = await http(first.url, 'POST', '/message/send', { body: m });
        if (res.status === 200) {
          acked.add(m.id);
          // Kill as soon as a good share is acknowledged, with the rest still in flight.
          if (acked.size >= 150 && !killed) {
            killed = true;
            first.child.kill('SIGKILL');
          }
        }
      } catch {
        // connection cut by the kill: not acknowledged, so the client would retry
      }
    });
    await Promise.all(sends);
    expect(killed).toBe(true);
    expect(acked.size).toBeGreaterThanOrEqual(150);

    const second = await startProcess(dataDir);
    try {
      const token = await login(second.url, bob);
      const stored: { id: string; seq: number }[] = [];
      for (let after = 0; ;) {
        const page = (await http(second.url, 'GET', `/message/list?chatId=${alice.address}&afterSeq=${after}&limit=200`, { token })).json as { id: string; seq: number }[];
        if (page.length === 0) break;
        stored.push(...page);
        after = page[page.length - 1]?.seq ?? after;
      }
      const ids = new Set(stored.map((s) => s.id));
      for (const id of acked) expect(ids.has(id)).toBe(true);
      expect(ids.size).toBe(stored.length); // no duplicates
      expect(stored.map((s) => s.seq)).toEqual(stored.map((_, i) => i + 1)); // no gaps
      // A client retrying everything it did not see acknowledged gets each message exactly once.
      for (const m of messages) expect((await http(second.url, 'POST', '/message/send', { body: m })).status).toBe(200);
      const total = (await http(second.url, 'GET', `/message/unreadCount?chatId=${alice.address}`, { token })).text;
      expect(Number(total)).toBe(messages.length);
    } finally {
      second.child.kill('SIGTERM');
    }
  });
});
