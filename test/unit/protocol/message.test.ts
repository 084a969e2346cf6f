import { readFileSync } from 'node:fs';
import { keccak256, toUtf8Bytes } from 'ethers';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AppError, isAppError } from '../../../src/errors/app-error.js';
import { canonicalJson, idPreimage, parseMessage } from '../../../src/protocol/message.js';

const vector = JSON.parse(readFileSync(new URL('../../vectors/message-1.json', import.meta.url), 'utf8')) as {
  preimage: string; message: Record<string, unknown>;
};

describe('message parsing', () => {
  it('reproduces the reference preimage and id byte for byte', () => {
    const m = parseMessage(vector.message);
    expect(idPreimage(m)).toBe(vector.preimage);
    expect(keccak256(toUtf8Bytes(idPreimage(m)))).toBe(vector.message['id']);
  });

  it('keeps every field exactly and in the seed order in the canonical form', () => {
    const m = parseMessage(vector.message);
    expect(JSON.parse(canonicalJson(m))).toEqual(vector.message);
    expect(Object.keys(JSON.parse(canonicalJson(m)) as object)).toEqual(Object.keys(vector.message));
  });

  const broken: [string, (m: Record<string, unknown>) => void, string][] = [
    ['an unknown field', (m) => { m['extra'] = 1; }, 'UNKNOWN_FIELD'],
    ['a missing sig', (m) => { delete m['sig']; }, 'INVALID_FIELD'],
    ['a string timestamp', (m) => { m['timestamp'] = '1767312000000'; }, 'INVALID_FIELD'],
    ['a fractional timestamp', (m) => { m['timestamp'] = 1.5; }, 'INVALID_FIELD'],
    ['kind 5', (m) => { m['kind'] = 5; }, 'INVALID_FIELD'],
    ['an unknown type', (m) => { m['type'] = 'VIDEO'; }, 'INVALID_FIELD'],
    ['a malformed receiver', (m) => { m['receiver'] = '0x1234'; }, 'INVALID_FIELD'],
    ['a tag that is not a pair', (m) => { m['tags'] = [['quoteId']]; }, 'INVALID_FIELD'],
    ['a tag with a number value', (m) => { m['tags'] = [['quoteId', 1]]; }, 'INVALID_FIELD'],
    ['too many tags', (m) => { m['tags'] = Array.from({ length: 65 }, () => ['a', 'b']); }, 'INVALID_FIELD'],
    ['a short signature', (m) => { m['sig'] = '0x1234'; }, 'INVALID_FIELD'],
    ['a non-hex id', (m) => { m['id'] = '0x' + 'z'.repeat(64); }, 'INVALID_FIELD'],
  ];
  for (const [what, mutate, code] of broken) {
    it(`rejects ${what} with ${code}`, () => {
      const m = structuredClone(vector.message);
      mutate(m);
      expect(() => parseMessage(m)).toThrowError(expect.objectContaining({ code }) as Error);
    });
  }

  it('rejects arrays, null and primitives as messages', () => {
    for (const v of [null, [], 'x', 1, true]) expect(() => parseMessage(v)).toThrow(AppError);
  });

  it('never throws anything but an AppError on arbitrary JSON (fuzz)', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => {
      try {
        parseMessage(v);
      } catch (e) {
        return isAppError(e);
      }
      return true;
    }), { numRuns: 2000 });
  });

  it('never throws anything but an AppError on mutations of a valid message (fuzz)', () => {
    const keys = Object.keys(vector.message);
    fc.assert(fc.property(fc.constantFrom(...keys), fc.jsonValue(), (key, value) => {
      const m = { ...vector.message, [key]: value };
      try {
        parseMessage(m);
        return true;
      } catch (e) {
        return isAppError(e);
      }
    }), { numRuns: 2000 });
  });
});
