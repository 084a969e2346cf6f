import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.js';

const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
};

describe('bus and workers configuration', () => {
  it('defaults to the in-process bus and one process', () => {
    expect(loadConfig({})).toMatchObject({ bus: 'local', workers: 1, busPrefix: 'relation-im', busPingMs: 1000, busDownAfterMs: 3000 });
  });

  it('refuses many workers without a shared bus, store and chain, naming each', () => {
    const p = problems({ WORKERS: '3' });
    expect(p.some((x) => x.includes('BUS=nats'))).toBe(true);
    expect(p.some((x) => x.includes('STORE=postgres'))).toBe(true);
    expect(p.some((x) => x.includes('CHAIN=rpc'))).toBe(true);
    expect(problems({ WORKERS: '3', BUS: 'nats', STORE: 'postgres', DATABASE_URL: 'postgres://x@h/db', ARCHIVE_ENABLED: 'false', CHAIN: 'none' })).toEqual([]);
  });

  it('refuses an unknown bus, a prefix that is no subject, and a down-after not above the ping', () => {
    const p = problems({ BUS: 'kafka', BUS_PREFIX: 'a b', BUS_PING_MS: '2000', BUS_DOWN_AFTER_MS: '1000' });
    expect(p).toHaveLength(3);
    expect(p[0]).toMatch(/BUS must be one of local, nats, redis/);
  });
});
