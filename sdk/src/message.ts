import { ImError } from './errors.js';
import { hexToBytes, keccak256, utf8 } from './hex.js';
import { assertSession, sessionSign, type SessionKey } from './session.js';

export type MessageKind = 0 | 1 | 2 | 3 | 4;
/** `MLS`: an MLS handshake (proposal or commit; docs/e2ee.md section 3), never shown as a chat message. */
export type MessageType = 'TEXT' | 'CARD' | 'NFT' | 'IMAGE' | 'EMOJI' | 'BATCH_TRANSFER' | 'ANNOUNCEMENT' | 'MLS';
export type Tag = [string, string];

/** A signed Relation ONE message (docs/protocol.md section 1). */
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

/** A message as the server serves it: the signed fields plus `seq` and `receivedAt`. */
export interface ServedMessage extends RelationMessage {
  seq: number;
  receivedAt: number;
}

/** A /im event served on the REST face (docs/protocol-im.md, "Both faces, one store"). */
export interface ServedImEvent {
  im: { cid: string; mid: number; k: number; tags: [number, number][]; data: Record<string, unknown>; revokedBy?: number };
  sender: string;
  timestamp: number;
  seq: number;
  receivedAt: number;
}

export type ServedItem = ServedMessage | ServedImEvent;

export function isImEvent(m: ServedItem): m is ServedImEvent {
  return 'im' in m;
}

/** The exact string hashed into the id (SPEC section 2). */
export function idPreimage(m: Pick<RelationMessage, 'encryptedBy' | 'sender' | 'receiver' | 'timestamp' | 'kind' | 'tags' | 'payload' | 'delegationMessage' | 'delegationSig'>): string {
  return JSON.stringify([m.encryptedBy, m.sender, m.receiver, m.timestamp, m.kind, m.tags, m.payload, m.delegationMessage, m.delegationSig]);
}

export function messageId(m: Parameters<typeof idPreimage>[0]): string {
  return keccak256(utf8(idPreimage(m)));
}

export interface MessageFields {
  receiver: string;
  payload: string;
  kind?: MessageKind;
  type?: MessageType;
  tags?: Tag[];
  encryptedBy?: string;
  encryptedSymmetricKey?: string;
  /** Milliseconds; default now. */
  timestamp?: number;
}

/**
 * Builds a complete signed message: sender and delegation from the session key, `id` = keccak256 of the
 * preimage, `sig` = the session key's EIP-191 signature over the id's 32 bytes.
 */
export function buildMessage(session: SessionKey, f: MessageFields): RelationMessage {
  const timestamp = f.timestamp ?? Date.now();
  if (!/^0x[0-9a-fA-F]{40}$/.test(f.receiver)) throw new ImError('INVALID_ARGUMENT', 'receiver must be an address');
  assertSession(session, timestamp);
  const base = {
    encryptedBy: f.encryptedBy ?? 'Lit',
    sender: session.owner,
    receiver: f.receiver,
    timestamp,
    kind: f.kind ?? 0,
    tags: f.tags ?? [],
    payload: f.payload,
    delegationMessage: session.delegationMessage,
    delegationSig: session.delegationSig,
  };
  const id = messageId(base);
  // Field order as in the seed (and the reference vector).
  return {
    id, encryptedBy: base.encryptedBy, sender: base.sender, receiver: base.receiver, timestamp, kind: base.kind, tags: base.tags,
    type: f.type ?? 'TEXT', payload: base.payload, encryptedSymmetricKey: f.encryptedSymmetricKey ?? '',
    delegationMessage: base.delegationMessage, delegationSig: base.delegationSig, sig: sessionSign(session, hexToBytes(id)),
  };
}
