import { describe, expect, it } from 'vitest';
import { CONFIG_SPEC, ConfigError, loadConfig, type ConfigKey } from '../../../src/config/config.js';

const problems = (env: Record<string, string>): string[] => {
  try {
    loadConfig(env);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
};

/**
 * An empty value is never read as "unset": `RATE_LIMIT_EXEMPT=` once kept the loopback default. A list
 * set empty is an empty list; a variable whose empty value means nothing (a number, a switch, a choice, a
 * string with a non-empty default) is refused with its name; a string whose default is empty stays empty.
 */
describe('empty configuration values', () => {
  it('reads an empty RATE_LIMIT_EXEMPT, TRUSTED_PROXIES, CORS_ORIGINS, SIWE_DOMAINS as an empty list', () => {
    for (const v of ['', ' ', ' , ']) {
      const c = loadConfig({ RATE_LIMIT_EXEMPT: v, TRUSTED_PROXIES: v, CORS_ORIGINS: v, SIWE_DOMAINS: v });
      expect([c.rateLimitExempt, c.trustedProxies, c.corsOrigins, c.siweDomains]).toEqual([[], [], [], []]);
    }
    expect(loadConfig({}).rateLimitExempt).toEqual([]); // the safe default: nothing is exempt
    expect(loadConfig({ RATE_LIMIT_EXEMPT: '127.0.0.1,::1' }).rateLimitExempt).toEqual(['127.0.0.1', '::1']);
  });

  const keys = Object.keys(CONFIG_SPEC) as ConfigKey[];
  const refused = keys.filter((k) => CONFIG_SPEC[k].kind !== 'list' && CONFIG_SPEC[k].default !== '');
  const emptyOk = keys.filter((k) => CONFIG_SPEC[k].kind === 'string' && CONFIG_SPEC[k].default === '');

  it.each(refused)('refuses %s set to an empty value, naming it, instead of taking its default', (key) => {
    const p = problems({ [key]: '' });
    expect(p).toEqual([expect.stringContaining(`${key} is set but empty`)]);
    expect(problems({ [key]: '   ' })).toEqual(p);
  });

  it.each(emptyOk)('reads %s set to an empty value as the empty string it defaults to', (key) => {
    expect(problems({ [key]: '' })).toEqual([]);
  });

  it('covers every variable: each is a list, refused when empty, or a string that is empty by default', () => {
    const lists = keys.filter((k) => CONFIG_SPEC[k].kind === 'list');
    expect(lists.length + refused.length + emptyOk.length).toBe(keys.length);
    expect(refused).toEqual(expect.arrayContaining(['HOST', 'DATA_DIR', 'PORT', 'BUS_PREFIX', 'NATS_URL', 'REDIS_URL', 'S3_REGION', 'CHAIN_RPC_HOST', 'ARCHIVE_CRON']));
  });

  it('checks TRUSTED_PROXIES entries', () => {
    expect(loadConfig({ TRUSTED_PROXIES: '127.0.0.1, 10.0.0.0/8, fd00::/8, ::1' }).trustedProxies).toHaveLength(4);
    expect(problems({ TRUSTED_PROXIES: 'haproxy' })).toEqual([expect.stringContaining('TRUSTED_PROXIES')]);
    expect(problems({ TRUSTED_PROXIES: '10.0.0.0/33' })).toEqual([expect.stringContaining('prefix')]);
  });
});
