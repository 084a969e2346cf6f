import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../../../src/errors/app-error.js';
import { parseMlsBytes, parseMlsPayload } from '../../../src/protocol/mls-header.js';
import { application, commit, proposal, soloGroup } from '../../support/mls.js';

const CID = 'dm:0x0000000000000000000000000000000000000001:0x0000000000000000000000000000000000000002';
let app: Uint8Array;
let pubCommit: Uint8Array;
let privCommit: Uint8Array;
let welcome: Uint8Array;
let prop: Uint8Array;

beforeAll(async () => {
  const s0 = await soloGroup(CID);
  const c = await commit(s0, { add: true });
  pubCommit = c.bytes;
  welcome = c.welcome as Uint8Array;
  privCommit = (await commit(c.state, { privately: true })).bytes;
  app = (await application(c.state, 'x'.repeat(1000))).bytes;
  prop = (await proposal(c.state)).bytes;
});

const b64 = (...parts: Uint8Array[]): string => Buffer.concat(parts.map((p) => Buffer.from(p))).toString('base64');

function code(f: () => unknown): string | null {
  try {
    f();
    return null;
  } catch (e) {
    return e instanceof AppError ? e.code : `not an AppError: ${String(e)}`;
  }
}

describe('MLS header reader (docs/e2ee.md section 3)', () => {
  it('reads the clear header of real ts-mls messages', () => {
    expect(parseMlsPayload(b64(app))).toEqual({ wireFormat: 2, groupId: CID, epoch: 1, contentType: 1, sender: null, welcome: false });
    expect(parseMlsPayload(b64(pubCommit, welcome))).toEqual({ wireFormat: 1, groupId: CID, epoch: 0, contentType: 3, sender: { type: 1, index: 0 }, welcome: true });
    expect(parseMlsPayload(b64(pubCommit))).toMatchObject({ contentType: 3, welcome: false });
    expect(parseMlsPayload(b64(privCommit))).toMatchObject({ wireFormat: 2, epoch: 1, contentType: 3, welcome: false });
    expect(parseMlsPayload(b64(privCommit, welcome))).toMatchObject({ wireFormat: 2, contentType: 3, welcome: true });
    expect(parseMlsPayload(b64(prop))).toMatchObject({ wireFormat: 1, epoch: 1, contentType: 2 });
  });

  it('refuses what the framing does not allow', () => {
    const bad = [
      '', 'not base64!', b64(app).slice(0, -1), `${b64(app)}\n`, b64(app).replace(/\+/g, '-').replace(/\//g, '_') + (b64(app).includes('+') || b64(app).includes('/') ? '' : '-AAA'),
      b64(app, welcome), // a Welcome after an application message
      b64(prop, welcome), // ... after a proposal
      b64(pubCommit, welcome, welcome), // two Welcomes
      b64(pubCommit, new Uint8Array([0])), // a trailing byte
      b64(app, new Uint8Array([0])),
      b64(welcome), // a Welcome alone
      b64(app.subarray(0, app.length - 1)), // truncated
      b64(pubCommit.subarray(0, 40)),
    ];
    for (const p of bad) expect(code(() => parseMlsPayload(p)), p.slice(0, 40)).toBe('MLS_MALFORMED');
  });

  it('refuses an epoch beyond 2^53 and a wrong version', () => {
    const big = Buffer.from(app);
    // version(2) wire format(2) group id length(2: 87 > 63) group id(87), then the epoch
    const at = 4 + 2 + CID.length;
    big.writeUInt32BE(0x00200000, at);
    expect(code(() => parseMlsBytes(big))).toBe('MLS_MALFORMED');
    big.writeUInt32BE(0x001fffff, at);
    big.writeUInt32BE(0xffffffff, at + 4);
    expect(parseMlsBytes(big).epoch).toBe(Number.MAX_SAFE_INTEGER);
    const v2 = Buffer.from(app);
    v2[1] = 2;
    expect(code(() => parseMlsBytes(v2))).toBe('MLS_MALFORMED');
  });

  it('never throws anything but MLS_MALFORMED (fuzz: random bytes, mutated and truncated real messages)', () => {
    const seeds = [app, pubCommit, privCommit, prop, Buffer.concat([pubCommit, welcome])];
    const check = (bytes: Uint8Array): void => {
      const c = code(() => parseMlsBytes(bytes));
      if (c !== null) expect(c).toBe('MLS_MALFORMED');
      const s = code(() => parseMlsPayload(Buffer.from(bytes).toString('base64')));
      if (s !== null) expect(s).toBe('MLS_MALFORMED');
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => check(b)), { numRuns: 2000 });
    fc.assert(fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(),
      (which, flips, cut) => {
        const b = Buffer.from(seeds[which] as Uint8Array);
        for (const [at, v] of flips) b[at % b.length] = v;
        check(b);
        check(b.subarray(0, cut % (b.length + 1)));
      }), { numRuns: 1500 });
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (s) => {
      const c = code(() => parseMlsPayload(s));
      if (c !== null) expect(c).toBe('MLS_MALFORMED');
    }), { numRuns: 1000 });
  });
});
