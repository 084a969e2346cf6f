import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { buildApp, type App } from '../../src/app.js';
import { testConfig, type Config } from '../../src/config/config.js';

/** Sends raw bytes on a fresh TCP connection and resolves with everything the server sent until it closed (or `timeoutMs`). */
export function rawExchange(port: number, bytes: string | Buffer, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); resolve(Buffer.concat(chunks).toString('latin1')); }, timeoutMs);
    s.on('connect', () => s.write(bytes));
    s.on('data', (c) => {
      chunks.push(c);
      // A switched protocol stays open: its head is the whole answer.
      const text = Buffer.concat(chunks).toString('latin1');
      if (text.startsWith('HTTP/1.1 101') && text.includes('\r\n\r\n')) s.destroy();
    });
    s.on('error', (e) => { clearTimeout(timer); if (chunks.length > 0) resolve(Buffer.concat(chunks).toString('latin1')); else reject(e); });
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks).toString('latin1')); });
  });
}

/** Status code and parsed JSON body of a raw HTTP answer. */
export function parseRaw(answer: string): { status: number; json: unknown; head: string } {
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0);
  const at = answer.indexOf('\r\n\r\n');
  const head = at < 0 ? answer : answer.slice(0, at);
  let body = at < 0 ? '' : answer.slice(at + 4);
  if (/^transfer-encoding:\s*chunked/im.test(head)) {
    let out = '';
    for (let i = 0; i < body.length;) {
      const eol = body.indexOf('\r\n', i);
      const size = parseInt(body.slice(i, eol), 16);
      if (!(size > 0)) break;
      out += body.slice(eol + 2, eol + 2 + size);
      i = eol + 2 + size + 2;
    }
    body = out;
  }
  let json: unknown;
  try { json = JSON.parse(body); } catch { json = undefined; }
  return { status, json, head };
}

export interface LogLine { level: number; msg?: string; err?: { stack?: string }; [k: string]: unknown }

/** The real app on port 0 with a debug-level logger whose lines the test can read. */
export async function startLoggedServer(overrides: Partial<Config> = {}): Promise<{ app: App; port: number; url: string; lines: LogLine[]; close(): Promise<void> }> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-edge-'));
  const lines: LogLine[] = [];
  const sink = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as LogLine); cb(); } });
  const log = pino({ level: 'debug' }, sink);
  const config = testConfig({ port: 0, host: '127.0.0.1', dataDir, verifyWorkers: 1, sqliteSynchronous: 'NORMAL', chain: 'none', archiveEnabled: false, allowDevPlaintext: true, ...overrides });
  const app = buildApp(config, log);
  const port = await app.listen();
  return { app, port, url: `http://127.0.0.1:${port}`, lines, async close() { await app.close(); rmSync(dataDir, { recursive: true, force: true }); } };
}
