/**
 * The live-push kill loop shared by `test/multiprocess/push-kill.test.ts` (three rounds) and
 * `scripts/push-kill-loop.ts` (as many as asked): three real server processes on one PostgreSQL database
 * and one NATS; alice sends to bob on both faces (REST `POST /message/send` and `/im` SEND) through every
 * process at once, and in each round one process is killed with SIGKILL while sends are in flight, with a
 * child process spinning on the CPU all along. Bob is connected on both faces to every process; every
 * message acknowledged (by any process, the killed one included) must reach each of bob's connections on
 * the processes that live through the round as a live push, exactly once: bob never resumes, so anything
 * that arrives was pushed. The killed process is restarted after the round and bob reconnects there.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Unpackr } from 'msgpackr';
import pg from 'pg';
import { dmCid } from '../../src/roles/chat/ids.js';
import { ImClient } from './im-client.js';
import { signedMessage, type Identity } from './messages.js';
import { startServerProcess, type ServerProcess } from './processes.js';
import { http, login, WsClient } from './server.js';

export interface PushKillOptions {
  /** Server environment (STORE, DATABASE_URL, BUS, NATS_URL, BUS_PREFIX, chain…). */
  env: Record<string, string>;
  alice: Identity;
  bob: Identity;
  rounds: number;
  /** Sends per process per round (half REST, half /im). */
  perProcess?: number;
  /** The kill comes once this many of the round's sends are acknowledged. */
  killAfter?: number;
  /** Keep one core busy with a spinning child process (default true). */
  busy?: boolean;
  /** How long an acknowledged message may take to arrive before the round counts it lost. */
  waitMs?: number;
  log?: (s: string) => void;
}

export interface PushKillReport {
  rounds: number;
  kills: number;
  acked: { rest: number; im: number; byKilled: number };
  /** (message, connection) pairs that had to arrive, and how many did. */
  expected: number;
  delivered: number;
  /** Pairs that never arrived within waitMs: `round/face/seq -> connection`. */
  missing: string[];
  /** Pushes of one seq that one connection received more than once. */
  duplicates: number;
  /** From the answer to the push on the recipient's socket. */
  latencyMs: { p50: number; p99: number; max: number };
  /**
   * What the database holds at the end (read from DATABASE_URL): `ackedNotStored` acknowledged messages
   * whose acknowledged seq does not hold them (lost) must be none; `duplicateIds` Relation ONE ids and
   * `duplicateMessages` payloads of either face stored more than once must be none.
   */
  store: { events: number; gapFree: boolean; ackedNotStored: number; duplicateIds: number; duplicateMessages: number };
}

interface Conn {
  name: string;
  proc: number;
  close(): void;
  /** seq -> when it first arrived, and how often. */
  seen: Map<number, { at: number; n: number }>;
}

const unpackr = new Unpackr({ mapsAsObjects: false, useRecords: false });

export async function runPushKill(o: PushKillOptions): Promise<PushKillReport> {
  const log = o.log ?? (() => {});
  const perProcess = o.perProcess ?? 12;
  const killAfter = o.killAfter ?? 8;
  const waitMs = o.waitMs ?? 30_000;
  const lower = (i: Identity): string => i.address.toLowerCase();
  const cid = dmCid(lower(o.alice), lower(o.bob));
  const chatIdForBob = lower(o.alice);
  let spinner: ChildProcess | null = null;
  if (o.busy !== false) spinner = spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' });
  const procs: (ServerProcess | null)[] = [null, null, null];
  const allProcs: ServerProcess[] = [];
  const conns: Conn[] = [];
  const senders: (ImClient | null)[] = [null, null, null];
  let generation = 0;
  const start = async (i: number): Promise<ServerProcess> => {
    const p = await startServerProcess(`P${i}.${generation++}`, mkdtempSync(path.join(tmpdir(), `rim-pk-${i}-`)), o.env);
    allProcs.push(p);
    procs[i] = p;
    return p;
  };
  const ready = async (p: ServerProcess): Promise<boolean> => {
    try {
      return (await http(p.url, 'GET', '/ready')).status === 200;
    } catch {
      return false;
    }
  };
  const until = async (cond: () => boolean | Promise<boolean>, what: string, ms: number): Promise<boolean> => {
    const end = Date.now() + ms;
    while (!(await cond())) {
      if (Date.now() > end) {
        log(`timed out waiting for ${what}`);
        return false;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    return true;
  };
  const connect = async (i: number): Promise<void> => {
    const p = procs[i] as ServerProcess;
    const bobToken = await login(p.url, o.bob);
    const aliceToken = await login(p.url, o.alice);
    const im = await ImClient.open(p.imUrl, bobToken);
    const imConn: Conn = { name: `${p.name}/im`, proc: i, close: () => im.close(), seen: new Map() };
    im.ws.on('message', (data: Buffer) => {
      const env = unpackr.unpack(data) as Map<unknown, unknown>;
      const body = env.get(4) as Map<unknown, unknown> | undefined;
      if (env.get(1) === 4 && body?.get(1) === cid) note(imConn, body.get(3) as number);
    });
    const ws = await WsClient.open(p.wsUrl, bobToken);
    const wsConn: Conn = { name: `${p.name}/ws`, proc: i, close: () => ws.close(), seen: new Map() };
    ws.ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as Record<string, unknown>;
      if (f['type'] === 'message' && f['chatId'] === chatIdForBob) note(wsConn, (f['message'] as { seq: number }).seq);
    });
    conns.push(imConn, wsConn);
    senders[i] = await ImClient.open(p.imUrl, aliceToken);
  };
  const note = (c: Conn, seq: number): void => {
    const s = c.seen.get(seq);
    if (s) s.n++;
    else c.seen.set(seq, { at: Date.now(), n: 1 });
  };

  const report: PushKillReport = {
    rounds: 0, kills: 0, acked: { rest: 0, im: 0, byKilled: 0 }, expected: 0, delivered: 0, missing: [], duplicates: 0,
    latencyMs: { p50: 0, p99: 0, max: 0 }, store: { events: 0, gapFree: false, ackedNotStored: 0, duplicateIds: 0, duplicateMessages: 0 },
  };
  /** seq -> the payload its acknowledgement was for. */
  const everyAck = new Map<number, string>();
  const latencies: number[] = [];
  try {
    await start(0); // creates the schema; the others find it migrated
    await Promise.all([start(1), start(2)]);
    await until(async () => (await Promise.all(procs.map((p) => ready(p as ServerProcess)))).every(Boolean), 'all three ready', 60_000);
    for (let i = 0; i < 3; i++) await connect(i);

    for (let round = 0; round < o.rounds; round++) {
      const victim = round % 3;
      const acked: { seq: number; at: number; face: string; proc: number; key: string }[] = [];
      let killed = false;
      const loop = async (i: number): Promise<void> => {
        const p = procs[i] as ServerProcess;
        const im = senders[i] as ImClient;
        for (let k = 0; k < perProcess; k++) {
          if (killed && i === victim) return;
          const face = k % 2 === 0 ? 'rest' : 'im';
          // Bracketed so that one payload is never a substring of another when the store is read back.
          const key = `<${face === 'rest' ? 'r' : 'm'}${round}.${i}.${k}>`;
          try {
            let seq: number;
            if (face === 'rest') {
              const r = await http(p.url, 'POST', '/message/send', { body: signedMessage(o.alice, { receiver: o.bob.address, payload: key }) });
              if (r.status !== 200) throw new Error(`send: ${r.status} ${r.text}`);
              seq = (r.json as { seq: number }).seq;
            } else {
              const r = await im.request(3, { 1: cid, 2: 1, 7: { 0: key } });
              if (r.cmd !== 3) throw new Error(`SEND: ${String(r.body.get(1))}`);
              seq = r.body.get(0) as number;
            }
            acked.push({ seq, at: Date.now(), face, proc: i, key });
          } catch (err) {
            if (i === victim) return; // in flight when its process died: not acknowledged
            throw err;
          }
          if (!killed && acked.length >= killAfter) {
            killed = true;
            log(`round ${round}: kill -9 ${(procs[victim] as ServerProcess).name} after ${acked.length} acks`);
            void (procs[victim] as ServerProcess).kill('SIGKILL');
          }
        }
      };
      await Promise.all([0, 1, 2].map(loop));
      const victimProc = procs[victim] as ServerProcess;
      if (!killed) await victimProc.kill('SIGKILL');
      await victimProc.exited;
      report.kills++;
      // Bob's connections that lived through the round: every acknowledged message must reach them.
      const live = conns.filter((c) => c.proc !== victim);
      await until(() => live.every((c) => acked.every((a) => c.seen.has(a.seq))), `round ${round}: every ack on every live connection`, waitMs);
      for (const a of acked) {
        everyAck.set(a.seq, a.key);
        report.acked[a.face as 'rest' | 'im']++;
        if (a.proc === victim) report.acked.byKilled++;
        for (const c of live) {
          report.expected++;
          const s = c.seen.get(a.seq);
          if (!s) {
            report.missing.push(`${round}/${a.face}/${a.seq} -> ${c.name}`);
            continue;
          }
          report.delivered++;
          latencies.push(Math.max(0, s.at - a.at));
        }
      }
      for (const c of live) for (const s of c.seen.values()) if (s.n > 1) report.duplicates++;
      log(`round ${round}: ${acked.length} acked (${acked.filter((a) => a.proc === victim).length} by the killed process), missing so far ${report.missing.length}`);
      report.rounds++;
      if (round === o.rounds - 1) break;
      // Three processes again: the victim restarted, bob and alice connected to it afresh.
      for (const c of conns.filter((x) => x.proc === victim)) conns.splice(conns.indexOf(c), 1);
      for (const c of live) c.seen.clear();
      await start(victim);
      await until(() => ready(procs[victim] as ServerProcess), 'the restarted process ready', 60_000);
      await connect(victim);
    }
  } finally {
    for (const c of conns) c.close();
    for (const s of senders) s?.close();
    for (const p of allProcs) await p.kill('SIGTERM');
    spinner?.kill('SIGKILL');
  }
  if (o.env['DATABASE_URL']) {
    const c = new pg.Client({ connectionString: o.env['DATABASE_URL'] });
    await c.connect();
    try {
      const rows = (await c.query<{ seq: string; id: string | null; body: string }>('SELECT seq, id, body FROM events WHERE cid = $1 ORDER BY seq', [cid])).rows;
      const seqs = rows.map((r) => Number(r.seq));
      const ids = rows.flatMap((r) => (r.id ? [r.id] : []));
      const bodyAt = new Map(rows.map((r) => [Number(r.seq), r.body]));
      // Every payload any stored event carries (both faces), to find one stored twice at different seqs.
      const keys = rows.flatMap((r) => r.body.match(/<[rm]\d+\.\d+\.\d+>/g) ?? []);
      report.store = {
        events: rows.length, gapFree: seqs.every((s, i) => s === i + 1),
        ackedNotStored: [...everyAck].filter(([s, key]) => !(bodyAt.get(s) ?? '').includes(key)).length,
        duplicateIds: ids.length - new Set(ids).size, duplicateMessages: keys.length - new Set(keys).size,
      };
    } finally {
      await c.end();
    }
  }
  latencies.sort((x, y) => x - y);
  const at = (q: number): number => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  report.latencyMs = { p50: at(0.5), p99: at(0.99), max: latencies[latencies.length - 1] ?? 0 };
  return report;
}
