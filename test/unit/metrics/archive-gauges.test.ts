import { describe, expect, it } from 'vitest';
import { Metrics, type ArchiveFigures } from '../../../src/metrics/metrics.js';

const read = (text: string, name: string): number | undefined => {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};

describe('archive gauges', () => {
  it("show the archiver's figures of this scrape, not the previous one's, asking it once per scrape", async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    let figures: ArchiveFigures = { pending: { messages: 3, bytes: 3000 }, lastBundle: null, lastError: null };
    let asked = 0;
    metrics.archiveFrom(async () => { asked++; return figures; });
    const first = (await metrics.text()).body;
    expect(read(first, 'rim_archive_backlog_bytes')).toBe(3000);
    expect(read(first, 'rim_archive_backlog_messages')).toBe(3);
    expect(read(first, 'rim_archive_upload_failures')).toBe(0);
    expect(read(first, 'rim_archive_up')).toBe(1);
    expect(asked).toBe(1);
    figures = { pending: { messages: 0, bytes: 0 }, lastBundle: { cutAt: Date.now() }, lastError: { failures: 2 } };
    await new Promise((r) => setTimeout(r, 600)); // a scrape later than the shared status's lifetime
    const second = (await metrics.text()).body;
    expect(read(second, 'rim_archive_backlog_bytes')).toBe(0);
    expect(read(second, 'rim_archive_backlog_age_seconds')).toBe(0);
    expect(read(second, 'rim_archive_upload_failures')).toBe(2);
    expect(asked).toBe(2);
  });

  it('reports the archiver down when it does not answer', async () => {
    const metrics = new Metrics({ defaultMetrics: false });
    metrics.archiveFrom(async () => { throw new Error('archive store busy'); });
    expect(read((await metrics.text()).body, 'rim_archive_up')).toBe(0);
  });

  it('answers a scrape with the archiver down when its status does not come in time', async () => {
    const metrics = new Metrics({ defaultMetrics: false, archiveTimeoutMs: 50 });
    metrics.archiveFrom(() => new Promise<ArchiveFigures | null>(() => undefined)); // never answers
    const text = (await metrics.text()).body;
    expect(read(text, 'rim_archive_up')).toBe(0);
    expect(read(text, 'rim_archive_backlog_bytes')).toBe(0);
  });
});
