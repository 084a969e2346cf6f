/**
 * The bundle format of SPEC section 8, in one place: the archiver writes it, the reader checks it.
 *
 * A bundle is the UTF-8 JSON array of the archived message bodies in commit order:
 * `[` body₁ `,` body₂ … `]`, with no whitespace, each body byte-for-byte as stored (the canonical
 * message JSON). Its size is therefore 2 + Σ|bodyᵢ| + (n − 1) bytes.
 */
export const APP_NAME = 'Relation-IM-Archive';
export const APP_VERSION = '1';
export const CONTENT_TYPE = 'application/json';

export const TAG = {
  APP_NAME: 'App-Name',
  APP_VERSION: 'App-Version',
  CONTENT_TYPE: 'Content-Type',
  BUNDLE_SEQ: 'Bundle-Seq',
  PREV_TX: 'Prev-Tx',
  MESSAGE_COUNT: 'Message-Count',
  FIRST_TIMESTAMP: 'First-Timestamp',
  LAST_TIMESTAMP: 'Last-Timestamp',
  DATA_SHA256: 'Data-SHA256',
} as const;

export interface Tag {
  name: string;
  value: string;
}

/** What the tags of one bundle say. */
export interface BundleMeta {
  seq: number;
  /** Transaction id of the previous bundle; null on the first. */
  prevTx: string | null;
  count: number;
  /** `timestamp` of the first and of the last message in bundle (commit) order. */
  firstTs: number;
  lastTs: number;
  /** Lowercase hex sha256 of the bundle bytes. */
  sha256: string;
}

/** The tags of a bundle transaction, in a fixed order (Prev-Tx absent on the first bundle). */
export function bundleTags(meta: BundleMeta): Tag[] {
  const tags: Tag[] = [
    { name: TAG.APP_NAME, value: APP_NAME },
    { name: TAG.APP_VERSION, value: APP_VERSION },
    { name: TAG.CONTENT_TYPE, value: CONTENT_TYPE },
    { name: TAG.BUNDLE_SEQ, value: String(meta.seq) },
  ];
  if (meta.prevTx !== null) tags.push({ name: TAG.PREV_TX, value: meta.prevTx });
  tags.push(
    { name: TAG.MESSAGE_COUNT, value: String(meta.count) },
    { name: TAG.FIRST_TIMESTAMP, value: String(meta.firstTs) },
    { name: TAG.LAST_TIMESTAMP, value: String(meta.lastTs) },
    { name: TAG.DATA_SHA256, value: meta.sha256 },
  );
  return tags;
}

const TXID = /^[a-zA-Z0-9_-]{43}$/;
const DECIMAL = /^(0|[1-9]\d{0,15})$/;
const SHA256 = /^[0-9a-f]{64}$/;

export function isTxId(value: string): boolean {
  return TXID.test(value);
}

/**
 * Reads the bundle tags of a transaction. Returns the meta, or the list of what is wrong with the tags
 * (a reader reports each); an App-Name other than ours is not a bundle at all.
 */
export function parseBundleTags(tags: readonly Tag[]): { meta: BundleMeta } | { problems: string[] } {
  const problems: string[] = [];
  const one = (name: string): string | undefined => {
    const found = tags.filter((t) => t.name === name);
    if (found.length > 1) problems.push(`tag ${name} appears ${found.length} times`);
    return found[0]?.value;
  };
  const num = (name: string): number => {
    const v = one(name);
    if (v === undefined) {
      problems.push(`tag ${name} is missing`);
      return -1;
    }
    if (!DECIMAL.test(v)) {
      problems.push(`tag ${name} is not a decimal integer: "${v.slice(0, 80)}"`);
      return -1;
    }
    return Number(v);
  };
  if (one(TAG.APP_NAME) !== APP_NAME) problems.push(`tag ${TAG.APP_NAME} is not ${APP_NAME}`);
  if (one(TAG.APP_VERSION) !== APP_VERSION) problems.push(`tag ${TAG.APP_VERSION} is not ${APP_VERSION}`);
  if (one(TAG.CONTENT_TYPE) !== CONTENT_TYPE) problems.push(`tag ${TAG.CONTENT_TYPE} is not ${CONTENT_TYPE}`);
  const seq = num(TAG.BUNDLE_SEQ);
  if (seq === 0) problems.push(`tag ${TAG.BUNDLE_SEQ} must start at 1`);
  const prevTx = one(TAG.PREV_TX) ?? null;
  if (prevTx !== null && !isTxId(prevTx)) problems.push(`tag ${TAG.PREV_TX} is not a transaction id`);
  const count = num(TAG.MESSAGE_COUNT);
  const firstTs = num(TAG.FIRST_TIMESTAMP);
  const lastTs = num(TAG.LAST_TIMESTAMP);
  const sha256 = one(TAG.DATA_SHA256) ?? '';
  if (!SHA256.test(sha256)) problems.push(`tag ${TAG.DATA_SHA256} is not 64 lowercase hex digits`);
  if (problems.length > 0) return { problems };
  return { meta: { seq, prevTx, count, firstTs, lastTs, sha256 } };
}

/** Bytes of a bundle holding bodies of these UTF-8 sizes. */
export function bundleBytes(count: number, bodyBytes: number): number {
  return count === 0 ? 2 : 2 + bodyBytes + (count - 1);
}
