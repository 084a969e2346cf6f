// Builds the SDK for the browser (ESM, minified, every dependency bundled, Node built-ins forbidden) and
// prints its size minified and minified + gzip. Usage: npm run sdk:size (from the repository root).
import { readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'vite';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const outDir = path.join(root, 'dist', 'browser');
const started = performance.now();
await build({
  root,
  configFile: false,
  logLevel: 'warn',
  build: {
    outDir,
    emptyOutDir: true,
    minify: true,
    target: 'es2022',
    lib: { entry: path.join(root, 'src', 'index.ts'), formats: ['es'], fileName: () => 'relation-im-sdk.js' },
    rollupOptions: {
      onwarn(w, warn) {
        if (/externalized for browser compatibility|node:/.test(w.message)) throw new Error(`Node built-in in the browser build: ${w.message}`);
        warn(w);
      },
    },
  },
});
const file = path.join(outDir, 'relation-im-sdk.js');
const code = readFileSync(file);
if (/\bfrom\s*["']node:|require\(["']node:/.test(code.toString())) throw new Error('the browser build imports a Node built-in');
const gz = gzipSync(code, { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KiB`;
console.log(`sdk browser build: ${kb(statSync(file).size)} minified, ${kb(gz)} minified + gzip (${path.relative(process.cwd(), file)}, built in ${Math.round(performance.now() - started)} ms)`);
