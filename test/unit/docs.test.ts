import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { configDoc, envExample, errorsDoc } from '../../scripts/gen-docs.js';
import { CONFIG_SPEC, ConfigError, loadConfig } from '../../src/config/config.js';
import { ERROR_CATALOGUE } from '../../src/errors/catalogue.js';

const read = (p: string): string => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

describe('published references', () => {
  it('docs/errors.md is the catalogue', () => {
    expect(read('docs/errors.md')).toBe(errorsDoc());
    for (const code of Object.keys(ERROR_CATALOGUE)) expect(read('docs/errors.md')).toContain(`\`${code}\``);
  });

  it('docs/configuration.md and .env.example list every variable', () => {
    expect(read('docs/configuration.md')).toBe(configDoc());
    expect(read('.env.example')).toBe(envExample());
    for (const key of Object.keys(CONFIG_SPEC)) expect(read('.env.example')).toContain(`#${key}=`);
  });

  it('error numbers are unique', () => {
    const nums = Object.values(ERROR_CATALOGUE).map((e) => e.num);
    expect(new Set(nums).size).toBe(nums.length);
  });
});

describe('configuration', () => {
  it('starts from documented defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.maxDelegationMs).toBe(31 * 86_400_000); // SPEC section 2: a calendar month
    expect(c.clockSkewMs).toBe(300_000);
  });

  it('lists every invalid value at once instead of falling back', () => {
    try {
      loadConfig({ PORT: 'eighty', LOG_LEVEL: 'loud', REQUIRE_NAME: 'maybe', MAX_BODY_BYTES: '5' });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).problems).toHaveLength(4);
    }
  });
});
