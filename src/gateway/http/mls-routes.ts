import express, { type NextFunction, type Request, type Response } from 'express';
import type { AuthService, Session } from '../../roles/auth/auth-service.js';
import type { MlsService } from '../../roles/mls/mls-service.js';
import { AppError } from '../../errors/app-error.js';
import { isAddress } from '../../protocol/message.js';
import { clientAddress } from '../edge/address.js';
import { readJsonBody } from './body.js';
import { sendJson } from './respond.js';

/** The Delivery Service's REST endpoints (docs/e2ee.md section 5), bearer token as every REST call. */
export function mlsRoutes(deps: { auth: AuthService; mls: MlsService; maxBodyBytes: number; bodyTimeoutMs?: number }): express.Router {
  const r = express.Router();
  const authed = (h: (req: Request, res: Response, s: Session) => Promise<void>) => (req: Request, res: Response, next: NextFunction): void => {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : undefined;
    deps.auth.authenticate(token).then((s) => h(req, res, s)).catch(next);
  };
  const body = (req: Request): Promise<unknown> => readJsonBody(req, deps.maxBodyBytes, deps.bodyTimeoutMs);
  const json = (res: Response, v: unknown): void => sendJson(res, 200, JSON.stringify(v));
  const param = (req: Request, name: string): string => {
    const v = req.params[name];
    if (typeof v !== 'string' || v.length > 200) throw new AppError('INVALID_FIELD', `${name} is malformed`, { field: name });
    return v;
  };

  r.post('/mls/key-packages', authed(async (req, res, s) => json(res, await deps.mls.upload(s.address, await body(req)))));
  r.post('/mls/key-packages/claim', authed(async (req, res, s) => json(res, await deps.mls.claim(s.address, await body(req), clientAddress(req.socket)))));
  // One path parameter name for both (OpenAPI has one path /mls/devices/{id}): an address for GET, a device id for DELETE.
  r.get('/mls/devices/:id', authed(async (req, res) => {
    const a = param(req, 'id');
    if (!isAddress(a)) throw new AppError('INVALID_FIELD', 'address must be an address', { field: 'address' });
    json(res, await deps.mls.devices(a));
  }));
  r.delete('/mls/devices/:id', authed(async (req, res, s) => {
    await deps.mls.deleteDevice(s.address, param(req, 'id'));
    res.status(204).end();
  }));
  r.get('/mls/groups/:chatId', authed(async (req, res, s) => json(res, await deps.mls.group(s.address, param(req, 'chatId')))));
  r.put('/mls/groups/:chatId/group-info', authed(async (req, res, s) => json(res, await deps.mls.putGroupInfo(s.address, param(req, 'chatId'), await body(req)))));
  r.post('/mls/groups/:chatId/epoch-auth', authed(async (req, res, s) => json(res, await deps.mls.epochAuth(s.address, param(req, 'chatId'), await body(req)))));
  r.get('/mls/external-sender', authed(async (_req, res) => json(res, await deps.mls.externalSenderEntry())));
  return r;
}
