/** Worker thread of the benchmark: posts pre-serialised messages over keep-alive HTTP. */
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

interface Job { url: string; bodies: string[]; concurrency: number; ratePerSec: number }
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

async function run(): Promise<void> {
  const sentAt = new Float64Array(job.bodies.length);
  const statuses = new Map<number, number>();
  let next = 0;
  const start = now();
  const lane = async (): Promise<void> => {
    while (next < job.bodies.length) {
      const i = next++;
      if (job.ratePerSec > 0) {
        const due = start + (i * 1000) / job.ratePerSec;
        const wait = due - now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      sentAt[i] = now();
      const status = await post(job.bodies[i] as string);
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: job.concurrency }, lane));
  parentPort?.postMessage({ sentAt, statuses: [...statuses.entries()], elapsedMs: now() - start });
  agent.destroy();
}
void run();
