import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The web client: preact (about 4 KiB gzip) for components and hooks without a heavier framework; the
// SDK is imported from the workspace package's sources. Dev server: `npx vite web` with the proxy on :8080.
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false, reportCompressedSize: false },
  server: { proxy: { '/auth': 'http://127.0.0.1:8080', '/message': 'http://127.0.0.1:8080', '/chats': 'http://127.0.0.1:8080', '/users': 'http://127.0.0.1:8080', '/groups': 'http://127.0.0.1:8080', '/dev': 'http://127.0.0.1:8080', '/ws': { target: 'ws://127.0.0.1:8080', ws: true } } },
});
