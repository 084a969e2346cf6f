import { createHash, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { BanList } from '../edge/bans.js';
import { AppError } from '../../errors/app-error.js';
import type { Logger } from '../../log/logger.js';
import { readJsonBody } from './body.js';
import { sendJson } from './respond.js';

export interface AdminDeps {
  bans: BanList;
  /** OPERATOR_TOKEN; empty: every operator endpoint answers NOT_SUPPORTED. */
  operatorToken: string;
  maxBodyBytes: number;
  bodyTimeoutMs?: number;
  log: Logger;
}

const digest = (s: string): Buffer => createHash('sha256').update(s).digest();

/**
 * The operator endpoints, behind `Authorization: Bearer <OPERATOR_TOKEN>` (compared in constant time):
 *   GET    /admin/bans             -> [{"address", "reason", "createdAt"}]
 *   POST   /admin/bans/:address    body optional {"reason": "…"} -> the ban (200); closes its connections
 *   DELETE /admin/bans/:address    -> 204, or 404 NOT_FOUND when it was not banned
 */
export function adminRoutes(deps: AdminDeps): express.Router {
  const router = express.Router();
  const expected = deps.operatorToken === '' ? null : digest(deps.operatorToken);
  router.use('/admin', (req: Request, _res: Response, next: NextFunction) => {
    if (!expected) return next(new AppError('NOT_SUPPORTED', 'operator endpoints need OPERATOR_TOKEN'));
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!timingSafeEqual(digest(token), expected)) return next(new AppError('UNAUTHENTICATED', 'the operator token is required'));
    next();
  });
  const wrap = (h: (req: Request, res: Response) => Promise<void>) => (req: Request, res: Response, next: NextFunction): void => {
    h(req, res).catch(next);
  };
  router.get('/admin/bans', wrap(async (_req, res) => sendJson(res, 200, JSON.stringify(deps.bans.list()))));
  router.post('/admin/bans/:address', wrap(async (req, res) => {
    let reason = '';
    if (req.headers['content-length'] !== '0' && (req.headers['content-type'] !== undefined || req.headers['transfer-encoding'] !== undefined)) {
      const body = await readJsonBody(req, deps.maxBodyBytes, deps.bodyTimeoutMs);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new AppError('INVALID_FIELD', 'body must be an object');
      for (const k of Object.keys(body)) if (k !== 'reason') throw new AppError('UNKNOWN_FIELD', `unknown field "${k.slice(0, 64)}"`);
      const r = (body as { reason?: unknown }).reason;
      if (r !== undefined && typeof r !== 'string') throw new AppError('INVALID_FIELD', 'reason must be a string', { field: 'reason' });
      reason = r ?? '';
    }
    const ban = await deps.bans.ban(String(req.params['address']), reason);
    deps.log.info({ address: ban.address }, 'address banned by the operator');
    sendJson(res, 200, JSON.stringify(ban));
  }));
  router.delete('/admin/bans/:address', wrap(async (req, res) => {
    if (!(await deps.bans.unban(String(req.params['address'])))) throw new AppError('NOT_FOUND', 'this address is not banned');
    deps.log.info({ address: String(req.params['address']).toLowerCase() }, 'ban lifted by the operator');
    res.status(204).end();
  }));
  return router;
}
