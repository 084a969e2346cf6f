import type { PushItem } from '../../bus/hub.js';
import { Face, type StoredEvent } from '../../store/port.js';
import { chatIdFor } from './ids.js';

/**
 * A stored Relation ONE message as served: the message exactly as received plus the server's own
 * `seq` and `receivedAt` (SPEC section 3). Built by string concatenation: the stored body is already
 * canonical JSON, so serving it costs no parse.
 *
 * A chat message of the MsgPack face (text, file) is served on the JSON face as
 * `{"im":{"cid","mid","k","tags","data"[,"revokedBy"]},"sender","timestamp","seq","receivedAt"}`, so a
 * REST client sees every chat message of the conversation; `im` tells it apart from a signed message.
 */
export function renderMessage(e: StoredEvent): string {
  if (e.face === Face.IM) return renderImMessage(e);
  return `${e.body.slice(0, -1)},"seq":${e.seq},"receivedAt":${e.receivedAt}}`;
}

function renderImMessage(e: StoredEvent): string {
  const body = JSON.parse(e.body) as { k?: unknown; tags?: unknown; data?: unknown };
  const im = {
    cid: e.cid, mid: e.seq, k: body.k ?? e.kind, tags: body.tags ?? [], data: e.revokedBy !== undefined ? {} : body.data ?? {},
    ...(e.revokedBy !== undefined ? { revokedBy: e.revokedBy } : {}),
  };
  return `{"im":${JSON.stringify(im)},"sender":${JSON.stringify(e.sender)},"timestamp":${e.ts},"seq":${e.seq},"receivedAt":${e.receivedAt}}`;
}

export function renderMessages(events: readonly StoredEvent[]): string {
  return `[${events.map(renderMessage).join(',')}]`;
}

/** The push frame of a new message, for one side of the chat. */
export function messageFrame(chatId: string, e: StoredEvent, muted: boolean): string {
  return `{"type":"message","chatId":${JSON.stringify(chatId)},"alert":${!muted},"message":${renderMessage(e)}}`;
}

/**
 * The push that tells a user's devices their read marker in `cid` moved to `seq`, whichever face moved it
 * (POST /message/read or an /im ACK): /ws gets `{"type":"read","chatId","lastReadSeq"}`, /im a READ_PUSH.
 * `origin`, the connection that sent the ACK, is left out.
 */
export function readPush(viewer: string, cid: string, seq: number, origin?: object): PushItem {
  const frame = JSON.stringify({ type: 'read', chatId: chatIdFor(cid, viewer), lastReadSeq: seq });
  return origin === undefined ? { frame, read: { cid, seq } } : { frame, read: { cid, seq }, origin };
}
