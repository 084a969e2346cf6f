/**
 * The contract every ArchiveStore adapter must meet. `make` returns a fresh, empty archive state together
 * with a way to commit face-0 (and face-1) events into the same database the adapter reads.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ChainConflictError, FencedError, type ArchiveStore, type NewBundle } from '../../src/archive/port.js';

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
    /** The fencing token of holder 'w', who writes in the tests below that are not about the lease. */
    let k: number;
    beforeEach(async () => {
      rig = await make();
      s = rig.archive;
      k = (await s.acquireLease('w', 0, 2 ** 50)) as number;
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

    it('takes a bundle through cut, signed, uploading, pending, confirmed; the head moves only at confirmed', async () => {
      const [p1] = await rig.commit([{ body: '{}', face: 0, ts: 1 }]);
      const b = await s.insertBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), k);
      expect(b).toMatchObject({ seq: 1, status: 'cut', txid: null, uploadState: null, acceptedAt: null, confirmations: 0, confirmedAt: null, reposts: 0, replacedTxids: [] });
      expect(await s.head()).toBeNull();
      await s.markSigned(1, 'T'.repeat(43), '{"id":"T"}', k);
      await s.markSigned(1, 'T'.repeat(43), '{"id":"T"}', k); // repeat with the same tx is harmless
      await expect(s.markSigned(1, 'U'.repeat(43), '{}', k)).rejects.toBeInstanceOf(ChainConflictError);
      await s.saveUploadState(1, '{"chunkIndex":1}', k);
      expect(await s.getBundle(1)).toMatchObject({ status: 'uploading', txid: 'T'.repeat(43), txJson: '{"id":"T"}', uploadState: '{"chunkIndex":1}' });
      await expect(s.markConfirmed(1, 5, 99, k)).rejects.toBeInstanceOf(ChainConflictError); // not pending yet
      await s.markPending(1, 50, k);
      await s.markPending(1, 51, k); // repeat: harmless, the first time stays
      expect(await s.getBundle(1)).toMatchObject({ status: 'pending', acceptedAt: 50 });
      expect(await s.head()).toBeNull();
      await s.saveConfirmations(1, 2, k);
      expect(await s.getBundle(1)).toMatchObject({ status: 'pending', confirmations: 2 });
      expect(await s.head()).toBeNull();
      await s.markConfirmed(1, 3, 99, k);
      await s.markConfirmed(1, 4, 100, k); // repeat: harmless
      expect(await s.head()).toMatchObject({ seq: 1, status: 'confirmed', acceptedAt: 50, confirmations: 3, confirmedAt: 99 });
      expect(await s.latestBundle()).toMatchObject({ seq: 1 });
      await expect(s.saveUploadState(1, '{}', k)).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.markDropped(1, k)).rejects.toBeInstanceOf(ChainConflictError);
    });

    it('records a dropped transaction and its re-post under the same id', async () => {
      const [p1] = await rig.commit([{ body: '{}', face: 0, ts: 1 }]);
      await s.insertBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), k);
      await s.markSigned(1, 'T'.repeat(43), '{}', k);
      await s.saveUploadState(1, '{"chunkIndex":9}', k);
      await s.markPending(1, 10, k);
      await s.markDropped(1, k);
      expect(await s.getBundle(1)).toMatchObject({ status: 'dropped', txid: 'T'.repeat(43), uploadState: null, reposts: 1, confirmations: 0 });
      await expect(s.markConfirmed(1, 3, 99, k)).rejects.toBeInstanceOf(ChainConflictError);
      await s.saveUploadState(1, '{"chunkIndex":1}', k);
      await s.markPending(1, 20, k);
      expect(await s.getBundle(1)).toMatchObject({ status: 'pending', txid: 'T'.repeat(43), reposts: 1, acceptedAt: 10 });
      await s.markConfirmed(1, 1, 30, k);
      expect(await s.head()).toMatchObject({ seq: 1, txid: 'T'.repeat(43) });
    });

    it('re-signs only the transaction it names, keeping the old id in the history; the next bundle links to the new id', async () => {
      const [p1, p2] = await rig.commit([{ body: '1', face: 0, ts: 1 }, { body: '2', face: 0, ts: 2 }]);
      await s.insertBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), k);
      await expect(s.resign(1, 'O'.repeat(43), 'N'.repeat(43), '{}', k)).rejects.toBeInstanceOf(ChainConflictError); // cut: nothing to replace
      await s.markSigned(1, 'O'.repeat(43), '{"old":1}', k);
      await s.saveUploadState(1, '{"chunkIndex":0}', k);
      await expect(s.resign(1, 'X'.repeat(43), 'N'.repeat(43), '{}', k)).rejects.toBeInstanceOf(ChainConflictError); // names another tx
      await s.resign(1, 'O'.repeat(43), 'N'.repeat(43), '{"new":1}', k);
      expect(await s.getBundle(1)).toMatchObject({ status: 'signed', txid: 'N'.repeat(43), txJson: '{"new":1}', uploadState: null, replacedTxids: ['O'.repeat(43)] });
      // a second re-sign racing on the old id fails: one id only
      await expect(s.resign(1, 'O'.repeat(43), 'M'.repeat(43), '{}', k)).rejects.toBeInstanceOf(ChainConflictError);
      await s.resign(1, 'N'.repeat(43), 'P'.repeat(43), '{"newer":1}', k);
      expect((await s.getBundle(1))?.replacedTxids).toEqual(['O'.repeat(43), 'N'.repeat(43)]);
      await s.markPending(1, 1, k);
      await s.markConfirmed(1, 1, 2, k);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'O'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      expect(await s.insertBundle(bundle({ seq: 2, prevTx: 'P'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }), k)).toMatchObject({ seq: 2, prevTx: 'P'.repeat(43) });
    });

    it('refuses bundles that would fork, skip, overlap or leave a gap', async () => {
      const [p1, p2, p3] = await rig.commit([{ body: '1', face: 0, ts: 1 }, { body: '2', face: 0, ts: 2 }, { body: '3', face: 0, ts: 3 }]);
      await expect(s.insertBundle(bundle({ seq: 2, firstPos: p1 as number, lastPos: p1 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 1, firstPos: p2 as number, lastPos: p2 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 1, prevTx: 'x'.repeat(43), firstPos: p1 as number, lastPos: p1 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      await s.insertBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), k);
      // bundle 1 not confirmed yet: no bundle 2, not even while it is pending
      await expect(s.insertBundle(bundle({ seq: 2, firstPos: p2 as number, lastPos: p2 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      await s.markSigned(1, 'A'.repeat(43), '{}', k);
      await s.markPending(1, 1, k);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      await s.markConfirmed(1, 1, 1, k);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p1 as number, lastPos: p2 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'B'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      await expect(s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p3 as number, lastPos: p3 as number }), k)).rejects.toBeInstanceOf(ChainConflictError);
      const b2 = await s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p2 as number, lastPos: p3 as number }), k);
      expect(b2).toMatchObject({ seq: 2, prevTx: 'A'.repeat(43), status: 'cut' });
    });

    it('adopts bundles already on the chain as confirmed, once', async () => {
      const [p1] = await rig.commit([{ body: '1', face: 0, ts: 1 }]);
      const b = await s.adoptBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), 'A'.repeat(43), 7, k);
      expect(b).toMatchObject({ seq: 1, status: 'confirmed', txid: 'A'.repeat(43), acceptedAt: 7, confirmedAt: 7 });
      expect(await s.adoptBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), 'A'.repeat(43), 8, k)).toMatchObject({ acceptedAt: 7 });
      expect(await s.head()).toMatchObject({ seq: 1 });
    });

    it('grants the lease to one holder at a time until it lapses or is released; the token only grows', async () => {
      await s.releaseLease('w');
      const ta = await s.acquireLease('a', 1000, 100);
      expect(ta).toBeGreaterThan(k);
      expect(await s.acquireLease('b', 1050, 100)).toBeNull();
      expect(await s.acquireLease('a', 1050, 100)).toBe(ta); // renewal keeps the token
      expect(await s.lease()).toEqual({ holder: 'a', expiresAt: 1150, token: ta });
      expect(await s.acquireLease('b', 1149, 100)).toBeNull();
      const tb = await s.acquireLease('b', 1150, 100); // lapsed
      expect(tb).toBe((ta as number) + 1);
      await s.releaseLease('a'); // not a's any more: nothing happens
      expect(await s.lease()).toMatchObject({ holder: 'b', token: tb });
      await s.releaseLease('b');
      expect(await s.lease()).toBeNull();
      const tb2 = await s.acquireLease('b', 1151, 100); // the same holder again after a release: a new token
      expect(tb2).toBe((tb as number) + 1);
      await s.releaseLease('b');
      expect(await s.acquireLease('c', 1152, 100)).toBe((tb2 as number) + 1);
    });

    it('refuses every write of a holder paused past its lease once another holder took it, and writes nothing', async () => {
      const [p1, p2] = await rig.commit([{ body: '1', face: 0, ts: 1 }, { body: '2', face: 0, ts: 2 }]);
      await s.releaseLease('w');
      const ta = (await s.acquireLease('a', 1000, 100)) as number;
      await s.insertBundle(bundle({ seq: 1, firstPos: p1 as number, lastPos: p1 as number }), ta);
      await s.markSigned(1, 'A'.repeat(43), '{}', ta);
      // a pauses; its lease lapses; b takes over and finishes bundle 1 with the same transaction
      const tb = (await s.acquireLease('b', 1200, 100)) as number;
      expect(tb).toBeGreaterThan(ta);
      await s.saveUploadState(1, '{"chunkIndex":1}', tb);
      // a wakes up: every write it tries is refused
      const refused = async (p: Promise<unknown>): Promise<void> => {
        await expect(p).rejects.toBeInstanceOf(FencedError);
      };
      await refused(s.saveUploadState(1, '{"chunkIndex":7}', ta));
      await refused(s.markPending(1, 1300, ta));
      await refused(s.resign(1, 'A'.repeat(43), 'F'.repeat(43), '{}', ta));
      expect(await s.getBundle(1)).toMatchObject({ status: 'uploading', txid: 'A'.repeat(43), uploadState: '{"chunkIndex":1}', acceptedAt: null });
      await s.markPending(1, 1300, tb);
      await refused(s.saveConfirmations(1, 4, ta));
      await refused(s.markDropped(1, ta));
      await refused(s.markConfirmed(1, 5, 1300, ta));
      expect(await s.head()).toBeNull();
      await s.markConfirmed(1, 1, 1300, tb);
      await refused(s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }), ta));
      await refused(s.adoptBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }), 'F'.repeat(43), 1, ta));
      expect(await s.latestBundle()).toMatchObject({ seq: 1, status: 'confirmed' });
      expect(await s.acquireLease('a', 1250, 100)).toBeNull(); // nor can it renew
      // a released lease fences too
      await s.releaseLease('b');
      await refused(s.insertBundle(bundle({ seq: 2, prevTx: 'A'.repeat(43), firstPos: p2 as number, lastPos: p2 as number }), tb));
    });
  });
}
