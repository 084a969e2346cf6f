import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MAX_HEADER_BYTES, parseProxyV2, SIGNATURE } from '../../../src/gateway/edge/proxy-protocol.js';
import { proxyV2 } from '../../support/proxy-v2.js';

describe('PROXY protocol v2 header', () => {
  it('reads the source of an IPv4 and an IPv6 header as HAProxy sends them, TLVs skipped', () => {
    const v4 = proxyV2('203.0.113.7', 40000, '127.0.0.1', 8081);
    expect(parseProxyV2(Buffer.concat([v4, Buffer.from('GET / HTTP/1.1\r\n')]))).toEqual({ kind: 'header', length: 28, source: '203.0.113.7' });
    const v6 = proxyV2('2001:db8::1', 1, '::1', 2, Buffer.from([0x04, 0x00, 0x01, 0x00])); // a NOOP TLV
    expect(parseProxyV2(v6)).toEqual({ kind: 'header', length: 56, source: '2001:db8::1' });
    expect(parseProxyV2(proxyV2('::ffff:198.51.100.2', 1, '::1', 2))).toMatchObject({ source: '198.51.100.2' });
    expect(parseProxyV2(proxyV2('fe80:0:0:1:0:0:0:5', 1, '::1', 2))).toMatchObject({ source: 'fe80:0:0:1::5' });
  });

  it('reads LOCAL (the proxy\'s own health check) as no source, and plain HTTP as no header', () => {
    const local = Buffer.concat([SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
    expect(parseProxyV2(local)).toEqual({ kind: 'header', length: 16 });
    expect(parseProxyV2(Buffer.from('GET /ready HTTP/1.1\r\n'))).toEqual({ kind: 'none' });
    expect(parseProxyV2(Buffer.from('\r\n'))).toEqual({ kind: 'more' }); // could still be the signature
  });

  it('asks for more until the whole header arrived, byte by byte', () => {
    const h = proxyV2('192.0.2.1', 5, '192.0.2.2', 6);
    for (let n = 1; n < h.length; n++) expect(parseProxyV2(h.subarray(0, n))).toEqual({ kind: 'more' });
    expect(parseProxyV2(h)).toMatchObject({ kind: 'header', source: '192.0.2.1' });
  });

  it('refuses other versions, commands, families, short address blocks and headers over the bound', () => {
    const base = proxyV2('192.0.2.1', 5, '192.0.2.2', 6);
    const with_ = (i: number, v: number): Buffer => { const b = Buffer.from(base); b[i] = v; return b; };
    expect(parseProxyV2(with_(12, 0x11))).toMatchObject({ kind: 'bad' });
    expect(parseProxyV2(with_(12, 0x22))).toMatchObject({ kind: 'bad' });
    expect(parseProxyV2(with_(13, 0x41))).toMatchObject({ kind: 'bad' });
    expect(parseProxyV2(with_(15, 4))).toMatchObject({ kind: 'bad' }); // INET with 4 address bytes
    const long = Buffer.concat([SIGNATURE, Buffer.from([0x21, 0x11, 0xff, 0xff])]);
    expect(parseProxyV2(long)).toMatchObject({ kind: 'bad', reason: expect.stringContaining(String(MAX_HEADER_BYTES)) });
  });

  it('never throws and never reads past what it was given, whatever the bytes (fuzz)', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), fc.boolean(), (tail, signed) => {
      const buf = signed ? Buffer.concat([SIGNATURE, tail]) : Buffer.from(tail);
      const r = parseProxyV2(buf);
      if (r.kind === 'header') {
        expect(r.length).toBeLessThanOrEqual(buf.length);
        expect(r.length).toBeLessThanOrEqual(MAX_HEADER_BYTES);
      }
      if (r.kind === 'more') expect(buf.length).toBeLessThan(MAX_HEADER_BYTES);
    }), { numRuns: 20_000 });
  });
});
