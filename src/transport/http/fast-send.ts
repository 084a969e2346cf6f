import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MessageService, SubmitResult } from '../../chat/message-service.js';
import type { Logger } from '../../log/logger.js';
import type { SendMeter } from '../../metrics/metrics.js';
import { toAppError } from '../../errors/app-error.js';
import { readJsonBody } from './body.js';
import { sendError, sendJson } from './respond.js';

/** The answer to a send: the same for the first delivery and every resend of the id. */
export function sendAnswer(r: SubmitResult): string {
  return `{"id":"${r.id}","chatId":${JSON.stringify(r.chatId)},"seq":${r.seq},"receivedAt":${r.receivedAt}}`;
}

/**
 * `POST /message/send` on bare node:http. It is the hot path, needs no token (the message's signatures
 * authenticate it) and nothing from Express's middleware stack, which costs several times the request
 * itself at this rate (Express ~5k req/s here, node:http 27-40k).
 */
export function fastSend(messages: MessageService, maxBodyBytes: number, log: Logger, meter?: SendMeter) {
  return (req: IncomingMessage, res: ServerResponse, requestLog: () => Logger = () => log): void => {
    readJsonBody(req, maxBodyBytes)
      .then((body) => messages.submit(body))
      .then((r) => {
        meter?.accepted();
        sendJson(res, 200, sendAnswer(r));
      })
      .catch((e: unknown) => {
        meter?.refused(toAppError(e).code);
        sendError(res, e, requestLog());
      });
  };
}
