import express, { type Request, type Response } from 'express';
import type { Logger } from '../log/logger.js';
import type { ArchiveStatus } from './archiver.js';

export interface ArchiveRouteDeps {
  status(): Promise<ArchiveStatus>;
  log: Logger;
}

/**
 * `GET /archive/head` — the chain head a reader starts from: `{"head": {"seq", "txid", "owner",
 * "acceptedAt"}}`, or `{"head": null}` before the first bundle is accepted.
 * `GET /archive/status` — the archiver's view (docs/archive.md lists the fields).
 * Both are public: they only describe what is, or will be, public on Arweave.
 *
 * Returned as an Express application so it can be mounted (`app.use(archive)`) or called directly with a
 * Node request for `/archive/*` URLs; `status` may wait for the archive to finish starting.
 */
export function archiveRoutes(deps: ArchiveRouteDeps): express.Express {
  const router = express();
  router.disable('x-powered-by');
  const answer = (fn: (s: ArchiveStatus) => unknown) => async (_req: Request, res: Response): Promise<void> => {
    try {
      res.json(fn(await deps.status()));
    } catch (err) {
      deps.log.error({ err }, 'archive status failed');
      res.status(500).json({ error: { code: 'INTERNAL', message: 'Unexpected server error.' } });
    }
  };
  router.get('/archive/head', answer((s) => ({ head: s.head ? { ...s.head, owner: s.owner } : null })));
  router.get('/archive/status', answer((s) => s));
  router.use((_req: Request, res: Response) => {
    res.status(404).json({ error: { code: 'NOT_FOUND', message: 'No such endpoint or resource.' } });
  });
  return router;
}
