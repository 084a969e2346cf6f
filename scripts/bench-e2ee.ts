/**
 * Benchmark of issue 17 ("Speed"): MLS with ts-mls, in Node (and, with --browser, in Chromium).
 *
 *   npm run bench:e2ee [-- --sizes 100,1000,10000 --suites xwing,classical --shapes sparse,filled --provider sdk --reps 3 --browser --browser-sizes 100,1000 --browser-only]
 *
 * For each suite (X-Wing 0xF00D, classical 0x0001) and group size it prints each target beside its
 * figure: encrypt / decrypt one 1 KB message (steady state and first of an epoch), add one member
 * (create the commit, process it), remove one, join by Welcome and by external commit with every
 * leaf's credential checked (two secp256k1 EIP-191 recoveries per leaf), and the payload sizes.
 * Group fixtures (built by batched adds) are cached in the temp directory, so a second run is fast;
 * the setup time is printed. Figures are CPU-bound and noisy on a shared machine: the load average
 * is printed beside them.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { hashMessage, getBytes, computeAddress, hexlify, randomBytes, keccak256, getAddress, verifyMessage } from 'ethers';
import * as nodeCrypto from 'node:crypto';
import { nodeCryptoProvider } from '../sdk/src/mls/crypto.js';
import { PROVIDERS, SUITE_ID, registerProvider, b64, buildFixture, credentialCost, measure, newEipKey, setCpuClock, setKeyFactory, setRecover, unb64, type Fixture, type Row, type Shape } from './e2ee-bench-core.js';

const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,10000' },
    suites: { type: 'string', default: 'xwing,classical' },
    /** sparse: the tree batched adds leave; filled: then members beside the measured paths commit once (sizes <= --batch) */
    shapes: { type: 'string', default: 'sparse,filled' },
    /** sdk (the SDK's default: node:crypto here, browser in Chromium), node, browser, noble, ts-mls-default */
    provider: { type: 'string', default: 'sdk' },
    reps: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1000' },
    'no-cache': { type: 'boolean', default: false },
    browser: { type: 'boolean', default: false },
    'browser-only': { type: 'boolean', default: false },
    'browser-sizes': { type: 'string', default: '100,1000' },
    /** the Authentication Service's recoveries in the Node measurements: ethers (pure JS, what a browser has) or native libsecp256k1 */
    recover: { type: 'string', default: 'ethers' },
    /** how fixture keys sign (setup only): native libsecp256k1 (default) or ethers */
    'fixture-signer': { type: 'string', default: 'native' },
  },
});
registerProvider('node', nodeCryptoProvider(nodeCrypto));
registerProvider('sdk', PROVIDERS.node!);
const sizes = values.sizes.split(',').map(Number);
const suites = values.suites.split(',');
const shapes = values.shapes.split(',') as Shape[];
if (shapes.some((x) => x !== 'sparse' && x !== 'filled')) throw new Error('--shapes must list sparse and/or filled');
const provider = PROVIDERS[values.provider];
if (!provider) throw new Error(`--provider must be one of ${Object.keys(PROVIDERS).join(', ')}`);
if (!['ethers', 'native'].includes(values.recover)) throw new Error('--recover must be ethers or native');
if (!['ethers', 'native'].includes(values['fixture-signer'])) throw new Error('--fixture-signer must be ethers or native');
const reps = Number(values.reps);
const load = (): string => loadavg().map((x) => x.toFixed(2)).join(' ');
const cacheDir = path.join(tmpdir(), 'relation-im-bench-e2ee');
mkdirSync(cacheDir, { recursive: true });

export function fixturePath(suite: string, size: number, shape: Shape): string {
  return path.join(cacheDir, `fixture-v2-${suite}-${size}${shape === 'filled' ? '-filled' : ''}.json`);
}
export function loadFixture(suite: string, size: number, shape: Shape): Fixture | null {
  const p = fixturePath(suite, size, shape);
  if (!existsSync(p)) return null;
  const j = JSON.parse(readFileSync(p, 'utf8')) as Omit<Fixture, 'a' | 'b'> & { a: string; b: string };
  return { ...j, a: unb64(j.a), b: unb64(j.b) };
}
export async function getFixture(suite: string, size: number, shape: Shape, log: (s: string) => void): Promise<{ fx: Fixture; cached: boolean }> {
  const hit = values['no-cache'] ? null : loadFixture(suite, size, shape);
  if (hit) return { fx: hit, cached: true };
  const fx = await buildFixture(suite, size, provider!, Number(values.batch), log, shape);
  writeFileSync(fixturePath(suite, size, shape), JSON.stringify({ ...fx, a: b64(fx.a), b: b64(fx.b) }));
  return { fx, cached: false };
}

export function printTable(title: string, rows: Row[]): void {
  console.log(`\n${title}`);
  const w = Math.max(...rows.map((r) => r.key.length));
  console.log(`${'measure'.padEnd(w)}  ${'target'.padEnd(10)}  figure`);
  for (const r of rows) console.log(`${r.key.padEnd(w)}  ${r.target.padEnd(10)}  ${r.figure}${r.ok === null ? '' : r.ok ? '  ok' : '  MISSED'}`);
}

const log = (s: string): void => console.error(s);
// Node figures are this process's CPU time (all its threads: WebCrypto runs on libuv's pool), wall beside.
setCpuClock(() => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
});
console.log(`bench:e2ee  ts-mls 2.0.0-rc.10, provider ${values.provider}, Node ${process.version}, load average ${load()}; figures = CPU ms of this process (wall ms beside)`);

const cost = await credentialCost(200);
console.log(`credential check (2 x secp256k1 EIP-191 recovery, ethers verifyMessage): ${cost.perLeafMs.toFixed(2)} ms a leaf; from the cache ${(cost.cachedMs * 1000).toFixed(1)} µs a leaf (load ${load()})`);
for (const n of sizes) console.log(`  a joiner checking ${n} leaves: ${(n * cost.perLeafMs).toFixed(0)} ms of recoveries alone`);
// libsecp256k1 (the native `secp256k1` binding, Node only): what a Node client could pay for the checks,
// and how the fixtures' keys sign (setup only: 20,000 signatures for 10,000 members).
interface NativeSecp {
  ecdsaRecover(sig: Uint8Array, recid: number, msg32: Uint8Array, compressed: boolean): Uint8Array;
  ecdsaSign(msg32: Uint8Array, key: Uint8Array): { signature: Uint8Array; recid: number };
  publicKeyCreate(key: Uint8Array, compressed: boolean): Uint8Array;
}
const native = createRequire(import.meta.url)('secp256k1') as NativeSecp;
const nativeRecover = (message: string, sig: string): string => {
  const s = getBytes(sig);
  return computeAddress(hexlify(native.ecdsaRecover(s.subarray(0, 64), s[64]! - 27, getBytes(hashMessage(message)), false)));
};
if (values['fixture-signer'] === 'native') {
  setKeyFactory(() => {
    const key = getBytes(randomBytes(32));
    const address = getAddress(`0x${keccak256(native.publicKeyCreate(key, false).subarray(1)).slice(-40)}`);
    return {
      address,
      sign(message) {
        const { signature, recid } = native.ecdsaSign(getBytes(hashMessage(message)), key);
        return hexlify(new Uint8Array([...signature, 27 + recid]));
      },
    };
  });
  // The fixtures' signatures must be what ethers (the clients' Authentication Service) accepts.
  const probe = newEipKey();
  const text = 'relation-mls-credential:v1:00';
  if (verifyMessage(text, probe.sign(text)) !== probe.address) throw new Error('native fixture signature does not recover with ethers');
}
{
  setRecover(nativeRecover);
  const n = await credentialCost(200);
  setRecover(null);
  console.log(`same check with native libsecp256k1 (Node only): ${n.perLeafMs.toFixed(2)} ms a leaf -> ${sizes.map((k) => `${k} leaves ${(k * n.perLeafMs).toFixed(0)} ms`).join(', ')}`);
}
if (values.recover === 'native') {
  setRecover(nativeRecover);
  console.log('--recover native: the measurements below check credentials with libsecp256k1 (a Node client); a browser pays the ethers figure above');
}

/** A filled fixture is built from one batch (buildFixture); above --batch only the sparse shape is measured. */
const shapesFor = (size: number): Shape[] => shapes.filter((x) => x === 'sparse' || size <= Number(values.batch));
const allRows: Row[] = [];
for (const suite of values['browser-only'] ? [] : suites) {
  for (const size of sizes) {
    for (const shape of shapesFor(size)) {
      const { fx, cached } = await getFixture(suite, size, shape, log);
      console.log(`\nfixture ${suite} (${SUITE_ID[suite]}) ${size} members, ${shape} tree: ${cached ? 'from cache' : 'built'} ${fixturePath(suite, size, shape)}; setup took ${(fx.setupMs / 1000).toFixed(1)} s (${fx.setupDetail})`);
      const l0 = load();
      const { rows, sizes: bytes } = await measure(fx, { provider: provider!, reps: size >= 10000 ? Math.min(reps, 2) : reps, withCache: true, log });
      printTable(`${suite} (${SUITE_ID[suite]}), ${size} members, ${shape} tree, Node, recoveries ${values.recover}, load average ${l0} -> ${load()}`, rows);
      console.log('payload sizes:');
      for (const [k, v] of Object.entries(bytes)) console.log(`  ${k}: ${v.toLocaleString('en')} bytes`);
      allRows.push(...rows);
    }
  }
}

const missed = allRows.filter((r) => r.ok === false);
console.log(`\n${allRows.filter((r) => r.ok !== null).length - missed.length} targets met, ${missed.length} missed${missed.length ? `: ${missed.map((r) => r.key).join('; ')}` : ''}`);

if (values.browser || values['browser-only']) {
  const { runInBrowser } = await import('./bench-e2ee-browser.js');
  await runInBrowser({ sizes: values['browser-sizes'].split(',').map(Number), suites, shapesFor, provider: values.provider, reps, getFixture: (s, n, shape) => getFixture(s, n, shape, log).then((r) => r.fx), printTable });
}
