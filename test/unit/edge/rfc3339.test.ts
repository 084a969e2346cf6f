import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rfc3339Ms } from '../../../src/roles/auth/rfc3339.js';

describe('strict RFC 3339 times (SIWE fields)', () => {
  it('reads the forms RFC 3339 allows, with offsets and fractions', () => {
    expect(rfc3339Ms('2026-01-01T00:00:00Z')).toBe(Date.UTC(2026, 0, 1));
    expect(rfc3339Ms('2026-01-01t00:00:00z')).toBe(Date.UTC(2026, 0, 1));
    expect(rfc3339Ms('2026-01-01T01:30:00+01:30')).toBe(Date.UTC(2026, 0, 1));
    expect(rfc3339Ms('2025-12-31T20:00:00.5-04:00')).toBe(Date.UTC(2026, 0, 1) + 500);
    expect(rfc3339Ms('2024-02-29T12:00:00.123456789Z')).toBe(Date.UTC(2024, 1, 29, 12) + 123);
    expect(rfc3339Ms('0050-06-01T00:00:00Z')).toBe(new Date('0050-06-01T00:00:00Z').getTime());
  });

  it('refuses a leap second, impossible dates and times, and anything that is not the grammar', () => {
    for (const bad of ['2026-12-31T23:59:60Z', '2026-02-29T00:00:00Z', '2026-04-31T00:00:00Z', '2026-13-01T00:00:00Z',
      '2026-01-01T24:00:00Z', '2026-01-01T00:60:00Z', '2026-01-01T00:00:00+24:00', '2026-01-01T00:00:00', '2026-01-01',
      '2026-01-01 00:00:00Z', '+02026-01-01T00:00:00Z', 'Tue, 01 Jan 2026 00:00:00 GMT', '', 'now', '2026-01-01T00:00:00.Z']) {
      expect(rfc3339Ms(bad), bad).toBeNull();
    }
  });

  it('agrees with Date.parse on every date-time it reads, and never returns NaN', () => {
    fc.assert(fc.property(fc.date({ min: new Date('1970-01-01'), max: new Date('9999-12-31'), noInvalidDate: true }), (d) => {
      expect(rfc3339Ms(d.toISOString())).toBe(d.getTime());
    }));
    fc.assert(fc.property(fc.string(), (s) => {
      const v = rfc3339Ms(s);
      return v === null || Number.isFinite(v);
    }));
  });
});
