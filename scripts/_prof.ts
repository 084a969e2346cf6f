import { readFileSync } from 'node:fs';
import { createCommit, defaultProposalTypes, getCiphersuiteImpl, nobleCryptoProvider, processMessage, createApplicationMessage } from 'ts-mls';
import { SUITES, decodeState, makeMember, realAuthService, unb64 } from './e2ee-bench-core.js';
const suite = process.argv[2] ?? 'xwing';
const j = JSON.parse(readFileSync(`/tmp/relation-im-bench-e2ee/fixture-v1-${suite}-1000.json`, 'utf8'));
const cs = await getCiphersuiteImpl(SUITES[suite]!, nobleCryptoProvider);
const ctx = { cipherSuite: cs, authService: realAuthService };
const a = decodeState(unb64(j.a)); const b = decodeState(unb64(j.b));
for (let i = 0; i < 3; i++) {
  const c = await makeMember(cs);
  const t0 = performance.now();
  const res = await createCommit({ context: ctx, state: a, ratchetTreeExtension: process.argv[3] === 'tree', extraProposals: [{ proposalType: defaultProposalTypes.add, add: { keyPackage: c.publicPackage } }] });
  const t1 = performance.now();
  await processMessage({ context: ctx, state: b, message: res.commit });
  console.log('create', (t1 - t0).toFixed(0), 'process', (performance.now() - t1).toFixed(0));
}
let s = a;
const t = performance.now();
for (let i = 0; i < 50; i++) { const r = await createApplicationMessage({ context: ctx, state: s, message: new Uint8Array(1024) }); s = r.newState; }
console.log('enc', ((performance.now() - t) / 50).toFixed(2));
