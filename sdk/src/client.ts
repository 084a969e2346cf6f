import { Auth } from './auth.js';
import { Connection, type ConnectionEvents, type IncomingMessage } from './connection.js';
import { CursorStore } from './cursors.js';
import { isMessageEncryptor, type Encryptor } from './encryptor.js';
import { MlsEncryptor } from './mls/mls-encryptor.js';
import { ImError, isImError } from './errors.js';
import type { FetchLike } from './http.js';
import { ImConnection } from './im.js';
import type { LiveOptions, WebSocketCtor } from './live.js';
import { buildMessage, isImEvent, type MessageKind, type MessageType, type RelationMessage, type ServedItem, type Tag } from './message.js';
import { Outbox } from './outbox.js';
import { RestClient, type SendResult } from './rest.js';
import { SessionManager } from './session.js';
import type { Signer } from './signer.js';
import { MemoryStorage, type KeyValueStorage } from './storage.js';

export interface ClientOptions {
  /** The proxy, e.g. `http://localhost:8080` (in a page it serves: `location.origin`). */
  baseUrl: string;
  signer: Signer;
  /** Session key, token, cursors and outbox live here (default: memory; in a page use `new LocalStorage()`). */
  storage?: KeyValueStorage;
  /** A WebSocket class; default the global one (browsers, Node 22+). In Node 20 pass `ws`'s. */
  WebSocket?: WebSocketCtor;
  fetch?: FetchLike;
  /**
   * Default: MLS end-to-end encryption (`MlsEncryptor`, docs/e2ee.md). The `DevEncryptor` (NOT end-to-end
   * encryption) only when passed here, and only against a server started with ALLOW_DEV_PLAINTEXT=true.
   */
  encryptor?: Encryptor;
  /** Session-key lifetime (default 7 days; the server allows at most MAX_DELEGATION_MS). */
  sessionLifetimeMs?: number;
  /** Log in with the session key (default, one wallet prompt per session) or the wallet (a prompt per login). */
  loginWith?: 'session' | 'wallet';
  /** SIWE domain when the proxy is reached under another host than the one it checks (SIWE_DOMAINS). */
  siweDomain?: string;
  live?: Omit<LiveOptions, 'url' | 'WebSocket'>;
}

export interface SendOptions {
  kind?: MessageKind;
  type?: MessageType;
  /** Reply to (quote) a message id. */
  quoteId?: string;
  mentionedUsers?: string[];
  tags?: Tag[];
}

/**
 * Everything together: session keys, login, REST, the live `/ws` connection with resume, the outbox,
 * and (on demand) the `/im` face. `start()` connects; messages arrive as `on('message')` and `messages()`.
 */
export class RelationClient {
  readonly storage: KeyValueStorage;
  readonly sessions: SessionManager;
  readonly auth: Auth;
  readonly rest: RestClient;
  readonly cursors: CursorStore;
  readonly connection: Connection;
  readonly outbox: Outbox;
  readonly encryptor: Encryptor;
  private kpTimer: ReturnType<typeof setInterval> | undefined;
  private imConn: ImConnection | null = null;
  /** Receivers known to be a DAO group (true) or a person (false): `send` picks the kind from it. */
  private readonly groupKnown = new Map<string, boolean>();

  constructor(readonly opts: ClientOptions) {
    this.storage = opts.storage ?? new MemoryStorage();
    const http = { baseUrl: opts.baseUrl, ...(opts.fetch ? { fetch: opts.fetch } : {}) };
    this.sessions = new SessionManager({ signer: opts.signer, storage: this.storage, ...(opts.sessionLifetimeMs ? { lifetimeMs: opts.sessionLifetimeMs } : {}) });
    this.auth = new Auth({ ...http, signer: opts.signer, storage: this.storage, ...(opts.loginWith === 'wallet' ? {} : { sessions: this.sessions }), ...(opts.siweDomain ? { domain: opts.siweDomain } : {}) });
    this.rest = new RestClient(http, this.auth);
    const me = opts.signer.address.toLowerCase();
    this.cursors = new CursorStore(this.storage, `cursors:${opts.baseUrl}:${me}`);
    const encryptor = (this.encryptor = opts.encryptor ?? new MlsEncryptor());
    const inspect = isMessageEncryptor(encryptor)
      ? async (m: IncomingMessage): Promise<boolean> => (isImEvent(m.message) ? true : !(await encryptor.receive(m.chatId, m.message)).handshake)
      : undefined;
    this.connection = new Connection({ ...(opts.live ?? {}), url: wsUrl(opts.baseUrl, '/ws'), ...(opts.WebSocket ? { WebSocket: opts.WebSocket } : {}), auth: this.auth, rest: this.rest, cursors: this.cursors, ...(inspect ? { inspect } : {}) });
    this.outbox = new Outbox({
      storage: this.storage, key: `outbox:${opts.baseUrl}:${me}`,
      transport: (m) => (this.connection.connected ? this.connection.sendFrame(m) : this.rest.send(m)),
    });
    this.connection.on('connected', () => this.outbox.kick());
    if (isMessageEncryptor(encryptor)) {
      encryptor.attach({
        rest: this.rest, sessions: this.sessions, storage: this.storage, address: me, namespace: `${opts.baseUrl}:${me}`,
        sendHandshake: async (h) => {
          const session = await this.sessions.get();
          const m = buildMessage(session, { receiver: h.receiver, kind: h.kind, type: 'MLS', payload: h.payload, encryptedBy: 'MLS', encryptedSymmetricKey: '' });
          return this.connection.connected ? this.connection.sendFrame(m) : this.rest.send(m);
        },
        undecryptable: (u) => this.connection.reportUndecryptable(u),
      });
      this.connection.on('keyPackagesLow', (e) => { void encryptor.onKeyPackagesLow?.(e.deviceId); });
      // A proxy rebuilt from the archive has a new store epoch: the encryptor uploads again what the
      // archive does not hold (docs/e2ee.md section 8).
      const onEpoch = encryptor.onStoreEpoch?.bind(encryptor);
      if (onEpoch) this.connection.on('connected', (c) => void onEpoch(c.epoch).catch((err: unknown) => this.connection.reportError(err)));
    }
  }

  get address(): string {
    return this.opts.signer.address;
  }

  /** Connects `/ws` (resuming from stored cursors) and resends what the outbox kept. */
  async start(): Promise<void> {
    await this.cursors.load();
    this.connection.start();
    // This device's KeyPackages are in the directory before anyone needs them (first run; later the
    // server's mls.keyPackagesLow push and the upload answers top them up).
    if (this.encryptor instanceof MlsEncryptor) {
      const enc = this.encryptor;
      // Repeated while the client runs (a device connected for weeks renews before its packages expire;
      // a failed first upload is retried). Not keeping a Node process alive on its own.
      if (!this.kpTimer) {
        this.kpTimer = setInterval(() => { enc.maintainKeyPackages().catch((err: unknown) => this.connection.reportError(err)); }, enc.keyPackageCheckMs);
        (this.kpTimer as { unref?: () => void }).unref?.();
      }
      // The first upload (its failure rejects start), or: packages uploaded before with less than 7 days
      // left, the last-resort one too, are replaced (docs/e2ee.md section 5); a failed renewal is reported
      // and retried at the next check, start or keyPackagesLow.
      await enc.maintainKeyPackages((err) => this.connection.reportError(err));
    }
    await this.outbox.start();
  }

  on<K extends keyof ConnectionEvents>(event: K, h: (v: ConnectionEvents[K]) => void): () => void {
    return this.connection.on(event, h);
  }

  messages(): AsyncIterableIterator<IncomingMessage> {
    return this.connection.messages();
  }

  /** Encrypts, signs and queues a message; resolves once the server has it durably. */
  async send(receiver: string, text: string, o: SendOptions = {}): Promise<SendResult> {
    const m = await this.prepare(receiver, text, o);
    return this.outbox.send(m);
  }

  /** Builds the signed message without sending it. */
  async prepare(receiver: string, text: string, o: SendOptions = {}): Promise<RelationMessage> {
    const session = await this.sessions.get();
    const kind = o.kind ?? ((await this.isGroup(receiver)) ? 1 : 0);
    const enc = await this.encryptor.encrypt(text, { sender: this.address, receiver, kind });
    const tags: Tag[] = [...(o.tags ?? [])];
    if (o.quoteId) tags.push(['quoteId', o.quoteId]);
    if (o.mentionedUsers?.length) tags.push(['mentionedUsers', o.mentionedUsers.join(',')]);
    return buildMessage(session, { receiver, kind, type: o.type ?? (kind === 3 ? 'ANNOUNCEMENT' : 'TEXT'), tags, ...enc });
  }

  /**
   * Whether an address is a DAO group: from the chat list, else the group endpoint (a person or any
   * other contract answers NOT_A_GROUP). Remembered per address.
   */
  async isGroup(address: string): Promise<boolean> {
    const a = address.toLowerCase();
    const known = this.groupKnown.get(a);
    if (known !== undefined) return known;
    let group = false;
    try {
      const chats = await this.rest.chats({ limit: 50 });
      for (const c of chats) if (c.channelType === 'GROUP') this.groupKnown.set(c.id.toLowerCase(), true);
      if (this.groupKnown.get(a)) return true;
      await this.rest.group(a);
      group = true;
    } catch (e) {
      if (!isImError(e)) throw e;
      if (e.temporary) throw e;
      group = false;
    }
    this.groupKnown.set(a, group);
    return group;
  }

  /** Hides a message for oneself (kind 4 with its `quoteId`); `chatPeer` is the peer's address or the DAO. */
  async hide(chatPeer: string, messageId: string): Promise<SendResult> {
    const session = await this.sessions.get();
    return this.outbox.send(buildMessage(session, { receiver: chatPeer, kind: 4, tags: [['quoteId', messageId]], payload: '', encryptedBy: 'none' }));
  }

  /**
   * The text of a served item: a Relation ONE message decrypted with the client's encryptor (null: not for
   * this encryptor, a handshake, or an MLS message this device did not open — MLS opens a message once,
   * when it arrives in seq order; the text is kept in memory for this call), or the text of a `/im` text event as the REST face serves it (null for other kinds).
   */
  async decrypt(m: RelationMessage | ServedItem): Promise<string | null> {
    if ('im' in m) return typeof m.im.data['0'] === 'string' ? m.im.data['0'] : null;
    return this.encryptor.decrypt(m);
  }

  /** The `/im` face on the same login (created on first use; call `.start()` on it). */
  im(): ImConnection {
    this.imConn ??= new ImConnection({
      ...(this.opts.live ?? {}), url: wsUrl(this.opts.baseUrl, '/im'), ...(this.opts.WebSocket ? { WebSocket: this.opts.WebSocket } : {}),
      auth: this.auth, cursors: new CursorStore(this.storage, `im-cursors:${this.opts.baseUrl}:${this.address.toLowerCase()}`),
      ...(this.opts.fetch ? { fetch: this.opts.fetch } : {}),
    });
    return this.imConn;
  }

  async logout(): Promise<void> {
    this.close();
    await this.auth.logout();
  }

  close(): void {
    if (this.kpTimer) clearInterval(this.kpTimer);
    this.kpTimer = undefined;
    this.outbox.stop();
    this.connection.close();
    this.imConn?.close();
  }
}

export function wsUrl(baseUrl: string, path: string): string {
  const u = new URL(baseUrl);
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ImError('INVALID_ARGUMENT', 'baseUrl must be http(s)');
  return `${u.protocol === 'https:' ? 'wss:' : 'ws:'}//${u.host}${path}`;
}
