import type { StoredEvent } from '../store/port.js';

/**
 * A stored Relation ONE message as served: the message exactly as received plus the server's own
 * `seq` and `receivedAt` (SPEC section 3). Built by string concatenation: the stored body is already
 * canonical JSON, so serving it costs no parse.
 */
export function renderMessage(e: StoredEvent): string {
  return `${e.body.slice(0, -1)},"seq":${e.seq},"receivedAt":${e.receivedAt}}`;
}

export function renderMessages(events: readonly StoredEvent[]): string {
  return `[${events.map(renderMessage).join(',')}]`;
}

/** The push frame of a new message, for one side of the chat. */
export function messageFrame(chatId: string, e: StoredEvent, muted: boolean): string {
  return `{"type":"message","chatId":${JSON.stringify(chatId)},"alert":${!muted},"message":${renderMessage(e)}}`;
}
