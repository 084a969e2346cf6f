import type { IncomingMessage, ServerResponse } from 'node:http';

/** What the embedded demo chain seeded (src/relations/chain/demo.ts). */
export interface DemoInfo {
  identities: { label: string; address: string; name: string; avatar: string; privateKey: string }[];
  dao: { address: string; name: string; owner: string; members: string[] };
}

/**
 * DEVELOPMENT ONLY: `GET /dev/demo` lists the demo identities with their private keys, so the web client
 * can offer "sign in as alice". Wired only when the server runs the embedded demo chain (CHAIN=embedded),
 * whose keys are public development keys that the log prints anyway; never with CHAIN=rpc.
 */
export function devDemo(demo: DemoInfo): (req: IncomingMessage, res: ServerResponse) => boolean {
  const body = JSON.stringify({ warning: 'development keys of the embedded demo chain; never use them elsewhere', ...demo });
  return (req, res) => {
    if (req.method !== 'GET' || new URL(req.url ?? '/', 'http://x').pathname !== '/dev/demo') return false;
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
    return true;
  };
}
