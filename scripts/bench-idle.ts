/**
 * Memory per idle authenticated connection: the real server (dist build, its own process, as `npm start`
 * runs it) holds N authenticated `/ws` connections, then N authenticated `/im` connections, each of its
 * own user (SIWE login per wallet); the server's RSS (/proc) and V8 heap (its /metrics) are read before
 * and after each face, and the growth is printed per connection. One process may hold at most 20,000
 * open files on this machine: the load generator holds every client socket, so N <= ~9,000 per face.
 * The heap is read through the server's inspector after a full collection (`--inspect-port`, default 19229).
 *
 *   npm run build && node dist/scripts/bench-idle.js [--connections 5000]
 */
import { loginToken, numericArgs, startBenchServer } from './bench-server.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { Wallet } from 'ethers';
import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';

const num = numericArgs();
const N = num('connections', 5000);
const log = (s: string): void => { process.stdout.write(`${s}\n`); };
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

/**
 * The server's live V8 heap: a full garbage collection, then the heap in use, through the server's own
 * inspector (it runs with --inspect on INSPECT_PORT). Without the collection the reading includes the
 * logins' garbage, and a reading after the connections can come out below the one before them.
 */
const INSPECT_PORT = num('inspect-port', 19229);
let inspector: WebSocket | null = null;
let nextCall = 1;
async function cdp(method: string): Promise<Record<string, unknown>> {
  if (!inspector) {
    const list = (await (await fetch(`http://127.0.0.1:${INSPECT_PORT}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
    const ws = new WebSocket(list[0]?.webSocketDebuggerUrl ?? '');
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    inspector = ws;
  }
  const id = nextCall++;
  const ws = inspector;
  return new Promise((resolve) => {
    const onMessage = (data: Buffer): void => {
      const m = JSON.parse(data.toString()) as { id?: number; result?: Record<string, unknown> };
      if (m.id === id) { ws.off('message', onMessage); resolve(m.result ?? {}); }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, method }));
  });
}

async function heapBytes(): Promise<number> {
  await cdp('HeapProfiler.collectGarbage');
  return Number((await cdp('Runtime.getHeapUsage'))['usedSize']);
}

/** RSS and heap once the server has settled (median of five readings a second apart, each after a full GC). */
async function settled(_url: string, pid: number): Promise<{ rss: number; heap: number }> {
  const rss: number[] = [];
  const heap: number[] = [];
  for (let i = 0; i < 5; i++) {
    await sleep(1000);
    heap.push(await heapBytes());
    rss.push(rssBytes(pid));
  }
  const mid = (a: number[]): number => a.sort((x, y) => x - y)[Math.floor(a.length / 2)] as number;
  return { rss: mid(rss), heap: mid(heap) };
}

function openWs(url: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${token}`, { perMessageDeflate: false });
    ws.on('message', (data) => { if ((data as Buffer).includes('"ready"')) resolve(ws); });
    ws.once('error', reject);
  });
}

function openIm(url: string, token: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/im`, { perMessageDeflate: false });
    ws.once('error', reject);
    ws.once('open', () => ws.send(packr.pack(new Map<number, unknown>([[0, 1], [1, 1], [2, 0], [4, new Map([[0, token]])]]))));
    ws.on('message', (data: Buffer) => {
      const cmd = (unpackr.unpack(data) as Map<number, unknown>).get(1);
      if (cmd === 1) resolve(ws);
      else reject(new Error(`/im auth answered command ${String(cmd)}`));
    });
  });
}

/** A login, retried twice when the connection fails (the load generator's HTTP pool under 10,000 open sockets). */
async function login(url: string, w: Wallet): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await loginToken(url, w);
    } catch (e) {
      if (attempt >= 2) throw new Error(`login failed: ${String((e as { cause?: unknown }).cause ?? e)}`);
      await sleep(200);
    }
  }
}

async function face(name: string, url: string, pid: number, open: (url: string, token: string) => Promise<WebSocket>, held: WebSocket[]): Promise<void> {
  const wallets = Array.from({ length: N }, () => new Wallet(Wallet.createRandom().privateKey));
  const tokens: string[] = [];
  for (let i = 0; i < N; i += 100) tokens.push(...(await Promise.all(wallets.slice(i, i + 100).map((w) => login(url, w)))));
  const before = await settled(url, pid);
  for (let i = 0; i < N; i += 200) held.push(...(await Promise.all(tokens.slice(i, i + 200).map((t) => open(url, t)))));
  const after = await settled(url, pid);
  const kb = (b: number): string => (b / N / 1024).toFixed(1);
  log(`${name}: ${N} idle authenticated connections: server RSS +${((after.rss - before.rss) / 1048576).toFixed(1)} MiB = ${kb(after.rss - before.rss)} KiB per connection, `
    + `V8 heap +${((after.heap - before.heap) / 1048576).toFixed(1)} MiB = ${kb(after.heap - before.heap)} KiB per connection (RSS now ${(after.rss / 1048576).toFixed(0)} MiB)`);
}

async function main(): Promise<void> {
  log(`machine: ${availableParallelism()} cores, node ${process.version}; ${N} connections per face, each its own user`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-bench-idle-'));
  process.env['BENCH_NODE_ARGS'] = `${process.env['BENCH_NODE_ARGS'] ?? ''} --inspect=127.0.0.1:${INSPECT_PORT}`;
  const server = await startBenchServer(dataDir, { REQUIRE_NAME: 'false' }, log);
  const held: WebSocket[] = [];
  try {
    await face('/ws', server.url, server.pid, openWs, held);
    await face('/im', server.url, server.pid, openIm, held);
    log('(the logins happen before the first reading: what grows is the connections, not the sessions)');
  } finally {
    for (const ws of held) ws.terminate();
    inspector?.terminate();
    server.stop();
    await sleep(500);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e: unknown) => {
  process.stderr.write(`bench failed: ${e instanceof Error ? e.stack : String(e)} ${String((e as { cause?: unknown }).cause ?? '')}\n`);
  process.exit(1);
});
