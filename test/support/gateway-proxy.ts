/**
 * An HTTP proxy in front of a real arlocal gateway that misbehaves the way real Arweave gateways do,
 * for tests of the archiver (the archiver's own code is not mocked: it talks HTTP to this proxy).
 *
 * - `pass`: forwards every request unchanged.
 * - `fail`: answers 503 to everything (a gateway outage).
 * - `hold`: takes transaction headers and chunks without forwarding them and reports the transactions it
 *   holds as pending (202) — a gateway that has a transaction in its mempool. `drop()` then forgets them:
 *   their status becomes the upstream's (404), as when a real gateway drops a pending transaction.
 * - `delayMs`: every request waits this long first (a slow gateway), in any mode.
 * - `maxAnchorAge`: when set, a posted transaction whose anchor (`last_tx`, a block hash) is more than
 *   this many blocks behind the tip is refused with 400, as the network refuses a stale anchor (50 blocks).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type ProxyMode = 'pass' | 'fail' | 'hold';

export class GatewayProxy {
  mode: ProxyMode = 'pass';
  delayMs = 0;
  maxAnchorAge: number | null = null;
  /** Transaction ids held in `hold` mode. */
  readonly held = new Set<string>();
  /** Requests seen, as "METHOD path status". */
  readonly log: string[] = [];

  private constructor(private readonly server: Server, readonly url: string, private readonly upstream: string) {}

  static async start(upstream: string): Promise<GatewayProxy> {
    let proxy: GatewayProxy | null = null;
    const server = createServer((req, res) => {
      void (proxy as GatewayProxy).handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`proxy error: ${e instanceof Error ? e.message : String(e)}`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    proxy = new GatewayProxy(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`, upstream.replace(/\/+$/, ''));
    return proxy;
  }

  /** Forgets every held transaction: the gateway dropped them. */
  drop(): void {
    this.held.clear();
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const url = req.url ?? '/';
    const method = req.method ?? 'GET';
    const answer = (status: number, text: string, type = 'text/plain'): void => {
      this.log.push(`${method} ${url} ${status}`);
      res.writeHead(status, { 'content-type': type });
      res.end(text);
    };
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    if (this.mode === 'fail') return answer(503, 'Service Unavailable');

    if (method === 'POST' && url === '/tx') {
      const tx = JSON.parse(body.toString('utf8')) as { id: string; last_tx: string };
      if (this.maxAnchorAge !== null) {
        const age = await this.anchorAge(tx.last_tx);
        if (age === null || age > this.maxAnchorAge) return answer(400, 'Invalid anchor (last_tx).');
      }
      if (this.mode === 'hold') {
        this.held.add(tx.id);
        return answer(200, 'OK');
      }
    }
    if (this.mode === 'hold' && method === 'POST' && url === '/chunk') return answer(200, 'OK');
    const status = /^\/tx\/([a-zA-Z0-9_-]{43})\/status$/.exec(url);
    if (method === 'GET' && status && this.held.has(status[1] as string)) return answer(202, 'Pending');

    const up = await fetch(`${this.upstream}${url}`, {
      method,
      headers: req.headers['content-type'] ? { 'content-type': req.headers['content-type'] } : {},
      ...(method === 'GET' || method === 'HEAD' ? {} : { body }),
    });
    const out = Buffer.from(await up.arrayBuffer());
    this.log.push(`${method} ${url} ${up.status}`);
    res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/octet-stream' });
    res.end(out);
  }

  /** Blocks from the anchor's block to the upstream's tip, null when the anchor is no block it knows. */
  private async anchorAge(anchor: string): Promise<number | null> {
    if (!anchor) return null;
    const block = await fetch(`${this.upstream}/block/hash/${anchor}`);
    if (!block.ok) return null;
    const b = (await block.json().catch(() => null)) as { height?: number } | null;
    if (typeof b?.height !== 'number') return null;
    const info = (await (await fetch(`${this.upstream}/info`)).json()) as { height: number };
    return info.height - b.height;
  }
}
