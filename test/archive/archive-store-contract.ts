/**
 * The contract every ArchiveStore adapter must meet. `make` returns a fresh, empty archive state together
 * with a way to commit face-0 (and face-1) events into the same database the adapter reads.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChainConflictError, type ArchiveStore, type NewBundle } from '../../src/archive/port.js';

export interface ContractRig {
  archive: ArchiveStore;
  /** Commits events (body text and face); resolves with their positions. */
  commit(events: { body: string; face: 0 | 1; ts: number }[]): Promise<number[]>;
  close(): Promise<void>;
}

export function archiveStoreContract(name: string, make: () => Promise<ContractRig>): void {
  describe(`ArchiveStore contract: ${name}`, () => {
    let rig: ContractRig;
    let s: ArchiveStore;
    beforeEach(async () => {
      rig = await make();
      s = rig.archive;
    });
    afterEach(async () => {
      await rig.close();
    });

    const bundle = (over: Partial<NewBundle> & Pick<NewBundle, 'seq' | 'firstPos' | 'lastPos'>): NewBundle => ({
      prevTx: null, count: 1, firstTs: 1, lastTs: 1, bytes: 10, sha256: 'a'.repeat(64), file: 'f', cutAt: 5, ...over,
    });

    it('counts only face-0 events after a position, in UTF-8 bytes', async () => {
      const pos = await rig.commit([{ body: '{"a":"é"}', face: 0, ts: 1 }, { body: 'xx', face: 1, ts: 2 }, { body: '{}', face: 0, ts: 3 }]);
      expect(await s.pendingSince(0)).toEqual({ count: 2, bodyBytes: 10 + 2, lastPos: pos[2] });
      expect(await s.pendingSince(pos[2] as number)).toEqual({ count: 0, bodyBytes: 0, lastPos: pos[2] });
      expect((await s.eventsBetween(0, pos[2] as number, 10)).map((e) => e.body)).toEqual(['{"a":"é"}', '{}']);
      expect(await s.eventsBetween(0, pos[2] as number, 1)).toHaveLength(1);
    });

    it('plans a bundle within a byte budget, at least one event', async () => {
      const pos = await rig.commit([{ body: 'aaaa', face: 0, ts: 1 }, { body: 'bbbb', face: 0, ts: 2 }, { body: 'cccc', face: 0, ts: 3 }]);
      // [aaaa,bbbb] = 11 bytes
      expect(await s.planBundle(0, 11)).toEqual({ count: 2, bodyBytes: 8, firstPos: pos[0], lastPos: pos[1], firstTs: 1, lastTs: 2 });
      expect(await s.planBundle(0, 3)).toEqual({ count: 1, bodyBytes: 4, firstPos: pos[0], lastPos: pos[0], firstTs: 1, lastTs: 1 });
      expect(await s.planBundle(pos[2] as number, 100)).toBeNull();
    });

    it('takes a bundle through cut, signed, uploading, accepted; the head moves only at accepted', async () => {
      const [p1] = await rig.commit([{ body: '{}', face: 0, ts: 1 }]);
      const b = await s.insertBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }));
      expect(b).toMatchObject({ seq: 1, status: 'cut', txid: null, uploadState: null, acceptedAt: null });
      expect(await s.head()).toBeNull();
      await s.markSigned(1, 'T'.repeat(43), '{"id":"T"}');
      await s.markSigned(1, 'T'.repeat(43), '{"id":"T"}'); // repeat with the same tx is harmless
      await expect(s.markSigned(1, 'U'.repeat(43), '{}')).rejects.toBeInstanceOf(ChainConflictError);
      await s.saveUploadState(1, '{"chunkIndex":1}');
      expect(await s.getBundle(1)).toMatchObject({ status: 'uploading', txid: 'T'.repeat(43), txJson: '{"id":"T"}', uploadState: '{"chunkIndex":1}' });
      expect(await s.head()).toBeNull();
      await s.markAccepted(1, 99);
      expect(await s.head()).toMatchObject({ seq: 1, status: 'accepted', acceptedAt: 99 });
      expect(await s.latestBundle()).toMatchObject({ seq: 1 });
    });

    it('refuses bundles that would fork, skip, overlap or leave a gap', async () => {
      const [p1, p2, p3] = await rig.commit([{ body: '1', face: 0, ts: 1 }, { body: '2', face: 0, ts: 2 }, { body: '3', face: 0, ts: 3 }]);
      await expect(s.insertBundle(bundle({ seq: 2, firstPos: p1 as number, lastPos: p1 as number }))).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 1, firstPos: p2 as number, lastPos: p2 as number }))).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 1, prevTx: 'x'.repeat(43), firstPos: p1 as number, lastPos: p1 as number }))).rejects.toBeInstanceOf(ChainConflictError);
      await s.insertBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }));
      // bundle 1 not accepted yet: no bundle 2
      await expect(s.insertBundle(bundle({ seq: 2, firstPos: p2 as number, lastPos: p2 as number }))).rejects.toBeInstanceOf(ChainConflictError);
      await s.markSigned(1, 'A'.repeat(43), '{}');
      await s.markAccepted(1, 1);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p1 as number, lastPos: p2 as number }))).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'B'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }))).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p3 as number, lastPos: p3 as number }))).rejects.toBeInstanceOf(ChainConflictError);
      const b2 = await s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p2 as number, lastPos: p3 as number }));
      expect(b2).toMatchObject({ seq: 2, prevTx: 'A'.repeat(43), status: 'cut' });
    });

    it('adopts bundles already on the chain as accepted, once', async () => {
      const [p1] = await rig.commit([{ body: '1', face: 0, ts: 1 }]);
      const b = await s.adoptBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), 'A'.repeat(43), 7);
      expect(b).toMatchObject({ seq: 1, status: 'accepted', txid: 'A'.repeat(43), acceptedAt: 7 });
      expect(await s.adoptBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), 'A'.repeat(43), 8)).toMatchObject({ acceptedAt: 7 });
      expect(await s.head()).toMatchObject({ seq: 1 });
    });

    it('grants the lease to one holder at a time until it lapses or is released', async () => {
      expect(await s.acquireLease('a', 1000, 100)).toBe(true);
      expect(await s.acquireLease('b', 1050, 100)).toBe(false);
      expect(await s.acquireLease('a', 1050, 100)).toBe(true); // renewal
      expect(await s.lease()).toEqual({ holder: 'a', expiresAt: 1150 });
      expect(await s.acquireLease('b', 1149, 100)).toBe(false);
      expect(await s.acquireLease('b', 1150, 100)).toBe(true); // lapsed
      await s.releaseLease('a'); // not a's any more: nothing happens
      expect((await s.lease())?.holder).toBe('b');
      await s.releaseLease('b');
      expect(await s.lease()).toBeNull();
      expect(await s.acquireLease('c', 1151, 100)).toBe(true);
    });
  });
}
