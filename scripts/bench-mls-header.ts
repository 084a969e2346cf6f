/** CPU per parse of a 1 KB MLS application message: this header reader against ts-mls decode. Run: npx tsx scripts/bench-mls-header.ts */
import { decode, mlsMessageDecoder } from 'ts-mls';
import { parseMlsBytes, parseMlsPayload } from '../src/protocol/mls-header.js';
import { application, commit, soloGroup } from '../test/support/mls.js';
let st = await soloGroup('dm:0x01:0x02');
const c = await commit(st, { add: true }); st = c.state;
const a = await application(st, 'x'.repeat(1000));
const p = Buffer.from(a.bytes).toString('base64');
const bytes = Buffer.from(p, 'base64');
const fns = { own: () => parseMlsPayload(p), ownBytes: () => parseMlsBytes(bytes), tsmls: () => decode(mlsMessageDecoder, Buffer.from(p, 'base64')), tsmlsBytes: () => decode(mlsMessageDecoder, bytes), b64: () => Buffer.from(p, 'base64') };
for (let rep = 0; rep < 3; rep++) for (const [name, fn] of Object.entries(fns)) {
  for (let i = 0; i < 20000; i++) fn();
  const n = 200000; const t = process.cpuUsage();
  for (let i = 0; i < n; i++) fn();
  const u = process.cpuUsage(t);
  console.log(rep, name, ((u.user + u.system) / n).toFixed(2), 'us CPU/parse');
}
