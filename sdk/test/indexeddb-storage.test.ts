import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

/**
 * IndexedDbStorage in real Chromium: the page bundles sdk/src/storage.ts, writes through it, the page is
 * reloaded (and the browser restarted on the same profile), and the values are read back. Calls go in
 * as strings: a function's source could carry the test transformer's helpers, which the page lacks.
 */
describe('IndexedDbStorage in Chromium', () => {
  let server: Server;
  let origin: string;
  let profile: string;
  let ctx: BrowserContext;
  const launch = (): Promise<BrowserContext> => chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: FLAGS });

  beforeAll(async () => {
    const bundle = await build({
      stdin: { contents: `import { IndexedDbStorage, getJson, setJson } from './storage.ts'; Object.assign(globalThis, { IndexedDbStorage, getJson, setJson });`, resolveDir: path.resolve(here, '../src'), loader: 'ts' },
      bundle: true,
      format: 'esm',
      platform: 'browser',
      write: false,
      logLevel: 'silent',
    });
    const js = bundle.outputFiles[0]!.contents;
    server = createServer((req, res) => {
      if (req.url === '/storage.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
      else res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><meta charset="utf-8"><script type="module" src="/storage.js"></script>');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    origin = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    profile = mkdtempSync(path.join(tmpdir(), 'sdk-idb-profile-'));
    ctx = await launch();
  }, 60_000);

  afterAll(async () => {
    await ctx?.close();
    await new Promise((r) => server?.close(r));
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  const ready = async (): Promise<import('playwright-core').Page> => {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(origin);
    await page.waitForFunction("typeof globalThis.IndexedDbStorage === 'function'");
    return page;
  };

  it('keeps what was written across a reload and a browser restart; remove and missing keys read null', async () => {
    const page = await ready();
    // 6 MB: more than localStorage holds for an origin (about 5 MB of UTF-16), the size of a big MLS state.
    const written = await page.evaluate(`(async () => {
      const s = new IndexedDbStorage();
      await s.set('mls:state:0xdao', 'x'.repeat(6 * 1024 * 1024));
      await s.set('session', 'v1');
      await s.set('session', 'v2');
      await s.set('gone', 'soon');
      await s.remove('gone');
      await setJson(s, 'cursor', { seq: 42 });
      const other = new IndexedDbStorage('relation-im-other');
      await other.set('session', 'other');
      return { session: await s.get('session'), gone: await s.get('gone') };
    })()`);
    expect(written).toEqual({ session: 'v2', gone: null });

    await page.reload();
    await page.waitForFunction("typeof globalThis.IndexedDbStorage === 'function'");
    const afterReload = await page.evaluate(`(async () => {
      const s = new IndexedDbStorage();
      const big = await s.get('mls:state:0xdao');
      return { bigLength: big && big.length, session: await s.get('session'), gone: await s.get('gone'), missing: await s.get('never-set'), cursor: await getJson(s, 'cursor'), other: await new IndexedDbStorage('relation-im-other').get('session') };
    })()`);
    expect(afterReload).toEqual({ bigLength: 6 * 1024 * 1024, session: 'v2', gone: null, missing: null, cursor: { seq: 42 }, other: 'other' });

    await ctx.close();
    ctx = await launch();
    const restarted = await ready();
    const afterRestart = await restarted.evaluate(`(async () => {
      const s = new IndexedDbStorage();
      return { session: await s.get('session'), bigLength: (await s.get('mls:state:0xdao'))?.length };
    })()`);
    expect(afterRestart).toEqual({ session: 'v2', bigLength: 6 * 1024 * 1024 });
  }, 120_000);

  it('another origin does not see the values', async () => {
    const page = ctx.pages()[0] ?? (await ctx.newPage());
    await page.goto(origin.replace('127.0.0.1', 'localhost'));
    await page.waitForFunction("typeof globalThis.IndexedDbStorage === 'function'");
    expect(await page.evaluate(`new IndexedDbStorage().get('session')`)).toBeNull();
  }, 60_000);
});
