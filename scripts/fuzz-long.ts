/**
 * Long fuzz runs of every parser of untrusted input, in process (the socket-level runs bounded to a few
 * seconds each are in `npm test`: test/edges/fuzz-sockets.test.ts).
 *
 *   npx tsx scripts/fuzz-long.ts [--runs 1000000] [--only siwe,msgpack,…] [--seed N]
 *
 * For each parser: `runs` inputs from fast-check (random and mutated-valid), and the one invariant of
 * this server's edge: the parser returns a value, or throws an AppError whose code is in the catalogue
 * (never INTERNAL, never another exception). Prints inputs, seconds and inputs/s per parser; exits 1 with
 * the shrunk counterexample when one fails.
 */
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { SiweMessage } from 'siwe';
import { readSiwe } from '../src/roles/auth/auth-service.js';
import { rfc3339Ms } from '../src/roles/auth/rfc3339.js';
import { AppError } from '../src/errors/app-error.js';
import { ERROR_CATALOGUE } from '../src/errors/catalogue.js';
import { decodeEnvelope } from '../src/protocol/msgpack/codec.js';
import { delegationText, parseDelegation } from '../src/protocol/delegation.js';
import { parseMessage } from '../src/protocol/message.js';
import { CHAT_ID, intParam, strParam } from '../src/gateway/http/query.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const RUNS = Number(opt('runs') ?? 1_000_000);
const ONLY = opt('only')?.split(',');
const SEED = opt('seed') !== undefined ? Number(opt('seed')) : Date.now() % 2 ** 31;
if (!Number.isSafeInteger(RUNS) || RUNS < 1) throw new Error('--runs must be a positive integer');

/** The invariant: a value, or an AppError with a catalogue code other than INTERNAL. */
function refusedOrAccepted(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    return e instanceof AppError && e.code in ERROR_CATALOGUE && e.code !== 'INTERNAL';
  }
}

const ADDR = '0x5CbDd86a2FA8Dc4bDdd8a8f69dBa48572EeC07FB';
const validMessage: Record<string, unknown> = {
  id: '0x' + 'ab'.repeat(32), encryptedBy: 'Lit', sender: ADDR, receiver: '0x19E7E376E7C213B7E7e7e46cc70A5dD086DAff2A',
  timestamp: 1767312000000, kind: 0, tags: [['quoteId', '0x' + 'cd'.repeat(32)]], type: 'TEXT', payload: 'bG9jYWw=',
  encryptedSymmetricKey: '0xcdcd', delegationMessage: delegationText(ADDR, 1767225600000, 1769904000000),
  delegationSig: '0x' + '11'.repeat(65), sig: '0x' + '22'.repeat(65),
};
const siweBase = new SiweMessage({
  domain: 'localhost:8080', address: ADDR, statement: 'Sign in', uri: 'http://localhost:8080', version: '1', chainId: 1,
  nonce: 'abcdef0123456789', issuedAt: '2026-01-01T00:00:00Z', expirationTime: '2026-01-02T00:00:00Z', notBefore: '2025-12-31T00:00:00Z',
}).prepareMessage();
const packr = new Packr({ useRecords: false, variableMapSize: true });
const validFrame = packr.pack(new Map<number, unknown>([[0, 1], [1, 3], [2, 7], [4, new Map<number, unknown>([[1, `dm:0x${'a'.repeat(40)}:0x${'b'.repeat(40)}`], [2, 1], [7, new Map([[0, 'hi']])]])]]));
const LIMITS = { maxDepth: 8, maxElements: 1024 };
const time = fc.oneof(fc.date({ noInvalidDate: true }).map((d) => d.toISOString()), fc.constantFrom('2016-12-31T23:59:60Z', '2026-02-29T00:00:00Z', '2026-01-01T00:00:00+24:00', '2026-01-01t00:00:00z'), fc.string({ maxLength: 30 }));
const bytesEdit = (base: Uint8Array) => fc.tuple(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(base.length))
  .map(([edits, cut]) => {
    const b = Buffer.from(base);
    for (const [i, v] of edits) b[i] = v;
    return b.subarray(0, cut);
  });

type Prop = fc.IProperty<[unknown]>;
const parsers: Record<string, Prop> = {
  // The Relation ONE message (REST body, /ws send frame): arbitrary JSON and one-field mutations of a valid one.
  message: fc.property(fc.oneof(
    fc.jsonValue(),
    fc.tuple(fc.constantFrom(...Object.keys(validMessage)), fc.oneof(fc.jsonValue(), fc.string(), fc.constant(undefined))).map(([k, v]) => ({ ...validMessage, [k]: v })),
    fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue()).map((extra) => ({ ...validMessage, ...extra })),
  ), (v) => refusedOrAccepted(() => parseMessage(JSON.parse(JSON.stringify(v ?? null))))) as unknown as Prop,
  // The delegation text (inside every message and login).
  delegation: fc.property(fc.oneof(
    fc.string(),
    fc.tuple(fc.string({ maxLength: 44 }), fc.oneof(fc.nat(), fc.integer(), fc.double().map(String) as fc.Arbitrary<unknown>), fc.oneof(fc.nat(), fc.integer())).map(([a, c, e]) => `授权 ${a} 代理签名，创建时间：${String(c)}, 过期时间：${String(e)}`),
    fc.tuple(fc.nat(), fc.nat()).map(([c, d]) => delegationText(ADDR, c, c + d)),
  ), (t) => refusedOrAccepted(() => parseDelegation(t, 31 * 86_400_000))) as unknown as Prop,
  // The /im envelope: random bytes and byte-level mutations (and truncations) of a valid SEND frame.
  msgpack: fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), bytesEdit(validFrame)), (b) => refusedOrAccepted(() => decodeEnvelope(b, LIMITS))) as unknown as Prop,
  // Sign-in text: line edits of a valid message, every time field replaced, random text.
  siwe: fc.property(fc.oneof(
    fc.string({ maxLength: 400 }),
    fc.tuple(fc.nat(12), fc.string({ maxLength: 60 })).map(([i, s]) => siweBase.split('\n').map((l, j) => (j === i ? s : l)).join('\n')),
    fc.tuple(fc.constantFrom('Issued At: ', 'Expiration Time: ', 'Not Before: '), time).map(([k, t]) => siweBase.split('\n').map((l) => (l.startsWith(k) ? k + t : l)).join('\n')),
  ), (text) => refusedOrAccepted(() => {
    const { times } = readSiwe(text);
    for (const v of Object.values(times)) if (!Number.isFinite(v)) throw new Error(`a time field read as ${v}`);
  })) as unknown as Prop,
  rfc3339: fc.property(fc.oneof(time, fc.string({ unit: fc.constantFrom(...'0123456789-:TZz+.'.split('')), maxLength: 35 })), (t) => {
    const v = rfc3339Ms(t);
    return v === null || Number.isFinite(v);
  }) as unknown as Prop,
  // Query parameters of every list and action endpoint, as Express's simple parser hands them over.
  query: fc.property(fc.dictionary(fc.constantFrom('limit', 'offset', 'chatId', 'afterSeq'), fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }) as fc.Arbitrary<unknown>)), (q) => refusedOrAccepted(() => {
    intParam(q, 'limit', 50, 1, 200);
    intParam(q, 'offset', 0, 0, 1_000_000);
    intParam(q, 'afterSeq', undefined, 0, Number.MAX_SAFE_INTEGER);
    strParam(q, 'chatId', CHAT_ID);
  })) as unknown as Prop,
};

let failed = false;
process.stdout.write(`fuzz-long: ${RUNS.toLocaleString('en')} inputs per parser, seed ${SEED}\n`);
for (const [name, prop] of Object.entries(parsers)) {
  if (ONLY && !ONLY.includes(name)) continue;
  const t0 = performance.now();
  const out = fc.check(prop, { numRuns: RUNS, seed: SEED, endOnFailure: true });
  const s = (performance.now() - t0) / 1000;
  if (out.failed) {
    failed = true;
    process.stdout.write(`${name.padEnd(10)} FAILED after ${out.numRuns} inputs: ${fc.stringify(out.counterexample)}\n${out.errorInstance ? String(out.errorInstance) : ''}\n`);
  } else {
    process.stdout.write(`${name.padEnd(10)} ${out.numRuns.toLocaleString('en')} inputs, 0 failures, ${s.toFixed(1)} s, ${Math.round(out.numRuns / s).toLocaleString('en')} inputs/s\n`);
  }
}
process.exit(failed ? 1 : 0);
