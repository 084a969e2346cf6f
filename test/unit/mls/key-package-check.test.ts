import fc from 'fast-check';
import { toUtf8Bytes } from 'ethers';
import { beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors/app-error.js';
import { recoverPersonal } from '../../../src/roles/identity/recover-core.js';
import { MlsService } from '../../../src/roles/mls/mls-service.js';
import type { Store } from '../../../src/store/port.js';
import { makeIdentity } from '../../support/messages.js';
import { device, keyPackage } from '../../support/mls.js';

/**
 * The upload check of docs/e2ee.md section 5 on its own (no server): any change to a genuine KeyPackage,
 * anywhere in its bytes, is refused with a catalogue code before the store is asked, and nothing else
 * is ever thrown. Every byte of an MLSMessage of wire format mls_key_package is covered by the KeyPackage
 * signature, is the signature, or is the framing (version, wire format, vector lengths), so a change that
 * still decodes has to fail a signature, the canonical encoding or an earlier check. (The integration
 * test, test/integration/mls.test.ts, does the named cases on a real server with both stores.)
 */
const REFUSALS = new Set(['MLS_MALFORMED', 'MLS_INVALID_KEY_PACKAGE', 'MLS_UNSUPPORTED_SUITE', 'MLS_CREDENTIAL_MISMATCH']);

let uploads = 0;
const store = { mlsUpload: async () => { uploads++; return { status: 'ok', available: 1, lastResort: false }; } } as unknown as Store;
const service = new MlsService({
  store, push: { publish() {}, revokeToken() {}, isOnline: () => false }, clock: { now: () => Date.now() },
  recoverText: (t, sig) => recoverPersonal(toUtf8Bytes(t), sig), maxDelegationMs: 31 * 86_400_000, maxDevices: 10, lowWater: 10,
  proxyName: 'test', resolveChat: async () => { throw new Error('unused'); },
});
const who = makeIdentity();
const wallet = who.address.toLowerCase();
let seeds: Buffer[] = [];

/** null when the upload reached the store, else the refusal's code (anything but an AppError fails the test). */
async function outcome(bytes: Uint8Array): Promise<string | null> {
  const before = uploads;
  try {
    await service.upload(wallet, { keyPackages: [Buffer.from(bytes).toString('base64')] });
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    expect(uploads).toBe(before);
    return e.code;
  }
  expect(uploads).toBe(before + 1);
  return null;
}

beforeAll(async () => {
  const parts = { wallet: who.wallet, session: who.session };
  const d = await device(parts);
  const dx = await device(parts, 'MLS_256_XWING_AES256GCM_SHA512_Ed25519');
  seeds = [Buffer.from((await keyPackage(d)).b64, 'base64'), Buffer.from((await keyPackage(dx, 'MLS_256_XWING_AES256GCM_SHA512_Ed25519')).b64, 'base64')];
}, 60_000);

describe('KeyPackage upload check (RFC 9420 section 10.1)', () => {
  it('accepts the genuine packages', async () => {
    for (const s of seeds) expect(await outcome(s)).toBeNull();
  });

  it('refuses every single-byte change of a genuine package (each byte of the classical one, bit 0)', async () => {
    const s = seeds[0] as Buffer;
    const accepted: number[] = [];
    for (let at = 0; at < s.length; at++) {
      const b = Buffer.from(s);
      b[at] = (b[at] as number) ^ 0x01;
      const c = await outcome(b);
      if (c === null) accepted.push(at);
      else expect(REFUSALS.has(c), `${at}: ${c}`).toBe(true);
    }
    expect(accepted).toEqual([]);
  }, 60_000);

  it('fuzz: mutated, truncated and random packages are refused with a catalogue code, never stored, never thrown otherwise', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), fc.nat(),
      async (which, edits, cut) => {
        const s = seeds[which] as Buffer;
        const b = Buffer.from(s);
        for (const [at, v] of edits) b[at % b.length] = v;
        const c = await outcome(b);
        if (b.equals(s)) expect(c).toBeNull(); // the edits wrote the bytes that were there
        else expect(REFUSALS.has(c as string), String(c)).toBe(true);
        const t = b.subarray(0, cut % b.length); // strictly shorter
        expect(REFUSALS.has((await outcome(t)) as string)).toBe(true);
      }), { numRuns: 400 });
    await fc.assert(fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), async (b) => {
      expect(REFUSALS.has((await outcome(b)) as string)).toBe(true);
    }), { numRuns: 400 });
  }, 120_000);
});
