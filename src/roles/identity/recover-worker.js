// @ts-check
/** Worker thread: verifies batches of messages with recover-core (see worker-pool.ts). */
import { parentPort } from 'node:worker_threads';
import { verifyJob } from './recover-core.js';

if (!parentPort) throw new Error('recover-worker must run as a worker thread');
const port = parentPort;
port.on('message', (/** @type {{ batch: number, jobs: import('./recover-core.js').VerifyJob[] }} */ msg) => {
  const results = msg.jobs.map((job) => {
    try {
      return verifyJob(job);
    } catch {
      return { idOk: false, signer: null, delegator: null };
    }
  });
  port.postMessage({ batch: msg.batch, results });
});
