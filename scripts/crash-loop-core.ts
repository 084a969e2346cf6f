/**
 * The kill -9 loop shared by `test/integration/crash.test.ts` (a few kills per face) and
 * `scripts/crash-loop.ts` (as many as asked): the real server in its own process on one DATA_DIR, killed
 * with SIGKILL while sends are in flight on REST (`POST /message/send`), on the `/ws` `send` frame and on
 * `/im` (SEND), face after face, restarted each time. At the end every acknowledged message must be
 * stored exactly once at the seq its answer named, the conversation's seqs must have no gap, and a resume
 * on both faces must deliver every acknowledged message exactly once.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import { dmCid } from '../src/roles/chat/ids.js';
import { loginToken } from './bench-server.js';
import { benchIdentity, benchMessage } from './bench-sign.js';

export type CrashFace = 'rest' | 'ws' | 'im';

export interface CrashLoopOptions {
  /** Kills in all; the faces take turns. */
  kills: number;
  faces?: readonly CrashFace[];
  /** Messages put in flight per round. */
  perRound?: number;
  /** The kill comes once this many of the round's sends are acknowledged. */
  killAfter?: number;
  /** Sends kept in flight per round (default 32). */
  window?: number;
  log?: (s: string) => void;
}

export interface CrashLoopReport {
  kills: number;
  acked: Record<CrashFace, number>;
  /** Events stored in the conversation after the last restart. */
  stored: number;
  /** Acknowledged but not stored, or stored at another seq than acknowledged. */
  lost: string[];
  /** Acknowledged messages stored more than once. */
  duplicated: string[];
  /** The seqs are exactly 1..stored. */
  gapFree: boolean;
  /** Acknowledged messages a resume did not deliver exactly once (/ws for Relation ONE, /im for all). */
  undelivered: string[];
}

const packr = new Packr({ useRecords: false, variableMapSize: true });
const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });
type M = Map<unknown, unknown>;

function repoRoot(): string {
  let dir = import.meta.dirname;
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}

interface Proc { child: ChildProcess; url: string; exited: Promise<void> }

/** `src/main.ts` through tsx in its own process (no build needed), CHAIN=none, synchronous=FULL. */
function startProcess(dataDir: string): Promise<Proc> {
  const root = repoRoot();
  const tsx = pathToFileURL(path.join(root, 'node_modules/tsx/dist/loader.mjs')).href;
  const child = spawn(process.execPath, ['--import', tsx, path.join(root, 'src/main.ts')], {
    cwd: dataDir,
    env: {
      ...process.env, PORT: '0', HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'info', SQLITE_SYNCHRONOUS: 'FULL', VERIFY_WORKERS: '1',
      CHAIN: 'none', ARCHIVE_ENABLED: 'false', REQUIRE_NAME: 'false', WS_MAX_FRAMES_PER_SEC: '1000000', RESUME_MAX_PER_CHAT: '100000',
      MAX_PENDING_SENDS: '100000', RATE_LIMIT_EXEMPT: '127.0.0.1,::1',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const m = /"port":(\d+)/.exec(line);
      if (m) resolve({ child, url: `http://127.0.0.1:${m[1]}`, exited });
    });
    child.once('exit', (code) => reject(new Error(`server exited early with ${code}`)));
  });
}

/** Fails loudly instead of hanging when a step does not finish (a loaded machine gets a generous bound). */
function within<T>(p: Promise<T>, what: string, ms = 90_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`crash loop: ${what} did not finish within ${ms} ms`)), ms); });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

/**
 * A WebSocket whose frames are buffered from the start: a frame that arrives in the same TCP read as the
 * upgrade answer (the /ws `ready`) is emitted before any listener added after `open` could see it.
 */
function openWs(url: string): Promise<WebSocket & { frames: (on: (data: Buffer) => void) => void }> {
  const ws = new WebSocket(url) as WebSocket & { frames: (on: (data: Buffer) => void) => void };
  const early: Buffer[] = [];
  let handler: ((data: Buffer) => void) | null = null;
  ws.on('message', (data: Buffer) => { if (handler) handler(data); else early.push(data); });
  ws.frames = (on) => {
    handler = on;
    for (const d of early.splice(0)) on(d);
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const imFrame = (cmd: number, seq: number, body: Record<number, unknown>): Buffer =>
  packr.pack(new Map<unknown, unknown>([[0, 1], [1, cmd], [2, seq], [4, new Map(Object.entries(body).map(([k, v]) => [Number(k), v instanceof Map || typeof v !== 'object' || Array.isArray(v) ? v : new Map(Object.entries(v as object).map(([a, b]) => [Number(a), b]))]))]]));

export async function runCrashLoop(opts: CrashLoopOptions): Promise<CrashLoopReport> {
  const faces = opts.faces ?? ['rest', 'ws', 'im'];
  const perRound = opts.perRound ?? 300;
  const killAfter = opts.killAfter ?? Math.floor(perRound / 3);
  const window = opts.window ?? 32;
  const log = opts.log ?? (() => undefined);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rim-crash-loop-'));
  const alice = benchIdentity();
  const bob = benchIdentity();
  const cid = dmCid(alice.address.toLowerCase(), bob.address.toLowerCase());
  /** Relation ONE id -> acknowledged seq; /im text -> acknowledged mid. */
  const ackedR1 = new Map<string, number>();
  const ackedIm = new Map<string, number>();
  const acked: Record<CrashFace, number> = { rest: 0, ws: 0, im: 0 };
  let tokens: { alice: string; bob: string } | null = null;
  try {
    for (let k = 0; k < opts.kills; k++) {
      const face = faces[k % faces.length] as CrashFace;
      const proc = await within(startProcess(dataDir), `start ${k + 1}`);
      try {
        tokens ??= { alice: await loginToken(proc.url, alice.wallet), bob: await loginToken(proc.url, bob.wallet) };
      } catch (e) {
        proc.child.kill('SIGKILL');
        throw e;
      }
      let roundAcks = 0;
      let answered = 0;
      let sent = 0;
      let dead = false;
      const refused: string[] = [];
      let killed = false;
      const ack = (): void => {
        acked[face]++;
        if (++roundAcks >= killAfter && !killed) {
          killed = true;
          proc.child.kill('SIGKILL');
          void proc.exited.then(() => { dead = true; });
        }
      };
      const t = tokens;
      const round = async (): Promise<void> => {
      if (face === 'rest') {
        // `window` requests in flight at any time, so the kill lands mid-stream.
        let next = 0;
        const lane = async (): Promise<void> => {
          while (next < perRound && !dead) {
            const m = benchMessage(alice, bob.address, `rest-${k}-${next++}`);
            try {
              const res = await fetch(`${proc.url}/message/send`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(m) });
              if (res.status === 200) {
                ackedR1.set(m.id, ((await res.json()) as { seq: number }).seq);
                ack();
              } else refused.push(String(res.status));
            } catch {
              return; // cut by the kill: not acknowledged
            }
          }
        };
        await Promise.all(Array.from({ length: window }, lane));
      } else if (face === 'ws') {
        const ws = await openWs(`${proc.url.replace('http', 'ws')}/ws?token=${t.alice}`);
        const messages = Array.from({ length: perRound }, (_, i) => benchMessage(alice, bob.address, `ws-${k}-${i}`));
        await new Promise<void>((resolve) => {
          ws.frames((data) => {
            const f = JSON.parse(data.toString()) as { type: string; ref?: string; result?: { id: string; seq: number }; error?: { code: string } };
            const sendNext = (): void => {
              const m = messages[sent];
              if (m) ws.send(JSON.stringify({ type: 'send', ref: String(sent++), message: m }));
            };
            if (f.type === 'ready') for (let i = 0; i < window; i++) sendNext();
            if (f.type === 'sent' || f.type === 'error') sendNext();
            if (f.type === 'sent' && f.result) {
              ackedR1.set(f.result.id, f.result.seq);
              ack();
            }
            if (f.type === 'error') refused.push(f.error?.code ?? '?');
            if (f.type === 'sent' || f.type === 'error') if (++answered === perRound) ws.close();
          });
          ws.on('close', () => resolve());
          ws.on('error', () => resolve());
        });
      } else {
        const ws = await openWs(`${proc.url.replace('http', 'ws')}/im`);
        await new Promise<void>((resolve) => {
          const texts = new Map<number, string>();
          ws.frames((data) => {
            const env = unpackr.unpack(data) as M;
            const cmd = env.get(1);
            const seq = env.get(2) as number;
            const sendNext = (): void => {
              if (sent >= perRound) return;
              const i = sent++;
              texts.set(i + 2, `im-${k}-${i}`);
              ws.send(imFrame(3, i + 2, { 1: cid, 2: 1, 7: { 0: `im-${k}-${i}` } }));
            };
            if (cmd === 1) {
              for (let i = 0; i < window; i++) sendNext();
            } else if (cmd === 3 || cmd === 0) sendNext();
            if (cmd === 1) {
              // authenticated
            } else if (cmd === 3) {
              ackedIm.set(texts.get(seq) as string, (env.get(4) as M).get(0) as number);
              ack();
            } else if (cmd === 0) refused.push(String((env.get(4) as M).get(1)));
            if ((cmd === 3 || cmd === 0) && ++answered === perRound) ws.close();
          });
          ws.on('close', () => resolve());
          ws.on('error', () => resolve());
          ws.send(imFrame(1, 1, { 0: t.alice }));
        });
      }
      };
      try {
        await within(round(), `round ${k + 1} (${face})`);
      } finally {
        proc.child.kill('SIGKILL');
      }
      await within(proc.exited, `exit after kill ${k + 1}`);
      log(`kill ${k + 1}/${opts.kills} during ${face} sends: ${roundAcks} acknowledged this round${refused.length > 0 ? `, refused: ${[...new Set(refused)].join(' ')}` : ''}`);
    }
    return await verify(dataDir, tokens, cid, alice.address.toLowerCase(), ackedR1, ackedIm, acked, opts.kills);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function verify(dataDir: string, tokens: { alice: string; bob: string } | null, cid: string, aliceAddress: string, ackedR1: Map<string, number>, ackedIm: Map<string, number>,
  acked: Record<CrashFace, number>, kills: number): Promise<CrashLoopReport> {
  if (!tokens) throw new Error('no round ran');
  const proc = await within(startProcess(dataDir), 'the last start');
  try {
    // /im resume from mid 0 replays every event of the conversation, both faces' messages.
    const im = await openWs(`${proc.url.replace('http', 'ws')}/im`);
    const events: { mid: number; key: string }[] = [];
    await within(new Promise<void>((resolve, reject) => {
      im.frames((data) => {
        const env = unpackr.unpack(data) as M;
        const cmd = env.get(1);
        const body = env.get(4) as M;
        if (cmd === 0) reject(new Error(`im error ${String(body.get(1))}`));
        if (cmd === 1) im.send(imFrame(6, 2, { 0: [[cid, 0]] }));
        if (cmd === 4) {
          const text = (body.get(7) as M).get(0) as string;
          const key = body.get(2) === 64 ? (JSON.parse(text) as { id: string }).id : text;
          events.push({ mid: body.get(3) as number, key });
        }
        if (cmd === 6) resolve();
      });
      im.send(imFrame(1, 1, { 0: tokens.bob }));
    }), '/im resume');
    im.close();
    // /ws resume replays the Relation ONE messages.
    const ws = await openWs(`${proc.url.replace('http', 'ws')}/ws?token=${tokens.bob}`);
    const wsIds: string[] = [];
    await within(new Promise<void>((resolve) => {
      ws.frames((data) => {
        const f = JSON.parse(data.toString()) as { type: string; message?: { id: string } };
        if (f.type === 'ready') ws.send(JSON.stringify({ type: 'resume', cursors: { [aliceAddress]: 0 } }));
        if (f.type === 'message' && f.message) wsIds.push(f.message.id);
        if (f.type === 'resumed') resolve();
      });
    }), '/ws resume');
    ws.close();
    const byKey = new Map<string, number[]>();
    for (const e of events) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e.mid]);
    const lost: string[] = [];
    const duplicated: string[] = [];
    const undelivered: string[] = [];
    const wsCount = new Map<string, number>();
    for (const id of wsIds) wsCount.set(id, (wsCount.get(id) ?? 0) + 1);
    for (const [key, mid] of [...ackedR1, ...ackedIm]) {
      const mids = byKey.get(key) ?? [];
      if (mids.length === 0 || mids[0] !== mid) lost.push(key);
      if (mids.length > 1) duplicated.push(key);
      if (mids.length !== 1) undelivered.push(`${key} (im resume)`);
    }
    for (const id of ackedR1.keys()) if (wsCount.get(id) !== 1) undelivered.push(`${id} (ws resume)`);
    const mids = events.map((e) => e.mid);
    return {
      kills, acked, stored: events.length, lost, duplicated, undelivered,
      gapFree: mids.every((m, i) => m === i + 1),
    };
  } finally {
    proc.child.kill('SIGTERM');
    const hard = setTimeout(() => proc.child.kill('SIGKILL'), 15_000);
    await proc.exited;
    clearTimeout(hard);
  }
}
