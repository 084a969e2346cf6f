import { readdirSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isAppError } from '../../../src/errors/app-error.js';
import { decodeEnvelope, encodeEnvelope, mp, pack, type MpValue } from '../../../src/protocol/msgpack/codec.js';
import { scanMsgpack } from '../../../src/protocol/msgpack/scan.js';
import { parseDraft } from '../../../src/roles/im/events.js';

const LIM = { maxDepth: 8, maxElements: 64 };
const fixtures = new URL('../../vectors/msgpack-fuzz/', import.meta.url);

/** Decoding untrusted bytes either yields an envelope or throws a catalogue error; nothing else. */
function decodeOrCatalogueError(bytes: Uint8Array): void {
  try {
    const env = decodeEnvelope(bytes, LIM);
    try {
      parseDraft(env.body, { maxTextBytes: 1000, maxFileBytes: 1000 });
    } catch (e) {
      if (!isAppError(e)) throw e;
    }
  } catch (e) {
    if (!isAppError(e)) throw e;
    expect(['BAD_MSGPACK', 'INVALID_FIELD']).toContain(e.code);
  }
}

const mpValue = fc.letrec((tie) => ({
  leaf: fc.oneof(fc.integer(), fc.string(), fc.boolean(), fc.constant(null), fc.double({ noNaN: true }), fc.uint8Array({ maxLength: 8 })),
  node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 5 }),
    fc.array(fc.tuple(fc.integer({ min: 0, max: 16 }), tie('node')), { maxLength: 5 }).map((e) => new Map(e))),
})).node;

describe('MsgPack codec', () => {
  it('never throws anything but a catalogue error on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 256 }), (b) => decodeOrCatalogueError(b)), { numRuns: 3000 });
  });

  it('never throws anything but a catalogue error on mutated valid frames', () => {
    const base = pack(mp({ 0: 1, 1: 3, 2: 7, 4: mp({ 1: 'dm:0x' + 'a'.repeat(40) + ':0x' + 'b'.repeat(40), 2: 1, 6: [[1, 2]], 7: mp({ 0: 'hi' }) }) }));
    fc.assert(fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(base.length), (edits, cut) => {
      const b = Buffer.from(base);
      for (const [i, v] of edits) b[i] = v;
      decodeOrCatalogueError(b.subarray(0, cut));
    }), { numRuns: 3000 });
  });

  it('round-trips arbitrary structured bodies within the limits', () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 100 }), fc.nat(), mpValue, (cmd, seq, v) => {
      const frame = encodeEnvelope(cmd, seq, mp({ 9: v as MpValue }));
      try {
        const env = decodeEnvelope(frame, LIM);
        expect([env.cmd, env.seq]).toEqual([cmd, seq]);
      } catch (e) {
        if (!isAppError(e, 'BAD_MSGPACK')) throw e;
      }
    }), { numRuns: 1000 });
  });

  it('refuses every truncation of a valid frame as BAD_MSGPACK', () => {
    const frame = encodeEnvelope(3, 1, mp({ 7: mp({ 0: 'hello', 1: [1, 2, 3] }) }));
    for (let n = 0; n < frame.length; n++) expect(() => scanMsgpack(frame.subarray(0, n), LIM)).toThrowError(/malformed/);
  });

  it('bounds depth exactly and refuses huge length headers before allocating', () => {
    let v: unknown = 1;
    for (let i = 0; i < 7; i++) v = [v];
    expect(() => scanMsgpack(pack(mp({ 0: v as MpValue })), LIM)).not.toThrow();
    expect(() => scanMsgpack(pack(mp({ 0: [v as MpValue] })), LIM)).toThrowError(/deeper/);
    expect(() => scanMsgpack(Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff]), LIM)).toThrowError(/entries/);
  });

  it('replays the kept fuzz fixtures', () => {
    const files = readdirSync(fixtures).filter((f) => f.endsWith('.hex'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      const bytes = Buffer.from(readFileSync(new URL(f, fixtures), 'utf8').trim(), 'hex');
      decodeOrCatalogueError(bytes);
      if (f.includes('nesting')) expect(() => decodeEnvelope(bytes, LIM)).toThrowError(/deeper/);
    }
  });
});
