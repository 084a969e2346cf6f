import { afterAll } from 'vitest';
import { NatsBus } from '../../src/bus/nats.js';
import { PrivateServer } from '../support/bus-servers.js';
import { busContract } from './bus-contract.js';

const NATS_URL = process.env['NATS_URL'] ?? 'nats://127.0.0.1:4222';
const nats = (url: string, subject: string): NatsBus => new NatsBus({ url, subject, name: 'rim-test', connectTimeoutMs: 5000 });
const servers: PrivateServer[] = [];
afterAll(async () => { for (const s of servers) await s.down(); });

// The shared server for the suite (each test on its own random subject); a private one that the outage
// test kills and restarts.
busContract('nats', (prefix) => nats(NATS_URL, prefix), async () => {
  const server = await PrivateServer.start('nats');
  servers.push(server);
  return { make: (prefix) => nats(server.url, prefix), down: () => server.down(), up: () => server.up() };
});
