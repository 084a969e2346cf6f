/**
 * Real signed Relation ONE messages for tests (SPEC section 2): a wallet delegates to a session key by
 * personal_sign of the delegation text; the id is the keccak256 of the preimage; the session key signs
 * the id's 32 bytes. Deterministic for given keys and inputs.
 */
import { getBytes, hashMessage, keccak256, toUtf8Bytes, Wallet } from 'ethers';
import { delegationText } from '../../src/protocol/delegation.js';
import { canonicalJson, idPreimage, type MessageKind, type MessageType, type RelationMessage, type Tag } from '../../src/protocol/message.js';

export interface Signer {
  wallet: Wallet;
  session: Wallet;
  address: string;
  delegationMessage: string;
  delegationSig: string;
  createdAt: number;
  expiresAt: number;
}

const DAY = 86_400_000;

/** A wallet (from `walletKey`, else random) and a session key delegated over [createdAt, createdAt + lifetime]. */
export function makeSigner(opts: { walletKey?: string; sessionKey?: string; createdAt?: number; lifetimeMs?: number } = {}): Signer {
  const wallet = opts.walletKey ? new Wallet(opts.walletKey) : (Wallet.createRandom() as unknown as Wallet);
  const session = opts.sessionKey ? new Wallet(opts.sessionKey) : (Wallet.createRandom() as unknown as Wallet);
  const createdAt = opts.createdAt ?? 1_767_225_600_000;
  const expiresAt = createdAt + (opts.lifetimeMs ?? 30 * DAY);
  const delegationMessage = delegationText(session.address, createdAt, expiresAt);
  const delegationSig = wallet.signingKey.sign(hashMessage(delegationMessage)).serialized;
  return { wallet, session, address: wallet.address, delegationMessage, delegationSig, createdAt, expiresAt };
}

export interface MessageInput {
  receiver: string;
  timestamp?: number;
  kind?: MessageKind;
  type?: MessageType;
  tags?: Tag[];
  payload?: string;
  encryptedBy?: string;
  encryptedSymmetricKey?: string;
}

/** A message signed by `signer`, valid at its timestamp (default: one hour into the delegation). */
export function signMessage(signer: Signer, input: MessageInput): RelationMessage {
  const base = {
    encryptedBy: input.encryptedBy ?? 'Lit',
    sender: signer.address,
    receiver: input.receiver,
    timestamp: input.timestamp ?? signer.createdAt + 3_600_000,
    kind: input.kind ?? 0,
    tags: input.tags ?? [],
    type: input.type ?? 'TEXT',
    payload: input.payload ?? 'aGVsbG8=',
    encryptedSymmetricKey: input.encryptedSymmetricKey ?? '0xcdcd',
    delegationMessage: signer.delegationMessage,
    delegationSig: signer.delegationSig,
  } as const;
  const m: RelationMessage = { ...base, tags: [...base.tags], id: '', sig: '' };
  m.id = keccak256(toUtf8Bytes(idPreimage(m)));
  m.sig = signer.session.signingKey.sign(hashMessage(getBytes(m.id))).serialized;
  return m;
}

/** The body a store holds for a message (what the archive carries). */
export const bodyOf = canonicalJson;
