/**
 * Chromium half of `npm run bench:e2ee -- --browser`: bundles scripts/e2ee-bench-page.ts with esbuild,
 * serves it and the Node-built fixtures on 127.0.0.1, drives /usr/bin/chromium (playwright-core, a
 * fresh profile) and prints the same table. Browser figures are wall time (no CPU clock in a page).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { b64, SUITE_ID, type Fixture, type Row, type Shape } from './e2ee-bench-core.js';


const here = path.dirname(fileURLToPath(import.meta.url));
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');

export async function runInBrowser(o: {
  sizes: number[];
  suites: string[];
  shapesFor: (size: number) => Shape[];
  provider: string;
  reps: number;
  getFixture: (suite: string, size: number, shape: Shape) => Promise<Fixture>;
  printTable: (title: string, rows: Row[]) => void;
}): Promise<Row[]> {
  const out = mkdtempSync(path.join(tmpdir(), 'bench-e2ee-page-'));
  const profile = mkdtempSync(path.join(tmpdir(), 'bench-e2ee-profile-'));
  await build({ entryPoints: [path.join(here, 'e2ee-bench-page.ts')], bundle: true, format: 'esm', platform: 'browser', target: 'es2022', outfile: path.join(out, 'bench.js'), logLevel: 'warning' });
  const js = readFileSync(path.join(out, 'bench.js'));
  const server = createServer((req, res) => {
    void (async () => {
      const url = req.url ?? '/';
      const m = /^\/fixture\/(\w+)\/(\d+)\/(sparse|filled)$/.exec(url);
      if (m) {
        const fx = await o.getFixture(m[1]!, Number(m[2]), m[3] as Shape);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...fx, a: b64(fx.a), b: b64(fx.b) }));
      } else if (url === '/bench.js') {
        res.writeHead(200, { 'content-type': 'text/javascript' }).end(js);
      } else {
        res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><meta charset="utf-8"><title>bench:e2ee</title><script type="module" src="/bench.js"></script>');
      }
    })().catch((e: unknown) => res.writeHead(500).end(String(e)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const all: Row[] = [];
  try {
    const page = browser.pages()[0] ?? (await browser.newPage());
    await page.exposeFunction('benchLog', (s: string) => console.error(`  [chromium] ${s}`));
    await page.goto(`http://127.0.0.1:${port}/`);
    // (strings, not functions: tsx would wrap a function's source in helpers the page does not have)
    await page.waitForFunction("typeof window.runBench === 'function'");
    const ua = (await page.evaluate('navigator.userAgent')) as string;
    console.log(`\nChromium: ${ua}`);
    const cost = (await page.evaluate('window.runCredentialCost(100)')) as { perLeafMs: number; cachedMs: number };
    console.log(`credential check in Chromium (2 recoveries, ethers): ${cost.perLeafMs.toFixed(2)} ms a leaf; cached ${(cost.cachedMs * 1000).toFixed(1)} µs (load ${load()})`);
    for (const suite of o.suites) {
      for (const size of o.sizes) {
        for (const shape of o.shapesFor(size)) {
          await o.getFixture(suite, size, shape);
          const l0 = load();
          const r = (await page.evaluate(`window.runBench(${JSON.stringify({ suite, size, shape, provider: o.provider, reps: size >= 10000 ? Math.min(o.reps, 2) : o.reps })})`)) as { rows: Row[]; sizes: Record<string, number> };
          o.printTable(`${suite} (${SUITE_ID[suite]}), ${size} members, ${shape} tree, Chromium (wall time), load average ${l0} -> ${load()}`, r.rows);
          all.push(...r.rows);
        }
      }
    }
  } finally {
    await browser.close();
    server.close();
    rmSync(out, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
  const missed = all.filter((r) => r.ok === false);
  console.log(`\nChromium: ${all.filter((r) => r.ok !== null).length - missed.length} targets met, ${missed.length} missed`);
  return all;
}
