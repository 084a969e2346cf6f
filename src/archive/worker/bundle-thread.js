// @ts-check
/**
 * Entry of the archive's worker thread (thread-work.ts). The worker itself is TypeScript
 * (bundle-worker.ts): in the build it sits beside this file as bundle-worker.js; run from the sources
 * (tsx, vitest) it is loaded through tsx's loader, registered for this thread only.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const compiled = new URL('./bundle-worker.js', import.meta.url);
if (existsSync(fileURLToPath(compiled))) {
  await import(compiled.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import(new URL('./bundle-worker.ts', import.meta.url).href);
}
