/**
 * Worker thread of the benchmark: sends pre-serialised Relation ONE messages, either as REST
 * `POST /message/send` over keep-alive HTTP (`transport: 'rest'`) or as `/ws` `send` frames over a few
 * authenticated WebSockets (`transport: 'ws'`), `concurrency` in flight in all, and records when each
 * was sent. A send counts as answered on its HTTP answer or its `sent` / `error` frame.
 */
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';

interface Job { url: string; bodies: string[]; concurrency: number; ratePerSec: number; transport?: 'rest' | 'ws'; tokens?: string[] }
const job = workerData as Job;
const target = new URL(job.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: job.concurrency });
const now = (): number => performance.timeOrigin + performance.now();

function post(body: string): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: target.hostname, port: target.port, path: '/message/send', method: 'POST', agent,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/** One authenticated /ws connection whose `send` frames are answered by ref. Statuses: 200 sent, 4xx/5xx error (HTTP-like). */
function wsLane(token: string): Promise<{ send(i: number, body: string): Promise<number>; close(): void }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${job.url.replace('http', 'ws')}/ws?token=${token}`, { perMessageDeflate: false });
    const waiting = new Map<number, (status: number) => void>();
    const socket = (): import('node:net').Socket => (ws as unknown as { _socket: import('node:net').Socket })._socket;
    let corked = false;
    const lane = {
      send(i: number, body: string): Promise<number> {
        return new Promise<number>((done) => {
          waiting.set(i, done);
          // Cork per turn, as the server does: one write for every frame sent in this turn.
          if (!corked) {
            corked = true;
            socket().cork();
            setImmediate(() => { corked = false; socket().uncork(); });
          }
          ws.send(`{"type":"send","ref":"${i}","message":${body}}`);
        });
      },
      close(): void { ws.terminate(); },
    };
    ws.on('message', (data: Buffer) => {
      // {"type":"sent","ref":"123",...} or {"type":"error","ref":"123","error":{...,"status":429,...}}
      const s = data.toString('latin1', 0, Math.min(data.length, 200));
      if (s.startsWith('{"type":"ready"')) { resolve(lane); return; }
      const at = s.indexOf('"ref":"');
      if (at < 0) return;
      const end = s.indexOf('"', at + 7);
      const ref = Number(s.slice(at + 7, end));
      const done = waiting.get(ref);
      if (!done) return;
      waiting.delete(ref);
      if (s.startsWith('{"type":"sent"')) done(200);
      else {
        const m = /"status":(\d+)/.exec(data.toString());
        done(m ? Number(m[1]) : 500);
      }
    });
    ws.on('error', reject);
    ws.on('close', () => { for (const done of waiting.values()) done(0); waiting.clear(); });
  });
}

async function run(): Promise<void> {
  const sentAt = new Float64Array(job.bodies.length);
  const statuses = new Map<number, number>();
  let next = 0;
  const transport = job.transport ?? 'rest';
  const wsLanes = transport === 'ws' ? await Promise.all((job.tokens ?? []).map(wsLane)) : [];
  if (transport === 'ws' && wsLanes.length === 0) throw new Error('the ws transport needs tokens');
  const start = now();
  const lane = async (k: number): Promise<void> => {
    const socket = wsLanes[k % Math.max(1, wsLanes.length)];
    while (next < job.bodies.length) {
      const i = next++;
      if (job.ratePerSec > 0) {
        const due = start + (i * 1000) / job.ratePerSec;
        const wait = due - now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      sentAt[i] = now();
      const body = job.bodies[i] as string;
      const status = socket ? await socket.send(i, body) : await post(body);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, (_, k) => lane(k)));
  parentPort?.postMessage({ sentAt, statuses: [...statuses.entries()], elapsedMs: now() - start });
  agent.destroy();
  for (const l of wsLanes) l.close();
}
void run();
