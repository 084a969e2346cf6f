import { getBytes, keccak256, toUtf8Bytes, Wallet } from 'ethers';
import { delegationText } from '../../src/protocol/delegation.js';
import { idPreimage, type MessageKind, type MessageType, type RelationMessage, type Tag } from '../../src/protocol/message.js';

/** A wallet with a delegated session key, as the browser extension holds it. */
export interface Identity {
  wallet: Wallet;
  session: Wallet;
  address: string;
  delegationMessage: string;
  delegationSig: string;
}

export function makeIdentity(opts: { wallet?: Wallet; createdAt?: number; expiresAt?: number } = {}): Identity {
  const wallet = opts.wallet ?? Wallet.createRandom();
  const session = Wallet.createRandom();
  const createdAt = opts.createdAt ?? Date.now() - 60_000;
  const expiresAt = opts.expiresAt ?? createdAt + 86_400_000;
  const delegationMessage = delegationText(session.address, createdAt, expiresAt);
  return {
    wallet: new Wallet(wallet.privateKey),
    session: new Wallet(session.privateKey),
    address: wallet.address,
    delegationMessage,
    delegationSig: wallet.signMessageSync(delegationMessage),
  };
}

export interface MessageFields {
  receiver: string;
  kind?: MessageKind;
  type?: MessageType;
  payload?: string;
  tags?: Tag[];
  timestamp?: number;
  encryptedSymmetricKey?: string;
}

/** A correctly signed Relation ONE message from `from` (id and sig computed as SPEC section 2 says). */
export function signedMessage(from: Identity, f: MessageFields): RelationMessage {
  const unsigned: RelationMessage = {
    id: '',
    encryptedBy: 'Lit',
    sender: from.address,
    receiver: f.receiver,
    timestamp: f.timestamp ?? Date.now(),
    kind: f.kind ?? 0,
    tags: f.tags ?? [],
    type: f.type ?? 'TEXT',
    payload: f.payload ?? `ciphertext-${Math.random().toString(36).slice(2)}`,
    encryptedSymmetricKey: f.encryptedSymmetricKey ?? '0xabcdef',
    delegationMessage: from.delegationMessage,
    delegationSig: from.delegationSig,
    sig: '',
  };
  return resign(from, unsigned);
}

/** Recomputes id and sig after a test changed fields (so only the change under test is wrong). */
export function resign(from: Identity, m: RelationMessage): RelationMessage {
  const id = keccak256(toUtf8Bytes(idPreimage(m)));
  return { ...m, id, sig: from.session.signMessageSync(getBytes(id)) };
}
