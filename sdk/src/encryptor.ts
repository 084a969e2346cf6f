import type { MessageKind, RelationMessage, ServedMessage } from './message.js';
import type { RestClient, SendResult } from './rest.js';
import type { SessionManager } from './session.js';
import type { KeyValueStorage } from './storage.js';

/** What an encryptor fills into a message. */
export interface Encrypted {
  encryptedBy: string;
  payload: string;
  encryptedSymmetricKey: string;
}

/**
 * Turns plaintext into a message's `encryptedBy`, `payload` and `encryptedSymmetricKey`, and back.
 * The proxy never reads them. A Lit adapter implements this interface (see docs/sdk.md).
 */
export interface Encryptor {
  encrypt(plaintext: string, to: { sender: string; receiver: string; kind: MessageKind }): Promise<Encrypted>;
  /** The plaintext, or null when this encryptor cannot open the message (another `encryptedBy`). */
  decrypt(message: Pick<RelationMessage, 'encryptedBy' | 'payload' | 'encryptedSymmetricKey' | 'sender' | 'receiver' | 'kind'>): Promise<string | null>;
}

/** What the client gives an encryptor that talks to the Delivery Service (MlsEncryptor). */
export interface EncryptorContext {
  rest: RestClient;
  sessions: SessionManager;
  storage: KeyValueStorage;
  /** The wallet address of this client. */
  address: string;
  /** Storage key namespace (proxy and wallet). */
  namespace: string;
  /** Signs and sends a handshake message (type MLS) now, not through the outbox; throws the server's ImError. */
  sendHandshake(m: { receiver: string; kind: MessageKind; payload: string }): Promise<SendResult>;
  /** Reports a message that cannot be opened (the client's `undecryptable` event). */
  undecryptable(e: { chatId: string; seq: number; id: string; reason: string; detail: string }): void;
}

/** What an encryptor says of an incoming message before the client delivers it. */
export interface IncomingVerdict {
  /** A handshake (MLS proposal or commit): not delivered to the application as a chat message. */
  handshake: boolean;
  /** Set when it could not be opened (an `undecryptable` event was emitted). */
  undecryptable?: string;
}

/**
 * An encryptor with a conversation and the server behind it (MLS): attached to the client, it sees every
 * incoming message of a chat in seq order before delivery.
 */
export interface MessageEncryptor extends Encryptor {
  attach(ctx: EncryptorContext): void;
  receive(chatId: string, m: ServedMessage): Promise<IncomingVerdict>;
  /** Called once by `start()` (uploads KeyPackages). */
  uploadKeyPackages?(): Promise<void>;
  onKeyPackagesLow?(deviceId?: string | null): void | Promise<void>;
  /** Called with the store epoch of every connection; a change means a proxy rebuilt from the archive. */
  onStoreEpoch?(epoch: string | null): Promise<void>;
}

export function isMessageEncryptor(e: Encryptor): e is MessageEncryptor {
  return typeof (e as Partial<MessageEncryptor>).attach === 'function' && typeof (e as Partial<MessageEncryptor>).receive === 'function';
}

/** The `encryptedBy` of the development encryptor: anyone (the proxy included) can read these payloads. */
export const DEV_ENCRYPTED_BY = 'dev-plaintext-NOT-end-to-end-encrypted';

function toBase64(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

function fromBase64(s: string): string {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new TextDecoder().decode(bytes);
}

/**
 * For development and tests only: base64 of the UTF-8 text, no key. Its `encryptedBy` says plainly that
 * this is NOT end-to-end encryption; never use it for real conversations.
 */
export class DevEncryptor implements Encryptor {
  async encrypt(plaintext: string, _to?: { sender: string; receiver: string; kind: MessageKind }): Promise<Encrypted> {
    return { encryptedBy: DEV_ENCRYPTED_BY, payload: toBase64(plaintext), encryptedSymmetricKey: '' };
  }

  async decrypt(m: Pick<RelationMessage, 'encryptedBy' | 'payload'>): Promise<string | null> {
    if (m.encryptedBy !== DEV_ENCRYPTED_BY) return null;
    try {
      return fromBase64(m.payload);
    } catch {
      return null;
    }
  }
}
