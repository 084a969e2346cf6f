import { describe, expect, it } from 'vitest';
import { runCrashLoop } from '../../scripts/crash-loop-core.js';

describe('durability under repeated kill -9', () => {
  it('loses, duplicates and skips nothing acknowledged over 3 kills per face (REST, /ws send, /im)', async () => {
    const report = await runCrashLoop({ kills: 9, perRound: 240, killAfter: 80, log: (s) => process.stdout.write(`${s}\n`) });
    expect(report.kills).toBe(9);
    for (const face of ['rest', 'ws', 'im'] as const) expect(report.acked[face]).toBeGreaterThanOrEqual(3 * 80);
    expect(report.lost).toEqual([]);
    expect(report.duplicated).toEqual([]);
    expect(report.undelivered).toEqual([]);
    expect(report.gapFree).toBe(true);
    expect(report.stored).toBeGreaterThanOrEqual(report.acked.rest + report.acked.ws + report.acked.im);
  }, 240_000);
});
