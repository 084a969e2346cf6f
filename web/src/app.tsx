import { fromEip1193, privateKeySigner, type Eip1193Provider, type Signer } from '@relation-im/sdk';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ChatState, reasonText, type ChatView, type DemoInfo, type MessageView } from './state.js';

function useChatState(s: ChatState | null): number {
  const [, setV] = useState(0);
  useEffect(() => (s ? s.subscribe(() => setV(s.version)) : undefined), [s]);
  return s?.version ?? 0;
}

export function App() {
  const [state, setState] = useState<ChatState | null>(null);
  const [demo, setDemo] = useState<DemoInfo | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    fetch('/dev/demo').then((r) => (r.ok ? r.json() : null)).then((d: DemoInfo | null) => setDemo(d), () => setDemo(null));
  }, []);

  async function signIn(make: () => Promise<Signer>) {
    setBusy(true);
    setError(null);
    try {
      const s = new ChatState(await make(), demo);
      await s.start();
      setState(s);
    } catch (e) {
      setError(e instanceof Error ? `${(e as { code?: string }).code ?? 'ERROR'}: ${e.message}` : String(e));
    } finally {
      setBusy(false);
    }
  }

  if (state) return <Main s={state} />;
  const eth = (window as unknown as { ethereum?: Eip1193Provider }).ethereum;
  return (
    <div class="login">
      <div class="card">
        <h1>Relation IM</h1>
        <p class="muted">Wallet-native chat. Sign in once with your wallet; a session key signs your messages.</p>
        <button data-testid="connect-wallet" disabled={!eth || busy} onClick={() => eth && signIn(() => fromEip1193(eth))}>
          {eth ? 'Connect wallet' : 'No wallet found (window.ethereum)'}
        </button>
        {demo && (
          <div class="demo">
            <h2>Demo identities</h2>
            <p class="warn">Development only: this server runs the embedded demo chain; these keys are public.</p>
            <div class="demo-list">
              {demo.identities.map((id) => (
                <button class="secondary" data-testid={`demo-${id.label}`} disabled={busy} onClick={() => signIn(async () => privateKeySigner(id.privateKey))}>
                  <Avatar address={id.address} name={id.name || id.label} /> {id.name || id.label}
                </button>
              ))}
            </div>
          </div>
        )}
        {error && <p class="error" data-testid="login-error">{error}</p>}
      </div>
    </div>
  );
}

function hue(address: string): number {
  let h = 0;
  for (const ch of address) h = (h * 31 + ch.charCodeAt(0)) % 360;
  return h;
}

function Avatar({ address, name, url }: { address: string; name: string; url?: string }) {
  const [broken, setBroken] = useState(false);
  const initials = (name.replace(/^0x/, '') || '?').slice(0, 2).toUpperCase();
  return (
    <span class="avatar" style={{ background: `hsl(${hue(address)} 55% 48%)` }}>
      {url && /^https?:/.test(url) && !broken ? <img src={url} alt="" onError={() => setBroken(true)} /> : initials}
    </span>
  );
}

function preview(payload: string): string {
  try {
    const bin = atob(payload);
    return new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return '';
  }
}

function ConnectionBadge({ s }: { s: ChatState }) {
  const d = s.lastDisconnect;
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(t);
  }, []);
  void now;
  const label = s.conn === 'connected' ? 'connected' : s.conn === 'connecting' ? 'connecting…' : s.conn === 'disconnected' ? `reconnecting${d?.retryInMs ? ` (in ${Math.ceil(d.retryInMs / 1000)} s)` : '…'}` : s.conn === 'closed' ? `offline${d?.error ? `: ${d.error.code}` : ''}` : s.conn;
  const r = s.lastResume;
  return (
    <span class={`conn conn-${s.conn}`} data-testid="conn" data-state={s.conn} title={r ? `last resume: ${r.recovered} recovered${r.gap ? ', gap' : ''}` : ''}>
      <i /> {label}
      {r && s.conn === 'connected' && r.recovered > 0 && <span class="muted"> · {r.recovered} recovered</span>}
    </span>
  );
}

/** A padlock (inline SVG: no emoji font needed). */
function Lock({ title = 'End-to-end encrypted (MLS)' }: { title?: string }) {
  return (
    <span class="lock" data-testid="lock" title={title} aria-label={title}>
      <svg viewBox="0 0 16 16" width="12" height="12" aria-hidden="true"><path fill="currentColor" d="M4.5 7V5a3.5 3.5 0 0 1 7 0v2h.5A1.5 1.5 0 0 1 13.5 8.5v5A1.5 1.5 0 0 1 12 15H4a1.5 1.5 0 0 1-1.5-1.5v-5A1.5 1.5 0 0 1 4 7h.5Zm1.5 0h4V5a2 2 0 0 0-4 0v2Z" /></svg>
    </span>
  );
}

function ChatItem({ s, c }: { s: ChatState; c: ChatView }) {
  const name = c.name || s.nameOf(c.id);
  // The server's last payload is ciphertext: the preview is the newest text this device opened.
  const text = s.encrypted ? (s.preview(c.id) || (c.lastSeq > 0 ? 'Encrypted message' : '')) : preview(c.payload);
  return (
    <li class={`chat ${s.open === c.id ? 'active' : ''}`} data-testid="chat" data-chat={c.id} onClick={() => void s.openChat(c.id)}>
      <Avatar address={c.id} name={name} url={c.avatar} />
      <div class="chat-main">
        <div class="chat-top">
          {s.encrypted && <Lock />}
          <span class="chat-name">{name}</span>
          {c.isGroup && <span class="tag">group</span>}
          {c.pinned && <span class="tag tag-pin" data-testid="pinned">pinned</span>}
          {c.muted && <span class="tag" data-testid="muted">muted</span>}
        </div>
        <div class="chat-preview muted">{text}</div>
      </div>
      {c.unreadMessageCount > 0 && <span class={`badge ${c.muted ? 'badge-muted' : ''}`} data-testid="unread">{c.unreadMessageCount}</span>}
    </li>
  );
}

function Main({ s }: { s: ChatState }) {
  useChatState(s);
  const [to, setTo] = useState('');
  const chats = s.chats;
  const open = s.open ? s.chat(s.open) : undefined;
  return (
    <div class="layout">
      <aside>
        <header class="me">
          <Avatar address={s.me} name={s.myName || s.me} />
          <div class="me-text">
            <div class="me-name">{s.myName || 'no name'}</div>
            <div class="me-addr" data-testid="me" title={s.me}>{s.me.slice(0, 8)}…{s.me.slice(-6)}</div>
            <ConnectionBadge s={s} />
          </div>
        </header>
        <form class="newchat" onSubmit={(e) => { e.preventDefault(); void s.startChat(to); setTo(''); }}>
          <input data-testid="new-chat" placeholder="Chat with 0x… (person or DAO)" value={to} onInput={(e) => setTo((e.target as HTMLInputElement).value)} />
        </form>
        <ul class="chats" data-testid="chats">
          {chats.map((c) => <ChatItem s={s} c={c} key={c.id} />)}
          {chats.length === 0 && <li class="muted empty">No chats yet.</li>}
        </ul>
      </aside>
      <main>{open ? <Conversation s={s} c={open} key={open.id} /> : <div class="placeholder muted">Pick a chat</div>}</main>
      {s.error && <div class="toast" data-testid="error" onClick={() => { s.error = null; }}>{s.error}</div>}
    </div>
  );
}

function Conversation({ s, c }: { s: ChatState; c: ChatView }) {
  const [text, setText] = useState('');
  const [reply, setReply] = useState<MessageView | null>(null);
  const [announce, setAnnounce] = useState(false);
  const list = s.list(c.id);
  const box = useRef<HTMLDivElement>(null);
  const last = list.at(-1)?.seq;
  useEffect(() => {
    box.current?.scrollTo({ top: box.current.scrollHeight });
  }, [last]);
  useEffect(() => {
    for (const m of list) if (!m.mine) void s.lookupName(m.sender);
  }, [list.length]);
  const name = c.name || s.nameOf(c.id);
  const owner = s.demo && s.demo.dao.address === c.id && s.demo.dao.owner === s.me;
  const [showDevices, setShowDevices] = useState(false);
  const unreadable = s.undecryptable.get(c.id);
  const reasons = unreadable ? [...new Set(unreadable.bySeq.values())] : [];
  return (
    <section class="conv" data-testid="conversation" data-chat={c.id}>
      <header class="conv-head">
        <Avatar address={c.id} name={name} url={c.avatar} />
        <div class="conv-title">
          <b>{name}</b>
          <span class="muted small">{c.isGroup ? 'group' : c.id}</span>
          {s.encrypted
            ? <span class="e2ee small" data-testid="e2ee"><Lock /> End-to-end encrypted</span>
            : <span class="warn small" data-testid="e2ee">Not end-to-end encrypted</span>}
        </div>
        <div class="conv-actions">
          <button class={`ghost ${showDevices ? 'on' : ''}`} data-testid="devices-toggle" onClick={() => { setShowDevices(!showDevices); void s.loadDevices(c.id); }}>Devices</button>
          <button class="ghost" data-testid="pin" onClick={() => void s.togglePin(c)}>{c.pinned ? 'Unpin' : 'Pin'}</button>
          <button class="ghost" data-testid="mute" onClick={() => void s.toggleMute(c)}>{c.muted ? 'Unmute' : 'Mute'}</button>
        </div>
      </header>
      {showDevices && <DevicesPanel s={s} c={c} />}
      {unreadable && unreadable.bySeq.size > 0 && (
        <div class="banner" data-testid="undecryptable-banner" role="alert">
          <b>{unreadable.bySeq.size === 1 ? '1 message' : `${unreadable.bySeq.size} messages`} in this conversation cannot be decrypted on this device.</b>{' '}
          {reasons.map((r) => reasonText(r)).join('; ')}. They are marked below; nothing was dropped.
        </div>
      )}
      <div class="messages" ref={box} data-testid="messages">
        {!s.exhausted.has(c.id) && <button class="ghost older" data-testid="older" onClick={() => void s.loadOlder()}>Load older messages</button>}
        {list.map((m) => {
          const quoted = m.quoteId ? s.find(c.id, m.quoteId) : undefined;
          return (
            <div class={`msg ${m.mine ? 'mine' : ''} ${m.kind === 3 ? 'announcement' : ''} ${m.status === 'undecryptable' ? 'unreadable' : ''}`} data-testid="message" data-seq={m.seq} data-status={m.status} key={m.seq}>
              {!m.mine && c.isGroup && <div class="msg-sender">{s.nameOf(m.sender)}</div>}
              {m.kind === 3 && <div class="msg-label">Announcement</div>}
              {m.quoteId && <div class="quote">{quoted ? `${s.nameOf(quoted.sender)}: ${quoted.text}` : 'a message not loaded'}</div>}
              <div class="msg-text" data-testid="message-text">{m.text}</div>
              <div class="msg-meta">
                <span>{new Date(m.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}</span>
                {m.id && <button class="link" data-testid="reply" onClick={() => setReply(m)}>Reply</button>}
                {m.id && <button class="link" data-testid="hide" onClick={() => void s.hide(m)}>Hide</button>}
              </div>
            </div>
          );
        })}
        {list.length === 0 && <div class="muted empty">No messages yet. Say hello.</div>}
      </div>
      <form class="composer" onSubmit={(e) => {
        e.preventDefault();
        const t = text;
        setText('');
        setReply(null);
        void s.send(t, { ...(reply?.id ? { quoteId: reply.id } : {}), announce });
      }}>
        {reply && <div class="replying" data-testid="replying">Replying to {s.nameOf(reply.sender)}: {reply.text.slice(0, 80)} <button type="button" class="link" onClick={() => setReply(null)}>cancel</button></div>}
        <div class="composer-row">
          {owner && <label class="small"><input type="checkbox" data-testid="announce" checked={announce} onChange={(e) => setAnnounce((e.target as HTMLInputElement).checked)} /> announcement</label>}
          <input data-testid="composer" placeholder={`Message ${name}`} value={text} onInput={(e) => setText((e.target as HTMLInputElement).value)} />
          <button data-testid="send" type="submit" disabled={!text.trim()}>Send</button>
        </div>
        {s.encrypted && <div class="muted small note"><Lock /> Messages are end-to-end encrypted with MLS: only the devices listed under Devices can read them. Compare fingerprints with the other person to verify.</div>}
      </form>
    </section>
  );
}

function DevicesPanel({ s, c }: { s: ChatState; c: ChatView }) {
  const list = s.devices.get(c.id);
  const wallets = list ? [...new Set(list.map((d) => d.wallet))] : [];
  return (
    <div class="devices" data-testid="devices">
      <div class="devices-head">
        <b>Devices that can read this conversation</b>
        <button class="link" data-testid="devices-refresh" onClick={() => void s.loadDevices(c.id)}>refresh</button>
      </div>
      <p class="muted small">Each device has its own key. Ask the other person to read their fingerprints to you (in person or on a call): if they match, nobody else, the server included, can read along.</p>
      {list === null || list === undefined ? <div class="muted small">Loading…</div> : list.length === 0 ? (
        <div class="muted small" data-testid="no-devices">No encryption group yet: it is created with the first message.</div>
      ) : wallets.map((w) => (
        <div class="device-owner" key={w}>
          <div class="small"><b>{s.nameOf(w)}</b> <span class="muted">{w.slice(0, 8)}…{w.slice(-6)}</span></div>
          <ul>
            {list.filter((d) => d.wallet === w).map((d) => (
              <li class="device" data-testid="device" data-device={d.deviceId} data-wallet={d.wallet} data-in-group={String(d.inGroup)} key={d.deviceId}>
                <code class="fingerprint" data-testid="fingerprint">{d.fingerprint}</code>
                <span class="muted small">
                  {d.self ? ' this device' : ''}
                  {d.inGroup ? ' · in the encryption group' : ' · listed by the server, not in the group yet (added with the next message)'}
                </span>
              </li>
            ))}
          </ul>
        </div>
      ))}
    </div>
  );
}
