import {
  conversationId, ImError, IndexedDbStorage, isImEvent, MlsEncryptor, RelationClient, type Chat, type ConnectionState, type DisconnectInfo,
  type MlsDeviceEntry, type ResumeReport, type ServedItem, type Signer, type UndecryptableInfo,
} from '@relation-im/sdk';

export interface ChatView extends Chat {
  /** Known to be a group (DAO) even before the server lists it. */
  isGroup: boolean;
}

export interface MessageView {
  seq: number;
  id: string | null;
  chatId: string;
  sender: string;
  mine: boolean;
  kind: number;
  text: string;
  quoteId: string | null;
  at: number;
  /** ok: opened (or not encrypted by design); pending: not yet through the MLS engine; undecryptable: reported. */
  status: 'ok' | 'pending' | 'undecryptable';
  /** Why it could not be opened (the SDK's `undecryptable` reason, or "no key on this device"). */
  reason?: string;
}

/** One device of a conversation's encryption group, or of the other side's directory entry. */
export interface DeviceView {
  wallet: string;
  deviceId: string;
  /** Computed here from the group's leaf key when `inGroup`; otherwise as the directory lists it. */
  fingerprint: string;
  inGroup: boolean;
  inDirectory: boolean;
  self: boolean;
}

export interface Undecryptable {
  /** seq -> reason, for the messages of the chat this device could not open. */
  bySeq: Map<number, string>;
}

const UNREADABLE: Record<string, string> = {
  'not-a-member': 'sent before this device joined the conversation\'s encryption group',
  'future-epoch': 'sent after a key change this device has not seen yet; it is rejoining',
  'malformed': 'not a valid MLS message',
  'wrong-group': 'encrypted for another conversation',
  'removed': 'sent after this device was removed from the group',
  'failed': 'the MLS engine could not open it',
  'unsupported': 'encrypted with another scheme than MLS (Lit, or the development plaintext), which this client does not open',
  'no-key': 'no key for it on this device (sent before this device joined, or its state was lost)',
};

export function reasonText(r: string | undefined): string {
  return (r && UNREADABLE[r]) || r || 'unknown reason';
}

export interface DemoInfo {
  identities: { label: string; address: string; name: string; avatar: string; privateKey: string }[];
  dao: { address: string; name: string; owner: string; members: string[] };
}

const PAGE = 30;

/** The web client's state around one RelationClient; components subscribe and re-render on change. */
export class ChatState {
  readonly client: RelationClient;
  conn: ConnectionState = 'idle';
  lastDisconnect: DisconnectInfo | null = null;
  lastResume: ResumeReport | null = null;
  chats: ChatView[] = [];
  open: string | null = null;
  error: string | null = null;
  readonly names = new Map<string, string>();
  private readonly messages = new Map<string, Map<number, MessageView>>();
  private readonly hidden = new Map<string, Set<string>>();
  private readonly offsets = new Map<string, number>();
  readonly exhausted = new Set<string>();
  private readonly extraGroups = new Map<string, string>();
  private listeners = new Set<() => void>();
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  version = 0;
  myName = '';
  /** Per chat: messages this device could not open (the banner). */
  readonly undecryptable = new Map<string, Undecryptable>();
  /** Per chat: the devices panel's content (null while loading). */
  readonly devices = new Map<string, DeviceView[] | null>();
  private readonly storage: IndexedDbStorage;
  private readonly textPrefix: string;

  constructor(signer: Signer, readonly demo: DemoInfo | null) {
    // Session key, token, cursors, outbox and the MLS state (device key, KeyPackages, group ratchets) live
    // in IndexedDB; the SDK's default encryptor is MLS (docs/e2ee.md), so every message is end-to-end encrypted.
    this.storage = new IndexedDbStorage();
    this.client = new RelationClient({ baseUrl: location.origin, signer, storage: this.storage });
    this.textPrefix = `text:${location.origin}:${signer.address.toLowerCase()}:`;
    this.names.set(signer.address.toLowerCase(), 'me');
    if (demo) {
      this.extraGroups.set(demo.dao.address, demo.dao.name);
      for (const id of demo.identities) this.names.set(id.address, id.name || id.label);
    }
    const c = this.client;
    c.on('state', (s) => { this.conn = s; this.changed(); });
    c.on('disconnected', (d) => { this.lastDisconnect = d; this.changed(); });
    c.on('resumed', (r) => {
      this.lastResume = r;
      // The proxy's store was rebuilt (new epoch): seqs were renumbered, so what is on screen is dropped and reloaded.
      if (r.epochReset) this.resetHistory();
      void this.refreshChats();
    });
    c.on('error', (e) => { this.error = `${e.code}: ${e.message}`; this.changed(); });
    c.on('read', () => this.scheduleRefresh());
    c.on('undecryptable', (u) => this.onUndecryptable(u));
    c.on('message', (m) => {
      this.add(m.chatId, m.message);
      if (m.chatId === this.open && !this.isMine(m.message)) void this.markRead(m.chatId);
      this.scheduleRefresh();
    });
  }

  get me(): string {
    return this.client.address.toLowerCase();
  }

  subscribe(f: () => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  private changed(): void {
    this.version++;
    for (const f of this.listeners) f();
  }

  async start(): Promise<void> {
    await this.client.start();
    await this.refreshChats();
    for (const c of this.chats) if (c.isGroup) void this.joinGroup(c.id);
    try {
      this.myName = (await this.client.rest.user(this.me)).name;
      this.changed();
    } catch { /* no name: the address is shown */ }
  }

  private scheduleRefresh(): void {
    if (this.refreshTimer) return;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      void this.refreshChats();
    }, 150);
  }

  async refreshChats(): Promise<void> {
    try {
      const list = await this.client.rest.chats({ limit: 100 });
      const seen = new Set(list.map((c) => c.id));
      const views: ChatView[] = list.map((c) => ({ ...c, isGroup: c.channelType === 'GROUP' || this.extraGroups.has(c.id) }));
      for (const [id, name] of this.extraGroups) {
        if (!seen.has(id)) views.push({ id, name, avatar: '', channelType: 'GROUP', unreadMessageCount: 0, type: 'TEXT', payload: '', lastPostAt: '0', lastSeq: 0, lastReadSeq: 0, muted: false, pinned: false, isGroup: true });
      }
      for (const v of views) if (v.name && !v.isGroup) this.names.set(v.id, v.name);
      this.chats = views;
      this.changed();
    } catch (e) {
      this.fail(e);
    }
  }

  private fail(e: unknown): void {
    this.error = e instanceof ImError ? `${e.code}: ${e.message}` : String(e);
    this.changed();
  }

  isMine(m: ServedItem): boolean {
    return m.sender.toLowerCase() === this.me;
  }

  get encrypted(): boolean {
    return this.client.encryptor instanceof MlsEncryptor;
  }

  /** The MLS conversation id of a chat of the REST face (peer address or DAO). */
  cidOf(chatId: string): string {
    const c = chatId.toLowerCase();
    return this.chat(c)?.isGroup || this.extraGroups.has(c) ? c : conversationId(this.me, c, 0);
  }

  private chatOfCid(cid: string): string {
    if (!cid.startsWith('dm:')) return cid;
    const [, a, b] = cid.split(':') as [string, string, string];
    return a === this.me ? b : a;
  }

  private onUndecryptable(u: UndecryptableInfo): void {
    const chatId = this.chatOfCid(u.chatId);
    const view = this.messages.get(chatId)?.get(u.seq);
    if (view && view.status !== 'ok') {
      view.status = 'undecryptable';
      view.reason = u.reason;
      view.text = `Cannot decrypt this message: ${reasonText(u.reason)}.`;
    }
    this.markUnreadable(chatId, u.seq, u.reason);
    this.changed();
  }

  private markUnreadable(chatId: string, seq: number, reason: string): void {
    let b = this.undecryptable.get(chatId);
    if (!b) this.undecryptable.set(chatId, (b = { bySeq: new Map() }));
    if (!b.bySeq.has(seq)) b.bySeq.set(seq, reason);
  }

  /** The text this device opened earlier, by message id (IndexedDB; the SDK also keeps it by payload since e3e1247, so this is a second copy that can go). */
  private async cachedText(id: string): Promise<string | null> {
    return (await this.storage.get(this.textPrefix + id.toLowerCase())) ?? null;
  }

  private async keepText(id: string, text: string): Promise<void> {
    await this.storage.set(this.textPrefix + id.toLowerCase(), text);
  }

  private add(chatId: string, m: ServedItem): void {
    let map = this.messages.get(chatId);
    if (!map) this.messages.set(chatId, (map = new Map()));
    const had = map.get(m.seq);
    if (had && had.status === 'ok') return;
    if (isImEvent(m)) {
      const text = typeof m.im.data['0'] === 'string' ? (m.im.data['0'] as string) : m.im.k === 3 ? `[file] ${String(m.im.data['1'] ?? '')}` : '';
      map.set(m.seq, { seq: m.seq, id: null, chatId, sender: m.sender.toLowerCase(), mine: this.isMine(m), kind: m.im.k === 3 ? 10 : 0, text: m.im.revokedBy ? '(revoked)' : text, quoteId: null, at: m.receivedAt, status: 'ok' });
      this.changed();
      return;
    }
    // MLS handshakes (commits, proposals, Welcomes) are not chat messages.
    if (m.type === 'MLS') return;
    if (m.kind === 4) {
      const target = m.tags.find((t) => t[0] === 'quoteId')?.[1];
      if (target) {
        let h = this.hidden.get(chatId);
        if (!h) this.hidden.set(chatId, (h = new Set()));
        h.add(target.toLowerCase());
      }
      this.changed();
      return;
    }
    const view: MessageView = had ?? {
      seq: m.seq, id: m.id, chatId, sender: m.sender.toLowerCase(), mine: this.isMine(m), kind: m.kind,
      text: '…', quoteId: m.tags.find((t) => t[0] === 'quoteId')?.[1]?.toLowerCase() ?? null, at: m.receivedAt,
      status: 'pending',
    };
    map.set(m.seq, view);
    if (m.encryptedBy !== 'MLS') {
      // The development plaintext or another scheme: not end-to-end encrypted by this client; said so, not shown as a message.
      view.status = 'undecryptable';
      view.reason = 'unsupported';
      view.text = `Cannot decrypt this message: ${reasonText('unsupported')} [${m.encryptedBy}].`;
      this.markUnreadable(chatId, m.seq, 'unsupported');
      this.changed();
      return;
    }
    void (async () => {
      let t = await this.client.decrypt(m);
      if (t !== null) await this.keepText(m.id, t);
      else t = await this.cachedText(m.id);
      if (t !== null) {
        view.text = t;
        view.status = 'ok';
        delete view.reason;
        this.undecryptable.get(chatId)?.bySeq.delete(m.seq);
      } else if (view.status === 'pending') {
        // Not opened and not kept: still on its way through the connection (after the cursor), or never
        // readable on this device (before it joined, or its state is gone). Never shown as if it were empty.
        const cursor = this.client.cursors.get(chatId) ?? -1;
        const reported = this.undecryptable.get(chatId)?.bySeq.get(m.seq);
        if (m.seq <= cursor || reported) {
          view.status = 'undecryptable';
          view.reason = reported ?? 'no-key';
          view.text = `Cannot decrypt this message: ${reasonText(view.reason)}.`;
          this.markUnreadable(chatId, m.seq, view.reason);
        }
      }
      this.changed();
    })();
    this.changed();
  }

  /** Messages of a chat, oldest first, without the ones hidden by me. */
  list(chatId: string): MessageView[] {
    const h = this.hidden.get(chatId);
    return [...(this.messages.get(chatId)?.values() ?? [])].filter((m) => !(m.id && h?.has(m.id.toLowerCase()))).sort((a, b) => a.seq - b.seq);
  }

  find(chatId: string, id: string): MessageView | undefined {
    return [...(this.messages.get(chatId)?.values() ?? [])].find((m) => m.id?.toLowerCase() === id);
  }

  chat(id: string): ChatView | undefined {
    return this.chats.find((c) => c.id === id);
  }

  private resetHistory(): void {
    this.messages.clear();
    this.hidden.clear();
    this.offsets.clear();
    this.exhausted.clear();
    if (this.open) void this.loadOlder();
    this.changed();
  }

  async openChat(id: string): Promise<void> {
    this.open = id.toLowerCase();
    this.changed();
    void this.loadDevices(this.open);
    if (!this.offsets.has(this.open)) await this.loadOlder();
    await this.markRead(this.open);
  }

  async loadOlder(): Promise<void> {
    const id = this.open;
    if (!id || this.exhausted.has(id)) return;
    const offset = this.offsets.get(id) ?? 0;
    try {
      const page = await this.client.rest.list({ chatId: id, limit: PAGE, offset });
      this.offsets.set(id, offset + page.length);
      if (page.length < PAGE) this.exhausted.add(id);
      for (const m of page) this.add(id, m);
      this.changed();
    } catch (e) {
      this.fail(e);
    }
  }

  async markRead(chatId: string): Promise<void> {
    const last = this.list(chatId).filter((m) => !m.mine && m.id).at(-1);
    const chat = this.chat(chatId);
    if (!last?.id || (chat && chat.unreadMessageCount === 0 && chat.lastReadSeq >= last.seq)) return;
    try {
      await this.client.rest.read(last.id);
      await this.refreshChats();
    } catch (e) {
      this.fail(e);
    }
  }

  async send(text: string, o: { quoteId?: string; announce?: boolean } = {}): Promise<void> {
    const id = this.open;
    if (!id || !text.trim()) return;
    const group = this.chat(id)?.isGroup ?? false;
    try {
      const r = await this.client.send(id, text, { kind: group ? (o.announce ? 3 : 1) : 0, ...(o.quoteId ? { quoteId: o.quoteId } : {}) });
      await this.keepText(r.id, text);
      this.error = null;
      void this.loadDevices(id);
    } catch (e) {
      this.fail(e);
    }
  }

  async hide(m: MessageView): Promise<void> {
    if (!m.id) return;
    try {
      await this.client.hide(m.chatId, m.id);
    } catch (e) {
      this.fail(e);
    }
  }

  async togglePin(c: ChatView): Promise<void> {
    try {
      await (c.pinned ? this.client.rest.unpin(c.id) : this.client.rest.pin(c.id));
      await this.refreshChats();
    } catch (e) { this.fail(e); }
  }

  async toggleMute(c: ChatView): Promise<void> {
    try {
      await (c.muted ? this.client.rest.unmute(c.id) : this.client.rest.mute(c.id));
      await this.refreshChats();
    } catch (e) { this.fail(e); }
  }

  /** Opens a chat with an address: a DAO becomes a group chat, anything else a direct chat. */
  async startChat(address: string): Promise<void> {
    const a = address.trim().toLowerCase();
    if (!/^0x[0-9a-f]{40}$/.test(a)) { this.error = 'enter a 0x address'; this.changed(); return; }
    try {
      const g = await this.client.rest.group(a);
      this.extraGroups.set(a, g.name);
      void this.joinGroup(a);
    } catch (e) {
      if (!(e instanceof ImError) || e.code !== 'NOT_A_GROUP') { this.fail(e); return; }
      void this.lookupName(a);
    }
    await this.refreshChats();
    if (!this.chat(a)) this.chats = [...this.chats, { id: a, name: '', avatar: '', channelType: 'P2P', unreadMessageCount: 0, type: 'TEXT', payload: '', lastPostAt: String(Date.now()), lastSeq: 0, lastReadSeq: 0, muted: false, pinned: false, isGroup: false }];
    await this.openChat(a);
  }

  /**
   * A DAO group: this device joins its MLS group as soon as the client runs (or the group is opened), so it
   * can read what members send from then on; a message sent before it joined is reported, never hidden.
   */
  async joinGroup(id: string): Promise<void> {
    const enc = this.client.encryptor;
    if (!(enc instanceof MlsEncryptor)) return;
    try {
      await enc.join(id, 1);
    } catch (e) {
      this.fail(e);
    }
    if (this.open === id) void this.loadDevices(id);
  }

  /** The newest readable text of a chat on this device (the chat list's preview; never the ciphertext). */
  preview(chatId: string): string {
    const l = this.list(chatId);
    for (let i = l.length - 1; i >= 0; i--) if (l[i]!.status === 'ok') return l[i]!.text;
    return '';
  }

  /**
   * The devices panel: for a direct chat, the other side's devices from the directory (GET /mls/devices)
   * joined with the members of this device's MLS group (fingerprints computed here from the leaf keys);
   * for a group, the group's members. This device is listed too, so both people can compare.
   */
  async loadDevices(chatId: string): Promise<void> {
    const id = chatId.toLowerCase();
    if (!this.devices.has(id)) { this.devices.set(id, null); this.changed(); }
    const enc = this.client.encryptor;
    const members = enc instanceof MlsEncryptor ? (await enc.members(this.cidOf(id)).catch(() => null)) ?? [] : [];
    const out = new Map<string, DeviceView>();
    for (const m of members) out.set(m.deviceId, { wallet: m.wallet, deviceId: m.deviceId, fingerprint: m.fingerprint, inGroup: true, inDirectory: false, self: m.self });
    const group = this.chat(id)?.isGroup ?? false;
    if (!group) {
      let dir: MlsDeviceEntry[] = [];
      try { dir = (await this.client.rest.mlsDevices(id)).devices; } catch { /* directory unavailable: the group's members are still shown */ }
      for (const d of dir) {
        const have = out.get(d.deviceId);
        if (have) have.inDirectory = true;
        else out.set(d.deviceId, { wallet: id, deviceId: d.deviceId, fingerprint: d.fingerprint, inGroup: false, inDirectory: true, self: false });
      }
    }
    this.devices.set(id, [...out.values()].sort((a, b) => Number(b.self) - Number(a.self) || a.wallet.localeCompare(b.wallet) || a.deviceId.localeCompare(b.deviceId)));
    this.changed();
  }

  nameOf(address: string): string {
    const a = address.toLowerCase();
    if (a === this.me) return 'you';
    return this.names.get(a) || `${a.slice(0, 6)}…${a.slice(-4)}`;
  }

  async lookupName(address: string): Promise<void> {
    const a = address.toLowerCase();
    if (this.names.has(a)) return;
    this.names.set(a, '');
    try {
      const p = await this.client.rest.user(a);
      if (p.name) { this.names.set(a, p.name); this.changed(); }
    } catch { /* keep the short address */ }
  }
}
