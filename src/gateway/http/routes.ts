import express, { type NextFunction, type Request, type Response } from 'express';
import { AppError } from '../../errors/app-error.js';
import type { AuthService, Session } from '../../roles/auth/auth-service.js';
import type { ChatService } from '../../roles/chat/chat-service.js';
import type { SocialService } from '../../roles/chat/social-service.js';
import { renderMessages } from '../../roles/chat/render.js';
import type { Logger } from '../../log/logger.js';
import { clientAddress } from '../edge/address.js';
import type { RateLimits } from '../edge/rate-limits.js';
import { readJsonBody } from './body.js';
import { sendError, sendJson } from './respond.js';
import { openapiJson } from './openapi.js';
import { ADDRESS, CHAT_ID, intParam, MESSAGE_ID, strParam } from './query.js';

export interface RouteDeps {
  auth: AuthService;
  chats: ChatService;
  social: SocialService;
  log: Logger;
  maxBodyBytes: number;
  listMaxLimit: number;
  health: () => Record<string, unknown>;
  /** The store's epoch (Store.epoch), sent as the X-Store-Epoch header of the list answers. */
  epoch: () => string;
  /** Deadline of a JSON body once the headers arrived (HTTP_BODY_TIMEOUT_MS). */
  bodyTimeoutMs?: number;
  /** Per-address limits of the sign-in endpoints. */
  limits?: RateLimits;
  /** Mounted before the 404 handler (the operator endpoints). */
  extra?: express.Router;
  /** The MLS Delivery Service's endpoints (docs/e2ee.md section 5). */
  mls?: express.Router;
}

type Handler = (req: Request, res: Response) => Promise<void>;
type AuthedHandler = (req: Request, res: Response, session: Session) => Promise<void>;

/** The store's epoch on list answers, whose bodies are bare arrays (a header keeps them as they are). */
export const EPOCH_HEADER = 'X-Store-Epoch';

const LOGIN_FIELDS = new Set(['message', 'signature', 'delegationMessage', 'delegationSig']);

/** The REST face except `POST /message/send`, which the fast path serves (see fast-send.ts). */
export function buildRoutes(deps: RouteDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');

  const wrap = (h: Handler) => (req: Request, res: Response, next: NextFunction): void => {
    h(req, res).catch(next);
  };
  const authed = (h: AuthedHandler): ReturnType<typeof wrap> =>
    wrap(async (req, res) => {
      const header = req.headers.authorization;
      const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
      const session = await deps.auth.authenticate(token);
      await h(req, res, session);
    });
  const page = (req: Request): { limit: number; offset: number } => ({
    limit: intParam(req.query, 'limit', 50, 1, deps.listMaxLimit) as number,
    offset: intParam(req.query, 'offset', 0, 0, 1_000_000) as number,
  });

  app.get('/health', (_req, res) => sendJson(res, 200, JSON.stringify(deps.health())));
  // The REST reference (docs/openapi.yaml), converted once here so a broken file fails at start.
  const openapi = openapiJson();
  app.get('/openapi.json', (_req, res) => sendJson(res, 200, openapi));

  const limit = (name: 'nonce' | 'login', req: Request): Promise<void> => {
    const address = clientAddress(req.socket);
    return deps.limits ? deps.limits.take(name, address, address) : Promise.resolve();
  };

  app.get('/auth/nonce', wrap(async (req, res) => {
    await limit('nonce', req);
    sendJson(res, 200, JSON.stringify(await deps.auth.nonce()));
  }));

  app.post('/auth/login', wrap(async (req, res) => {
    await limit('login', req);
    const body = await readJsonBody(req, deps.maxBodyBytes, deps.bodyTimeoutMs);
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AppError('INVALID_FIELD', 'body must be an object');
    const o = body as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!LOGIN_FIELDS.has(k)) throw new AppError('UNKNOWN_FIELD', `unknown field "${k.slice(0, 64)}"`);
    for (const k of LOGIN_FIELDS) {
      const v = o[k];
      if (v !== undefined && (typeof v !== 'string' || v.length > 8192)) throw new AppError('INVALID_FIELD', `${k} must be a string`, { field: k });
    }
    if (typeof o['message'] !== 'string' || typeof o['signature'] !== 'string') throw new AppError('INVALID_FIELD', 'message and signature are required');
    const result = await deps.auth.login(o as { message: string; signature: string }, req.headers.host);
    sendJson(res, 200, JSON.stringify(result));
  }));

  app.post('/auth/logout', authed(async (_req, res, s) => {
    await deps.auth.logout(s);
    res.status(204).end();
  }));

  app.get('/message/list', authed(async (req, res, s) => {
    const chatId = strParam(req.query, 'chatId', CHAT_ID);
    const afterSeq = intParam(req.query, 'afterSeq', undefined, 0, Number.MAX_SAFE_INTEGER);
    if (afterSeq !== undefined && chatId === undefined) throw new AppError('INVALID_FIELD', 'afterSeq needs chatId', { field: 'afterSeq' });
    const events = await deps.chats.list(s.address, { ...page(req), ...(chatId ? { chatId } : {}), ...(afterSeq !== undefined ? { afterSeq } : {}) });
    res.setHeader(EPOCH_HEADER, deps.epoch());
    sendJson(res, 200, renderMessages(events));
  }));

  app.post('/message/read', authed(async (req, res, s) => {
    const messageId = strParam(req.query, 'messageId', MESSAGE_ID, true);
    sendJson(res, 200, JSON.stringify(await deps.chats.markRead(s.address, messageId)));
  }));

  app.get('/message/unreadCount', authed(async (req, res, s) => {
    const chatId = strParam(req.query, 'chatId', CHAT_ID);
    sendJson(res, 200, String(await deps.chats.unreadCount(s.address, chatId)));
  }));

  app.get('/chats/list', authed(async (req, res, s) => {
    const chats = await deps.chats.chats(s.address, page(req));
    res.setHeader(EPOCH_HEADER, deps.epoch());
    sendJson(res, 200, JSON.stringify(chats));
  }));

  const chatFlag = (apply: (viewer: string, chatId: string) => Promise<void>): ReturnType<typeof wrap> =>
    authed(async (req, res, s) => {
      await apply(s.address, strParam(req.query, 'chatId', CHAT_ID, true));
      res.status(204).end();
    });
  app.post('/chats/mute', chatFlag((v, c) => deps.chats.setMuted(v, c, true)));
  app.post('/chats/unmute', chatFlag((v, c) => deps.chats.setMuted(v, c, false)));
  app.post('/chats/pin', chatFlag((v, c) => deps.chats.setPinned(v, c, true)));
  app.post('/chats/unpin', chatFlag((v, c) => deps.chats.setPinned(v, c, false)));

  // Relations (names, follows, groups, roles).
  const address = (req: Request, name: string): string => {
    const v = req.params[name];
    if (typeof v !== 'string' || !ADDRESS.test(v)) throw new AppError('INVALID_FIELD', `${name} must be an address`, { field: name });
    return v.toLowerCase();
  };
  const json = (res: Response, value: unknown): void => sendJson(res, 200, JSON.stringify(value));
  app.get('/users/:address', authed(async (req, res) => json(res, await deps.social.profile(address(req, 'address')))));
  app.get('/users/:address/friends', authed(async (req, res) => json(res, await deps.social.friends(address(req, 'address')))));
  app.get('/users/:address/following', authed(async (req, res) => json(res, await deps.social.following(address(req, 'address')))));
  app.get('/users/:address/followers', authed(async (req, res) => json(res, await deps.social.followers(address(req, 'address')))));
  app.get('/groups/:address', authed(async (req, res) => json(res, await deps.social.group(address(req, 'address')))));
  app.get('/groups/:address/members', authed(async (req, res, s) => json(res, await deps.social.members(address(req, 'address'), s.address))));
  app.put('/groups/:address/admins/:user', authed(async (req, res, s) => {
    await deps.social.setAdmin(address(req, 'address'), s.address, address(req, 'user'), true);
    res.status(204).end();
  }));
  app.delete('/groups/:address/admins/:user', authed(async (req, res, s) => {
    await deps.social.setAdmin(address(req, 'address'), s.address, address(req, 'user'), false);
    res.status(204).end();
  }));

  if (deps.mls) app.use(deps.mls);
  if (deps.extra) app.use(deps.extra);
  app.use((_req, _res, next) => next(new AppError('NOT_FOUND')));
  // Express recognises an error handler by its four parameters.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    req.resume(); // a refused request's unread body is drained, not left to stall the connection
    sendError(res, err, deps.log.child({ reqId: (req as { id?: string }).id }));
  });
  return app;
}
