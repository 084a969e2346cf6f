import {
  DevEncryptor, ImError, isImEvent, LocalStorage, RelationClient, type Chat, type ConnectionState, type DisconnectInfo,
  type ResumeReport, type ServedItem, type Signer,
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
}

export interface DemoInfo {
  identities: { label: string; address: string; name: string; avatar: string; privateKey: string }[];
  dao: { address: string; name: string; owner: string; members: string[] };
}

const PAGE = 30;
const dev = new DevEncryptor();

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

  constructor(signer: Signer, readonly demo: DemoInfo | null) {
    this.client = new RelationClient({ baseUrl: location.origin, signer, storage: new LocalStorage() });
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

  private add(chatId: string, m: ServedItem): void {
    let map = this.messages.get(chatId);
    if (!map) this.messages.set(chatId, (map = new Map()));
    if (map.has(m.seq)) return;
    if (isImEvent(m)) {
      const text = typeof m.im.data['0'] === 'string' ? (m.im.data['0'] as string) : m.im.k === 3 ? `[file] ${String(m.im.data['1'] ?? '')}` : '';
      map.set(m.seq, { seq: m.seq, id: null, chatId, sender: m.sender.toLowerCase(), mine: this.isMine(m), kind: m.im.k === 3 ? 10 : 0, text: m.im.revokedBy ? '(revoked)' : text, quoteId: null, at: m.receivedAt });
      this.changed();
      return;
    }
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
    const view: MessageView = {
      seq: m.seq, id: m.id, chatId, sender: m.sender.toLowerCase(), mine: this.isMine(m), kind: m.kind,
      text: m.encryptedBy === 'Lit' ? '[encrypted with Lit]' : '…', quoteId: m.tags.find((t) => t[0] === 'quoteId')?.[1]?.toLowerCase() ?? null, at: m.receivedAt,
    };
    map.set(m.seq, view);
    void dev.decrypt(m).then((t) => {
      if (t !== null) view.text = t;
      else if (m.encryptedBy !== 'Lit') view.text = `[encrypted: ${m.encryptedBy}]`;
      this.changed();
    });
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
      await this.client.send(id, text, { kind: group ? (o.announce ? 3 : 1) : 0, ...(o.quoteId ? { quoteId: o.quoteId } : {}) });
      this.error = null;
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
    } catch (e) {
      if (!(e instanceof ImError) || e.code !== 'NOT_A_GROUP') { this.fail(e); return; }
      void this.lookupName(a);
    }
    await this.refreshChats();
    if (!this.chat(a)) this.chats = [...this.chats, { id: a, name: '', avatar: '', channelType: 'P2P', unreadMessageCount: 0, type: 'TEXT', payload: '', lastPostAt: String(Date.now()), lastSeq: 0, lastReadSeq: 0, muted: false, pinned: false, isGroup: false }];
    await this.openChat(a);
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
