import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LocalChain } from './local-chain.js';

export interface ChainRpcServer {
  /** `http://host:port` of the endpoint. */
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 8 * 1024 * 1024;
const MAX_BATCH = 100;

/** A JSON-RPC error object for requests that never reach the chain (JSON-RPC 2.0 section 5.1 codes). */
const rpcError = (id: unknown, code: number, message: string): Record<string, unknown> => ({ jsonrpc: '2.0', id: id ?? null, error: { code, message } });

/**
 * The embedded chain on a local HTTP JSON-RPC port, so wallets, the web client, scripts and tests send
 * real transactions to the same chain the relation reader reads (`CHAIN_RPC_PORT`, on `CHAIN_RPC_HOST`,
 * loopback by default: the funded accounts' keys are the public development mnemonic's).
 *
 * Each request object is handed to EDR as sent and its answer returned as EDR gives it; batches (arrays of
 * up to 100 requests) are answered in order. Any origin may call it (a development chain, like Hardhat's
 * and Anvil's nodes), so a browser page can use it as its wallet's RPC.
 */
export async function serveChainRpc(chain: LocalChain, host: string, port: number): Promise<ChainRpcServer> {
  const server = createServer((req, res) => {
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('access-control-allow-headers', 'content-type');
    res.setHeader('access-control-allow-methods', 'POST, OPTIONS');
    if (req.method === 'OPTIONS') {
      res.writeHead(204).end();
      return;
    }
    if (req.method !== 'POST') {
      answer(res, 405, rpcError(null, -32600, 'JSON-RPC over HTTP POST'));
      return;
    }
    readBody(req).then(async (text) => {
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        answer(res, 200, rpcError(null, -32700, 'Parse error'));
        return;
      }
      if (Array.isArray(body)) {
        if (body.length === 0 || body.length > MAX_BATCH) {
          answer(res, 200, rpcError(null, -32600, `a batch holds 1 to ${MAX_BATCH} requests`));
          return;
        }
        const out: unknown[] = [];
        for (const call of body) out.push(await one(chain, call));
        answer(res, 200, out);
        return;
      }
      answer(res, 200, await one(chain, body));
    }, () => answer(res, 413, rpcError(null, -32600, `the body is larger than ${MAX_BODY} bytes`)));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  const shown = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shown}:${bound.port}`,
    close: () => new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}

async function one(chain: LocalChain, call: unknown): Promise<unknown> {
  if (typeof call !== 'object' || call === null || typeof (call as { method?: unknown }).method !== 'string') {
    return rpcError((call as { id?: unknown } | null)?.id, -32600, 'Invalid Request');
  }
  const id = (call as { id?: unknown }).id ?? null;
  try {
    // EDR answers { result } or { error } without the envelope: the id and version are the caller's.
    const answer = (await chain.raw(call)) as Record<string, unknown>;
    return { jsonrpc: '2.0', id, ...('error' in answer ? { error: answer['error'] } : { result: answer['result'] ?? null }) };
  } catch (e) {
    return rpcError((call as { id?: unknown }).id, -32603, e instanceof Error ? e.message : String(e));
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        req.destroy();
        reject(new Error('too large'));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function answer(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
