/**
 * What the proxy's KeyPackage upload check costs per package (docs/e2ee.md section 5):
 *
 *   npx tsx scripts/bench-key-package-check.ts [--calls 10]
 *
 * - `signatures`: the two verifications ts-mls makes of a KeyPackage on add/join (the leaf node's,
 *   LeafNodeTBS, and the KeyPackage's, KeyPackageTBS; Ed25519 through WebCrypto), one package after the
 *   other as the upload does them;
 * - `decode + re-encode`: ts-mls decoding the package and re-encoding it (the canonical check compares
 *   that with the uploaded bytes);
 * - `upload`: MlsService.upload of 100 packages a call (the most a call takes) with a store that does
 *   nothing: base64, decoding, the checks above and the credential's two EIP-191 recoveries per package.
 * Printed per package: wall time (ms) and process CPU time (ms, every thread: WebCrypto runs on libuv's
 * pool), for the classical suite (0x0001) and X-Wing (0xF00D).
 */
import { performance } from 'node:perf_hooks';
import { toUtf8Bytes } from 'ethers';
import { decode, encode, getCiphersuiteImpl, mlsMessageDecoder, mlsMessageEncoder, type KeyPackage } from 'ts-mls';
import { verifyKeyPackage } from 'ts-mls/dist/src/keyPackage.js';
import { verifyLeafNodeSignatureKeyPackage } from 'ts-mls/dist/src/leafNode.js';
import { recoverPersonal } from '../src/roles/identity/recover-core.js';
import { MlsService } from '../src/roles/mls/mls-service.js';
import type { Store } from '../src/store/port.js';
import { makeIdentity } from '../test/support/messages.js';
import { device, keyPackage, type Suite } from '../test/support/mls.js';

const args = process.argv.slice(2);
const CALLS = Number(args[args.indexOf('--calls') + 1] ?? 10) || 10;
const PER_CALL = 100;

const store = { mlsUpload: async () => ({ status: 'ok', available: PER_CALL, lastResort: false }) } as unknown as Store;
const service = new MlsService({
  store, push: { publish() {}, revokeToken() {}, isOnline: () => false }, clock: { now: () => Date.now() },
  recoverText: (t, sig) => recoverPersonal(toUtf8Bytes(t), sig), maxDelegationMs: 31 * 86_400_000, maxDevices: 10, lowWater: 10,
  proxyName: 'bench', resolveChat: async () => { throw new Error('unused'); },
});

async function measure(label: string, packages: number, run: () => Promise<void>): Promise<void> {
  await run(); // warm
  const cpu = process.cpuUsage();
  const t = performance.now();
  await run();
  const wall = performance.now() - t;
  const u = process.cpuUsage(cpu);
  console.log(`${label.padEnd(34)} ${(wall / packages).toFixed(3)} ms wall  ${((u.user + u.system) / 1000 / packages).toFixed(3)} ms CPU  per package (${packages} packages)`);
}

const who = makeIdentity();
const wallet = who.address.toLowerCase();
for (const name of ['MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519', 'MLS_256_XWING_AES256GCM_SHA512_Ed25519'] as Suite[]) {
  const d = await device({ wallet: who.wallet, session: who.session }, name);
  const b64s = await Promise.all(Array.from({ length: PER_CALL }, async () => (await keyPackage(d, name)).b64));
  const bytes = b64s.map((b) => Buffer.from(b, 'base64'));
  const kps = bytes.map((b) => (decode(mlsMessageDecoder, b) as { keyPackage: KeyPackage }).keyPackage);
  const sig = (await getCiphersuiteImpl(name)).signature;
  const short = name.includes('XWING') ? 'X-Wing' : 'classical';
  console.log(`${short}: ${bytes[0]?.length} bytes a package`);
  await measure(`${short} signatures (leaf + KeyPackage)`, PER_CALL * CALLS, async () => {
    for (let c = 0; c < CALLS; c++) {
      for (const kp of kps) {
        if (!(await verifyLeafNodeSignatureKeyPackage(kp.leafNode, sig)) || !(await verifyKeyPackage(kp, sig))) throw new Error('a genuine package failed');
      }
    }
  });
  await measure(`${short} decode + re-encode`, PER_CALL * CALLS, async () => {
    for (let c = 0; c < CALLS; c++) {
      for (const [i, b] of bytes.entries()) {
        if (!Buffer.from(encode(mlsMessageEncoder, decode(mlsMessageDecoder, b) as never)).equals(bytes[i] as Buffer)) throw new Error('not canonical');
      }
    }
  });
  await measure(`${short} whole upload check`, PER_CALL * CALLS, async () => {
    for (let c = 0; c < CALLS; c++) await service.upload(wallet, { keyPackages: b64s });
  });
}
