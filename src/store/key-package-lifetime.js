// @ts-check
/**
 * The lifetime of a KeyPackage's leaf node (RFC 9420 sections 7.2 and 10.1), read straight from the bytes
 * of its MLSMessage (wire format mls_key_package) without a full decode. Plain JavaScript because the
 * embedded store's migrations run on its writer thread; the PostgreSQL migration uses it too. The
 * Delivery Service itself reads the lifetime from ts-mls's decoding at upload (src/roles/mls/mls-service.ts);
 * this exists for rows stored before the directory kept `not_after` (the backfill).
 */

/** @param {Uint8Array} b @param {number} o @returns {[number, number]} the vector's length and the offset after its length prefix */
function varint(b, o) {
  const first = b[o];
  if (first === undefined) throw new Error('truncated');
  const prefix = first >> 6;
  if (prefix === 0) return [first & 0x3f, o + 1];
  if (prefix === 1) {
    if (o + 2 > b.length) throw new Error('truncated');
    return [((first & 0x3f) << 8) | /** @type {number} */ (b[o + 1]), o + 2];
  }
  if (prefix === 2) {
    if (o + 4 > b.length) throw new Error('truncated');
    return [((first & 0x3f) * 0x1000000) + ((/** @type {number} */ (b[o + 1]) << 16) | (/** @type {number} */ (b[o + 2]) << 8) | /** @type {number} */ (b[o + 3])), o + 4];
  }
  throw new Error('invalid variable-length integer');
}

/** @param {Uint8Array} b @param {number} o @returns {number} the offset after one opaque vector */
function skipVector(b, o) {
  const [n, at] = varint(b, o);
  if (at + n > b.length) throw new Error('truncated');
  return at + n;
}

/** @param {Uint8Array} b @param {number} o */
function u16(b, o) {
  if (o + 2 > b.length) throw new Error('truncated');
  return (/** @type {number} */ (b[o]) << 8) | /** @type {number} */ (b[o + 1]);
}

/** @param {Uint8Array} b @param {number} o */
function u64(b, o) {
  if (o + 8 > b.length) throw new Error('truncated');
  let v = 0n;
  for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(/** @type {number} */ (b[o + i]));
  return v;
}

/**
 * `{ notBefore, notAfter }` in seconds since the epoch (uint64, as bigint) of the KeyPackage in `bytes`
 * (an MLSMessage of wire format mls_key_package). Throws on anything else or on truncated bytes.
 * Layout: MLSMessage{version u16, wire_format u16, KeyPackage{version u16, cipher_suite u16, init_key<V>,
 * LeafNode{encryption_key<V>, signature_key<V>, Credential{credential_type u16, basic: identity<V> |
 * x509: certificates<V>}, Capabilities{versions<V>, cipher_suites<V>, extensions<V>, proposals<V>,
 * credentials<V>}, leaf_node_source u8 (1 = key_package), Lifetime{not_before u64, not_after u64}, …}}}.
 * @param {Uint8Array} bytes
 * @returns {{ notBefore: bigint, notAfter: bigint }}
 */
export function keyPackageLifetime(bytes) {
  let o = 0;
  o += 2; // MLSMessage.version
  if (u16(bytes, o) !== 5) throw new Error('not an MLSMessage of wire format mls_key_package');
  o += 2;
  o += 4; // KeyPackage.version, cipher_suite
  o = skipVector(bytes, o); // init_key
  o = skipVector(bytes, o); // leaf_node.encryption_key
  o = skipVector(bytes, o); // leaf_node.signature_key
  const credentialType = u16(bytes, o);
  o += 2;
  if (credentialType !== 1 && credentialType !== 2) throw new Error(`unknown credential type ${credentialType}`);
  o = skipVector(bytes, o); // identity (basic) or certificates (x509): one vector either way
  for (let i = 0; i < 5; i++) o = skipVector(bytes, o); // capabilities
  if (bytes[o] !== 1) throw new Error('the leaf node source is not key_package');
  o += 1;
  return { notBefore: u64(bytes, o), notAfter: u64(bytes, o + 8) };
}

/**
 * The `not_after` to store for a row written before lifetimes were kept: the package's own notAfter in
 * seconds, or 0 (expired: never handed out, deleted at the next claim or upload of its device) for bytes
 * that cannot be read. A notAfter past 2^53 s is capped (the column holds a JavaScript-safe integer).
 * @param {string} b64 standard base64 of the MLSMessage, as stored
 * @returns {number}
 */
export function storedNotAfter(b64) {
  try {
    const { notAfter } = keyPackageLifetime(Buffer.from(b64, 'base64'));
    return notAfter > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(notAfter);
  } catch {
    return 0;
  }
}
