/**
 * Soak test: `npm run build && node dist/scripts/soak.js [--minutes 30] [--rate 1000] [--sockets 1000]`.
 *
 * The real server (dist build, its own process, SQLite synchronous=FULL, CHAIN=none) with `sockets`
 * WebSocket connections held open for the whole run: half on /ws, half on /im, one of each per user, users
 * paired in direct chats. `rate` messages per second in all, half signed Relation ONE messages sent as
 * /ws `send` frames, half /im SEND (text). Every minute it prints the server's RSS and V8 heap (read from
 * its own GET /metrics), messages acknowledged, errors; at the end the RSS and heap slope (least squares
 * over the minutes after the first, MiB per minute), and messages lost: acknowledged but never pushed to
 * the receiver's /im connection (which gets both faces' messages). Lost must be 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { dmCid } from '../src/roles/chat/ids.js';
import { CpuMeter, loginToken, numericArgs, startBenchServer } from './bench-server.js';
import { benchIdentity, benchMessage, type BenchIdentity } from './bench-sign.js';

const num = numericArgs();
const MINUTES = num('minutes', 30);
const RATE = num('rate', 1000);
const SOCKETS = num('sockets', 1000);
const USERS = Math.max(2, Math.floor(SOCKETS / 2) & ~1);
const out = (s: string): void => { process.stdout.write(`${s}\n`); };
const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });
type M = Map<unknown, unknown>;

interface User {
  id: BenchIdentity;
  address: string;
  peer: number;
  token: string;
  ws: WebSocket;
  im: WebSocket;
  imSeq: number;
}

function open(url: string, onMessage: (data: Buffer) => void): Promise<WebSocket> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('message', onMessage);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.slice(name.length + 1)) : Number.NaN;
}

function slope(ys: number[]): number {
  const n = ys.length;
  if (n < 2) return 0;
  const xm = (n - 1) / 2;
  const ym = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  ys.forEach((y, x) => { num += (x - xm) * (y - ym); den += (x - xm) ** 2; });
  return num / den;
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-soak-'));
  const server = await startBenchServer(dataDir, {
    CHAIN: 'none', ARCHIVE_ENABLED: 'false', REQUIRE_NAME: 'false', WS_MAX_FRAMES_PER_SEC: '10000',
  }, out);
  const wsBase = server.url.replace('http', 'ws');
  out(`soak: ${MINUTES} min at ${RATE} messages/s, ${USERS * 2} sockets (${USERS} on /ws, ${USERS} on /im), server ${server.url} (machine shared: figures are noisy)`);
  let acked = 0;
  let errors = 0;
  const errorKinds = new Map<string, number>();
  const fail = (kind: string): void => { errors++; errorKinds.set(kind, (errorKinds.get(kind) ?? 0) + 1); };
  /** key (R1 id or im text) -> receiver index, for acknowledged messages not yet seen pushed to the receiver's /im socket. */
  const awaiting = new Map<string, number>();
  const pushedEarly = new Set<string>();
  const users: User[] = [];
  const ids = Array.from({ length: USERS }, () => benchIdentity());
  for (let i = 0; i < USERS; i++) {
    const id = ids[i] as BenchIdentity;
    const token = await loginToken(server.url, id.wallet);
    const u = { id, address: id.address.toLowerCase(), peer: i ^ 1, token, imSeq: 1 } as User;
    const onPushKey = (key: string): void => {
      if (awaiting.get(key) === i) awaiting.delete(key);
      else if (!awaiting.has(key)) pushedEarly.add(`${i}:${key}`);
    };
    u.ws = await open(`${wsBase}/ws?token=${token}`, (data) => {
      const f = JSON.parse(data.toString()) as { type: string; result?: { id: string }; error?: { code: string } };
      if (f.type === 'sent' && f.result) {
        acked++;
        const key = f.result.id;
        if (pushedEarly.delete(`${u.peer}:${key}`)) return;
        awaiting.set(key, u.peer);
      } else if (f.type === 'error') fail(`ws ${f.error?.code}`);
    });
    u.im = await open(`${wsBase}/im`, (data) => {
      const env = unpackr.unpack(data) as M;
      const cmd = env.get(1);
      const body = env.get(4) as M | undefined;
      if (cmd === 4 && body) {
        const text = (body.get(7) as M).get(0) as string;
        onPushKey(body.get(2) === 64 ? (JSON.parse(text) as { id: string }).id : text);
      } else if (cmd === 3 && body) {
        const seq = env.get(2) as number;
        if (seq === 1) return; // not a send
        acked++;
        const key = `im-${i}-${seq}`;
        if (pushedEarly.delete(`${u.peer}:${key}`)) return;
        awaiting.set(key, u.peer);
      } else if (cmd === 0) fail(`im ${String(body?.get(1))}`);
    });
    u.im.send(packr.pack(new Map<unknown, unknown>([[0, 1], [1, 1], [2, 1], [4, new Map([[0, token]])]])));
    for (const ws of [u.ws, u.im]) ws.on('close', (code) => { if (!stopping) fail(`closed ${code}`); });
    users.push(u);
  }
  out(`soak: ${users.length * 2} sockets open`);
  let stopping = false;
  let turn = 0;
  const t0 = Date.now();
  // Paced by the clock, not by the timer's ticks (which come late on a loaded machine): each tick sends what is due.
  const ticker = setInterval(() => {
    const due = Math.floor(((Date.now() - t0) / 1000) * RATE) - turn;
    for (let n = 0; n < due; n++) {
      const u = users[turn % users.length] as User;
      const peer = users[u.peer] as User;
      if (turn % 2 === 0) {
        const m = benchMessage(u.id, peer.id.address, `soak-${turn}`);
        u.ws.send(JSON.stringify({ type: 'send', message: m }));
      } else {
        const seq = ++u.imSeq;
        const cid = dmCid(u.address, peer.address);
        u.im.send(packr.pack(new Map<unknown, unknown>([[0, 1], [1, 3], [2, seq], [4, new Map<unknown, unknown>([[1, cid], [2, 1], [7, new Map([[0, `im-${users.indexOf(u)}-${seq}`]])]])]])));
      }
      turn++;
    }
  }, 10);
  const cpu = new CpuMeter(server.pid);
  const started = Date.now();
  const rss: number[] = [];
  const heap: number[] = [];
  let lastAcked = 0;
  for (let minute = 1; minute <= MINUTES; minute++) {
    await new Promise((r) => setTimeout(r, 60_000));
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const r = sample(text, 'process_resident_memory_bytes') / 1048576;
    const h = sample(text, 'nodejs_heap_size_used_bytes') / 1048576;
    rss.push(r);
    heap.push(h);
    out(`minute ${minute}: RSS ${r.toFixed(1)} MiB, heap used ${h.toFixed(1)} MiB, acknowledged ${acked - lastAcked} (${((acked - lastAcked) / 60).toFixed(0)}/s), errors ${errors}, awaiting push ${awaiting.size}`);
    lastAcked = acked;
  }
  clearInterval(ticker);
  const seconds = (Date.now() - started) / 1000;
  // Grace for the last pushes in flight.
  for (let i = 0; i < 100 && awaiting.size > 0; i++) await new Promise((r) => setTimeout(r, 100));
  stopping = true;
  const tail = (xs: number[]): number[] => (xs.length > 2 ? xs.slice(1) : xs);
  out(`RSS slope ${slope(tail(rss)).toFixed(2)} MiB/min, heap slope ${slope(tail(heap)).toFixed(2)} MiB/min (minutes 2..${MINUTES})`);
  out(`acknowledged ${acked} in ${seconds.toFixed(0)} s (${(acked / seconds).toFixed(0)}/s), errors ${errors}${errorKinds.size > 0 ? ` ${JSON.stringify([...errorKinds])}` : ''}, lost ${awaiting.size}`);
  out(cpu.report(Math.max(1, acked), seconds));
  for (const u of users) { u.ws.close(); u.im.close(); }
  server.stop();
  rmSync(dataDir, { recursive: true, force: true });
  process.exit(awaiting.size === 0 && errors === 0 ? 0 : 1);
}

main().catch((e: unknown) => {
  process.stderr.write(`soak failed: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
