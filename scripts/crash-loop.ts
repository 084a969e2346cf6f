/**
 * The long kill -9 loop: `npx tsx scripts/crash-loop.ts [--kills 60] [--per-round 400] [--kill-after 120] [--window 32]`.
 * Kills the real server (its own process, SQLite synchronous=FULL) with SIGKILL while sends are in flight,
 * taking turns between REST, the /ws send frame and /im, then checks that every acknowledged message is
 * stored exactly once at its acknowledged seq, seqs have no gap, and both faces' resume deliver them all.
 * Exit 0: sound, 1: something was lost, duplicated or not delivered. (npm test runs 3 kills per face.)
 */
import { numericArgs } from './bench-server.js';
import { runCrashLoop } from './crash-loop-core.js';

const num = numericArgs();
const started = Date.now();
const report = await runCrashLoop({
  kills: num('kills', 60), perRound: num('per-round', 400), killAfter: num('kill-after', 120), window: num('window', 32),
  log: (s) => process.stdout.write(`${s}\n`),
});
const ok = report.lost.length === 0 && report.duplicated.length === 0 && report.undelivered.length === 0 && report.gapFree;
process.stdout.write(`${JSON.stringify({ ...report, lost: report.lost.length, duplicated: report.duplicated.length, undelivered: report.undelivered.length, seconds: Math.round((Date.now() - started) / 1000) })}\n`);
process.stdout.write(ok ? 'sound: nothing acknowledged was lost, duplicated or left undelivered\n' : `PROBLEMS: ${JSON.stringify(report).slice(0, 4000)}\n`);
process.exit(ok ? 0 : 1);
