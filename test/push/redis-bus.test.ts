import { afterAll } from 'vitest';
import { RedisBus } from '../../src/bus/redis.js';
import { PrivateServer } from '../support/bus-servers.js';
import { busContract } from './bus-contract.js';

const REDIS_URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379';
const redis = (url: string, channel: string): RedisBus => new RedisBus({ url, channel, connectTimeoutMs: 5000 });
const servers: PrivateServer[] = [];
afterAll(async () => { for (const s of servers) await s.down(); });

busContract('redis', (prefix) => redis(REDIS_URL, prefix), async () => {
  const server = await PrivateServer.start('redis');
  servers.push(server);
  return { make: (prefix) => redis(server.url, prefix), down: () => server.down(), up: () => server.up() };
});
