/**
 * The page side of `npm run bench:e2ee -- --browser`: the same measurement core, run in Chromium on a
 * fixture fetched from the bench's local server (states serialized by the Node side).
 */
import { PROVIDERS, credentialCost, measure, unb64, type Fixture } from './e2ee-bench-core.js';

export interface BenchWindow {
  benchLog?: (s: string) => void;
  runBench: (args: { suite: string; size: number; shape: string; provider: string; reps: number }) => Promise<unknown>;
  runCredentialCost: (n: number) => Promise<unknown>;
  navigator: { userAgent: string };
}
const w = globalThis as unknown as BenchWindow;

w.runBench = async ({ suite, size, shape, provider, reps }) => {
  const j = (await (await fetch(`/fixture/${suite}/${size}/${shape}`)).json()) as Omit<Fixture, 'a' | 'b'> & { a: string; b: string };
  const fx: Fixture = { ...j, a: unb64(j.a), b: unb64(j.b) };
  // `node` has no meaning in a page: the SDK's choice there is `browser` (what `sdk` is here).
  const p = PROVIDERS[provider === 'node' ? 'sdk' : provider];
  if (!p) throw new Error(`unknown provider ${provider}`);
  return measure(fx, { provider: p, reps, withCache: true, log: (s) => w.benchLog?.(s) });
};
w.runCredentialCost = (n) => credentialCost(n);
