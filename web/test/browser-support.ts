import type { Browser, BrowserContext, Page, WebSocketRoute } from 'playwright-core';
import { hexToBytes, personalSign } from '../../sdk/src/keys.js';

export const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
export const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export interface Person { label: string; address: string; privateKey: string }

/**
 * A browser context whose page has `window.ethereum`: an EIP-1193 provider whose signatures are made in
 * Node with a demo key (so the server verifies real signatures), and whose /ws sockets go through
 * Playwright's WebSocket routing so the test can drop them.
 */
export async function personContext(browser: Browser, who: Person): Promise<{ ctx: BrowserContext; page: Page; sockets: WebSocketRoute[]; block: { on: boolean } }> {
  const ctx = await browser.newContext({ viewport: { width: 1100, height: 720 } });
  await ctx.exposeBinding('__ethRequest', async (_src, method: string, params: unknown[]) => {
    if (method === 'eth_requestAccounts' || method === 'eth_accounts') return [who.address];
    if (method === 'eth_chainId') return '0x7a69';
    if (method === 'personal_sign') return personalSign(hexToBytes(who.privateKey), hexToBytes(String(params[0])));
    throw new Error(`unsupported method ${method}`);
  });
  await ctx.addInitScript(() => {
    (globalThis as unknown as { ethereum: unknown }).ethereum = {
      request: ({ method, params }: { method: string; params?: unknown[] }) =>
        (globalThis as unknown as { __ethRequest: (m: string, p: unknown[]) => Promise<unknown> }).__ethRequest(method, params ?? []),
    };
  });
  const sockets: WebSocketRoute[] = [];
  const block = { on: false };
  await ctx.routeWebSocket(/\/ws(\?|$)/, (ws) => {
    if (block.on) {
      ws.close({ code: 4000, reason: 'network down (test)' });
      return;
    }
    ws.connectToServer();
    sockets.push(ws);
  });
  const page = await ctx.newPage();
  return { ctx, page, sockets, block };
}

