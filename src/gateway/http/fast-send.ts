import type { IncomingMessage, ServerResponse } from 'node:http';
import type { MessageService, SubmitResult } from '../../roles/chat/message-service.js';
import { requestAddress } from '../edge/address.js';
import type { RateLimits } from '../edge/rate-limits.js';
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
 * itself at this rate (Express ~5k req/s here, node:http 27-40k). The per-address send limit is counted
 * before the body is read; the per-user one after the signatures verified (MessageService).
 */
export function fastSend(messages: MessageService, maxBodyBytes: number, log: Logger, limits?: RateLimits, bodyTimeoutMs?: number, meter?: SendMeter) {
  return (req: IncomingMessage, res: ServerResponse, requestLog: () => Logger = () => log): void => {
    const address = requestAddress(req);
    const admitted = limits && !limits.isExempt(address) ? limits.take('send', address, address) : Promise.resolve();
    admitted
      .then(() => readJsonBody(req, maxBodyBytes, bodyTimeoutMs))
      .then((body) => messages.submit(body, { clientAddress: address }))
      .then((r) => {
        meter?.accepted();
        sendJson(res, 200, sendAnswer(r));
      })
      .catch((e: unknown) => {
        req.resume();
        meter?.refused(toAppError(e).code);
        sendError(res, e, requestLog());
      });
  };
}
