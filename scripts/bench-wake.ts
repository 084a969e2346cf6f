/**
 * The machine's own price of a wake-up: what one small socket write or one `postMessage` costs when the
 * other side is asleep, against when it is already running. At a modest load every message arrives
 * alone, so each of its hops (frame in, to a verify thread and back, to the writer and back, ack and
 * push out) wakes a sleeping thread; at saturation the same hops find their threads running and share
 * their syscalls. The gap between the two columns is the part of "CPU per message at 1,000/s" that no
 * server code on this machine can remove short of taking hops away.
 *
 *   npm run build && node dist/scripts/bench-wake.js [--count 5000] [--bytes 200] [--gap-us 1000]
 *
 * 1. TCP over loopback to another process: `--count` writes of `--bytes`, paced one per `--gap-us`
 *    (the peer sleeps in epoll between them) and then back to back (the peer is busy reading). Printed:
 *    the writer's time inside `write()` per write (the send syscall on loopback also runs the peer's
 *    TCP receive and its wake-up), and the peer's own CPU per write (woken, read, back to sleep).
 * 2. `postMessage` to a worker thread that answers each message, paced and back to back: the sender's
 *    and the worker's CPU per message.
 */
import { fork } from 'node:child_process';
import { createServer, createConnection, type Socket } from 'node:net';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { numericArgs, threadCpuSeconds } from './bench-server.js';

const num = numericArgs();
const COUNT = num('count', 5000);
const BYTES = num('bytes', 200);
const GAP_US = num('gap-us', 1000);
const self = fileURLToPath(import.meta.url);

/** Resolves after `us` microseconds, spinning the last stretch so the pacing is even (a timer alone is coarse). */
function sleepUs(us: number): Promise<void> {
  const end = process.hrtime.bigint() + BigInt(Math.round(us * 1000));
  return new Promise((resolve) => {
    const check = (): void => {
      const left = Number(end - process.hrtime.bigint()) / 1000;
      if (left <= 0) resolve();
      else if (left > 300) setTimeout(check, Math.max(0, Math.floor((left - 250) / 1000)));
      else setImmediate(check);
    };
    check();
  });
}

const cpuUs = (): number => { const u = process.cpuUsage(); return u.user + u.system; };

async function peerProcess(): Promise<void> {
  // The peer: connect, read everything, report its own CPU when told the phase ended.
  const port = Number(process.argv[3]);
  const sock = createConnection({ port, host: '127.0.0.1' });
  sock.setNoDelay(true);
  let got = 0;
  sock.on('data', (d) => { got += d.length; });
  process.on('message', (m: { mark?: boolean }) => {
    if (m.mark) process.send?.({ cpu: cpuUs(), got });
  });
}

async function tcp(): Promise<void> {
  let accepted: (s: Socket) => void = () => {};
  const conn = new Promise<Socket>((r) => { accepted = r; });
  const server = createServer((s) => accepted(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const peer = fork(self, ['peer', String(port)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const sock = await conn;
  sock.setNoDelay(true);
  const ask = (): Promise<{ cpu: number; got: number }> => new Promise((r) => { peer.once('message', (m) => r(m as { cpu: number; got: number })); peer.send({ mark: true }); });
  const buf = Buffer.alloc(BYTES, 0x61);
  const phase = async (paced: boolean): Promise<{ writeUs: number; peerUs: number }> => {
    await sleepUs(200_000);
    const before = await ask();
    let inWrite = 0n;
    for (let i = 0; i < COUNT; i++) {
      const t0 = process.hrtime.bigint();
      sock.write(buf);
      inWrite += process.hrtime.bigint() - t0;
      if (paced) await sleepUs(GAP_US);
      else if (sock.writableLength > 1 << 20) await new Promise((r) => sock.once('drain', r));
    }
    // Wait until the peer has read everything, then read its CPU.
    for (;;) {
      const now = await ask();
      if (now.got - before.got >= COUNT * BYTES) return { writeUs: Number(inWrite) / 1000 / COUNT, peerUs: (now.cpu - before.cpu) / COUNT };
      await sleepUs(10_000);
    }
  };
  const paced = await phase(true);
  const flood = await phase(false);
  console.log(`TCP loopback to another process, ${COUNT} writes of ${BYTES} bytes:`);
  console.log(`  paced, one per ${GAP_US} us (the peer asleep): ${paced.writeUs.toFixed(1)} us in write() per write; the peer ${paced.peerUs.toFixed(1)} us of CPU per write`);
  console.log(`  back to back (the peer running):        ${flood.writeUs.toFixed(1)} us in write() per write; the peer ${flood.peerUs.toFixed(1)} us of CPU per write`);
  sock.destroy();
  peer.kill();
  server.close();
}

async function thread(): Promise<void> {
  const w = new Worker(self, { argv: ['echo'] });
  await new Promise((r) => w.once('online', r));
  const tid = await new Promise<number>((r) => { w.once('message', (m: { tid: number }) => r(m.tid)); w.postMessage({ tid: true }); });
  const phase = async (paced: boolean): Promise<{ mainUs: number; workerUs: number }> => {
    await sleepUs(200_000);
    let answered = 0;
    const onMsg = (): void => { answered++; };
    w.on('message', onMsg);
    const t0 = threadCpuSeconds(process.pid);
    let gapCpu = 0;
    for (let i = 0; i < COUNT; i++) {
      w.postMessage(i);
      if (paced) {
        // Wait (asleep) for the answer before the next one, then pace: the worker sleeps between messages.
        if (answered <= i) await new Promise((r) => w.once('message', r));
        const g0 = cpuUs();
        await sleepUs(GAP_US);
        gapCpu += cpuUs() - g0;
      }
    }
    while (answered < COUNT) await new Promise((r) => w.once('message', r));
    w.off('message', onMsg);
    const t1 = threadCpuSeconds(process.pid);
    const d = (id: number): number => ((t1.get(id) ?? 0) - (t0.get(id) ?? 0)) * 1e6;
    return { mainUs: (d(process.pid) - gapCpu) / COUNT, workerUs: d(tid) / COUNT };
  };
  const paced = await phase(true);
  const flood = await phase(false);
  console.log(`postMessage to a worker thread that answers each one, ${COUNT} messages:`);
  console.log(`  one at a time, ${GAP_US} us apart (the worker asleep): sender ${paced.mainUs.toFixed(1)} us, worker ${paced.workerUs.toFixed(1)} us of CPU per round trip`);
  console.log(`  back to back (the worker running):             sender ${flood.mainUs.toFixed(1)} us, worker ${flood.workerUs.toFixed(1)} us of CPU per round trip`);
  await w.terminate();
}

if (!isMainThread) {
  const { readFileSync } = await import('node:fs');
  // The kernel's id of this thread, for its CPU time in /proc.
  const tid = Number(readFileSync('/proc/thread-self/stat', 'utf8').split(' ')[0]);
  parentPort?.on('message', (m: unknown) => {
    if (typeof m === 'object' && m !== null) parentPort?.postMessage({ tid });
    else parentPort?.postMessage(m);
  });
} else if (process.argv[2] === 'peer') {
  await peerProcess();
} else {
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model.trim()}), node ${process.version}`);
  await tcp();
  await thread();
}
