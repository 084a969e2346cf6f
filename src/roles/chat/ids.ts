/** Conversation ids (SPEC section 6): a DAO address for a group, `dm:<lower>:<higher>` for a direct chat. */
export function dmCid(a: string, b: string): string {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x <= y ? `dm:${x}:${y}` : `dm:${y}:${x}`;
}

export function isDmCid(cid: string): boolean {
  return cid.startsWith('dm:');
}

/** Both participants of a direct chat id. */
export function dmParticipants(cid: string): [string, string] | null {
  const m = /^dm:(0x[0-9a-f]{40}):(0x[0-9a-f]{40})$/.exec(cid);
  return m ? [m[1] as string, m[2] as string] : null;
}

/** The chat id a REST client sees: the peer's address for a direct chat, the DAO address for a group. */
export function chatIdFor(cid: string, viewer: string): string {
  const p = dmParticipants(cid);
  if (!p) return cid;
  return p[0] === viewer ? p[1] : p[0];
}
