import { AppError } from '../errors/app-error.js';

/** Message kinds of the Relation ONE face (SPEC section 3). */
export const Kind = { P2P: 0, GROUP: 1, DAO: 2, ANNOUNCEMENT: 3, HIDE: 4 } as const;
export type MessageKind = (typeof Kind)[keyof typeof Kind];

/** `MLS`: an MLS handshake message (proposal or commit; docs/e2ee.md section 3), only with encryptedBy "MLS". */
export const MESSAGE_TYPES = ['TEXT', 'CARD', 'NFT', 'IMAGE', 'EMOJI', 'BATCH_TRANSFER', 'ANNOUNCEMENT', 'MLS'] as const;
export type MessageType = (typeof MESSAGE_TYPES)[number];

export type Tag = [name: string, value: string];

/** A Relation ONE message exactly as the client signed it (seed section 7.1). */
export interface RelationMessage {
  id: string;
  encryptedBy: string;
  sender: string;
  receiver: string;
  timestamp: number;
  kind: MessageKind;
  tags: Tag[];
  type: MessageType;
  payload: string;
  encryptedSymmetricKey: string;
  delegationMessage: string;
  delegationSig: string;
  sig: string;
}

/** Field order of the canonical serialisation (the seed's order); also the set of allowed fields. */
export const MESSAGE_FIELDS = [
  'id', 'encryptedBy', 'sender', 'receiver', 'timestamp', 'kind', 'tags', 'type', 'payload',
  'encryptedSymmetricKey', 'delegationMessage', 'delegationSig', 'sig',
] as const;

export const LIMITS = {
  encryptedBy: 64,
  tags: 64,
  tagName: 64,
  tagValue: 4096,
  encryptedSymmetricKey: 16384,
  delegationMessage: 512,
} as const;

const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
const HASH = /^0x[0-9a-fA-F]{64}$/;
const SIGNATURE = /^0x[0-9a-fA-F]{130}$/;
const FIELD_SET: ReadonlySet<string> = new Set(MESSAGE_FIELDS);

export function isAddress(value: unknown): value is string {
  return typeof value === 'string' && ADDRESS.test(value);
}

function str(o: Record<string, unknown>, key: string, max: number, pattern?: RegExp): string {
  const v = o[key];
  if (typeof v !== 'string') throw new AppError('INVALID_FIELD', `${key} must be a string`, { field: key });
  if (v.length > max) throw new AppError('INVALID_FIELD', `${key} is longer than ${max} characters`, { field: key });
  if (pattern && !pattern.test(v)) throw new AppError('INVALID_FIELD', `${key} is malformed`, { field: key });
  return v;
}

/**
 * Validates an untrusted, already JSON-parsed value as a message: every field present with the right
 * type and bounds, no unknown field. Returns a fresh object holding only the known fields, so nothing
 * the client added travels further. Size of the whole is bounded by the transport before parsing.
 */
export function parseMessage(input: unknown): RelationMessage {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new AppError('INVALID_FIELD', 'the message must be a JSON object');
  }
  const o = input as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!FIELD_SET.has(key)) throw new AppError('UNKNOWN_FIELD', `unknown field "${key.slice(0, 64)}"`, { field: key.slice(0, 64) });
  }
  const timestamp = o['timestamp'];
  if (typeof timestamp !== 'number' || !Number.isSafeInteger(timestamp) || timestamp < 0) {
    throw new AppError('INVALID_FIELD', 'timestamp must be a non-negative integer of milliseconds', { field: 'timestamp' });
  }
  const kind = o['kind'];
  if (kind !== 0 && kind !== 1 && kind !== 2 && kind !== 3 && kind !== 4) {
    throw new AppError('INVALID_FIELD', 'kind must be 0, 1, 2, 3 or 4', { field: 'kind' });
  }
  const type = o['type'];
  if (typeof type !== 'string' || !(MESSAGE_TYPES as readonly string[]).includes(type)) {
    throw new AppError('INVALID_FIELD', `type must be one of ${MESSAGE_TYPES.join(', ')}`, { field: 'type' });
  }
  const rawTags = o['tags'];
  if (!Array.isArray(rawTags) || rawTags.length > LIMITS.tags) {
    throw new AppError('INVALID_FIELD', `tags must be an array of at most ${LIMITS.tags} pairs`, { field: 'tags' });
  }
  const tags: Tag[] = rawTags.map((t: unknown) => {
    if (!Array.isArray(t) || t.length !== 2 || typeof t[0] !== 'string' || typeof t[1] !== 'string'
      || t[0].length > LIMITS.tagName || t[1].length > LIMITS.tagValue) {
      throw new AppError('INVALID_FIELD', 'each tag must be a [name, value] pair of bounded strings', { field: 'tags' });
    }
    return [t[0], t[1]];
  });
  const payload = o['payload'];
  if (typeof payload !== 'string') throw new AppError('INVALID_FIELD', 'payload must be a string', { field: 'payload' });
  return {
    id: str(o, 'id', 66, HASH),
    encryptedBy: str(o, 'encryptedBy', LIMITS.encryptedBy),
    sender: str(o, 'sender', 42, ADDRESS),
    receiver: str(o, 'receiver', 42, ADDRESS),
    timestamp,
    kind,
    tags,
    type: type as MessageType,
    payload,
    encryptedSymmetricKey: str(o, 'encryptedSymmetricKey', LIMITS.encryptedSymmetricKey),
    delegationMessage: str(o, 'delegationMessage', LIMITS.delegationMessage),
    delegationSig: str(o, 'delegationSig', 132, SIGNATURE),
    sig: str(o, 'sig', 132, SIGNATURE),
  };
}

/** The exact string whose keccak256 is the message id (SPEC section 2). */
export function idPreimage(m: RelationMessage): string {
  return JSON.stringify([m.encryptedBy, m.sender, m.receiver, m.timestamp, m.kind, m.tags, m.payload, m.delegationMessage, m.delegationSig]);
}

/**
 * The message as stored and archived: the client's fields, in the seed's order, values untouched.
 * (JSON.stringify keeps every string value exactly; only insignificant whitespace and key order of the
 * client's bytes are normalised.)
 */
export function canonicalJson(m: RelationMessage): string {
  return JSON.stringify({
    id: m.id, encryptedBy: m.encryptedBy, sender: m.sender, receiver: m.receiver, timestamp: m.timestamp,
    kind: m.kind, tags: m.tags, type: m.type, payload: m.payload, encryptedSymmetricKey: m.encryptedSymmetricKey,
    delegationMessage: m.delegationMessage, delegationSig: m.delegationSig, sig: m.sig,
  });
}

/** First value of a tag, if present. */
export function tagValue(m: RelationMessage, name: string): string | undefined {
  for (const [n, v] of m.tags) if (n === name) return v;
  return undefined;
}
