import { describe, expect, it } from 'vitest';
import { progressLine, progressMeter, type ProgressView } from '../../src/archive/reader/progress.js';
import type { ChainSource, ChainTx } from '../../src/archive/reader/source.js';
import { fetchInOrder } from '../../src/archive/reader/verify.js';
import type { ChainLink } from '../../src/archive/reader/walk.js';

describe('reader progress', () => {
  it('reports rates and the time left from the bundle rate, throttled, always the last bundle', () => {
    let t = 0;
    const shown: ProgressView[] = [];
    const meter = progressMeter((v) => shown.push(v), { now: () => t, everyMs: 1000 });
    meter({ phase: 'walk', bundle: 1, bundles: 0, messages: 0 });
    t = 500;
    meter({ phase: 'walk', bundle: 50, bundles: 0, messages: 0 }); // throttled
    t = 1000;
    meter({ phase: 'verify', bundle: 0, bundles: 100, messages: 0 }); // a new phase starts its clock
    t = 11_000;
    meter({ phase: 'verify', bundle: 25, bundles: 100, messages: 2500 });
    t = 11_100;
    meter({ phase: 'verify', bundle: 26, bundles: 100, messages: 2600 }); // throttled
    t = 41_000;
    meter({ phase: 'verify', bundle: 100, bundles: 100, messages: 10_000 });
    expect(shown.map((v) => [v.phase, v.bundle])).toEqual([['walk', 1], ['verify', 0], ['verify', 25], ['verify', 100]]);
    const mid = shown[2] as ProgressView;
    expect(mid).toMatchObject({ messagesPerS: 250, bundlesPerS: 2.5, leftS: 30 });
    expect(progressLine(mid, 'verified')).toBe('verified bundle 25/100 (25%), 2500 message(s), 250 msg/s, 2.5 bundles/s, ~30 s left');
    expect(shown[3]?.leftS).toBe(0);
  });

  it('fetches bundles ahead within the bound and yields them in chain order', async () => {
    let inFlight = 0;
    let most = 0;
    const source: ChainSource = {
      tx: async () => null,
      bundlesOf: async () => [],
      data: async (id) => {
        inFlight += 1;
        most = Math.max(most, inFlight);
        // later ones answer sooner: order must still hold
        await new Promise((r) => setTimeout(r, 40 - Number(id.slice(1)) * 3));
        inFlight -= 1;
        if (id === 'b5') throw new Error('gone');
        return Buffer.from(id);
      },
    };
    const links = Array.from({ length: 12 }, (_, i) => ({ tx: { id: `b${i}`, owner: 'o', tags: [] } as ChainTx, meta: { seq: i + 1 } }) as unknown as ChainLink);
    const out: string[] = [];
    for await (const { link, data } of fetchInOrder(source, links, 4)) out.push(`${link.tx.id}:${data instanceof Error ? data.message : data.toString()}`);
    expect(out).toEqual(links.map((l) => `${l.tx.id}:${l.tx.id === 'b5' ? 'gone' : l.tx.id}`));
    expect(most).toBeLessThanOrEqual(4);
    expect(most).toBeGreaterThan(1);
  });
});
