import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import { Face, type NewEvent, type Store } from '../../src/store/port.js';
import { dmCid } from '../../src/roles/chat/ids.js';

const A = '0x' + 'a'.repeat(40);
const B = '0x' + 'b'.repeat(40);
const C = '0x' + 'c'.repeat(40);
const DAO = '0x' + 'd'.repeat(40);
let counter = 0;

export function dm(from: string, to: string, over: Partial<NewEvent> = {}): NewEvent {
  counter++;
  const id = '0x' + counter.toString(16).padStart(64, '0');
  return {
    cid: dmCid(from, to), id, face: Face.RELATION_ONE, kind: 0, sender: from, ts: 1000 + counter, receivedAt: 2000 + counter,
    body: JSON.stringify({ id, type: 'TEXT', payload: `p${counter}` }), counts: true, onlyFor: null, hides: null,
    participants: [from, to], ...over,
  };
}

/** Opens a second store on the same data as the first (another connection or process), when the adapter can. */
export type Reopen = (first: Store) => Promise<Store>;

/**
 * The storage contract: every Store adapter runs this suite unchanged (embedded SQLite, PostgreSQL; a
 * MongoDB adapter would have to pass it too). `make` returns a fresh, empty store; `reopen`, when given,
 * another instance on the same data (a second connection, as a second process would have), for the
 * tests of concurrent writers.
 */
export function storeContract(name: string, make: () => Promise<Store>, reopen?: Reopen): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => { store = await make(); });
    afterEach(async () => { await store.close(); });

    it('assigns per-conversation seq 1, 2, 3 without gaps, across batches and interleaved chats', async () => {
      const out1 = await store.appendEvents([dm(A, B), dm(B, A), dm(A, C)]);
      const out2 = await store.appendEvents([dm(A, B), dm(C, A)]);
      expect(out1.map((o) => o.event!.seq)).toEqual([1, 2, 1]);
      expect(out2.map((o) => o.event!.seq)).toEqual([3, 2]);
      expect(out1.concat(out2).every((o) => o.status === 'stored')).toBe(true);
    });

    it('applies and resolves overlapping calls in the order they were made', async () => {
      const settled: number[] = [];
      const calls = Array.from({ length: 40 }, (_, i) => store.appendEvents(Array.from({ length: 1 + (i % 3) }, () => dm(A, B)))
        .then((out) => { settled.push(i); return out; }));
      const outs = await Promise.all(calls);
      expect(settled).toEqual(Array.from({ length: 40 }, (_, i) => i));
      const seqs = outs.flat().map((o) => o.event!.seq);
      expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
    });

    it('sees a duplicate across overlapping calls', async () => {
      const e = dm(A, B);
      const [first, second] = await Promise.all([store.appendEvents([e]), store.appendEvents([dm(B, A), { ...e, body: 'other' }])]);
      expect(first?.[0]?.status).toBe('stored');
      expect(second?.map((o) => o.status)).toEqual(['stored', 'duplicate']);
      expect(second?.[1]?.event).toEqual(first?.[0]?.event);
    });

    it('fails a batch the database refuses by itself: overlapping calls still commit, with no gap', async () => {
      const bad = { ...dm(A, B), sender: null as unknown as string };
      const results = await Promise.allSettled([
        store.appendEvents([dm(A, B)]), store.appendEvents([dm(A, B), bad]), store.appendEvents([dm(B, A)]),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      const seqs = results.flatMap((r) => (r.status === 'fulfilled' ? r.value.map((o) => o.event!.seq) : []));
      expect(seqs).toEqual([1, 2]);
      expect((await store.listEvents({ cid: dmCid(A, B), viewer: A, limit: 10, offset: 0 })).length).toBe(2);
    });

    it('orders events globally by commit position', async () => {
      const out = await store.appendEvents([dm(A, B), dm(A, C), dm(B, A)]);
      const pos = out.map((o) => o.event!.pos);
      expect([...pos].sort((x, y) => x - y)).toEqual(pos);
      expect(new Set(pos).size).toBe(3);
    });

    it('returns a duplicate id as duplicate with the stored event and writes nothing', async () => {
      const e = dm(A, B);
      const [first] = await store.appendEvents([e]);
      const [again, next] = await store.appendEvents([{ ...e, body: 'other' }, dm(A, B)]);
      expect(again).toEqual({ status: 'duplicate', event: first?.event });
      expect(next?.event!.seq).toBe(2);
      expect((await store.listEvents({ cid: dmCid(A, B), viewer: A, limit: 10, offset: 0 })).length).toBe(2);
    });

    it('treats a duplicate inside one batch like any other', async () => {
      const e = dm(A, B);
      const out = await store.appendEvents([e, e]);
      expect(out.map((o) => o.status)).toEqual(['stored', 'duplicate']);
    });

    it('finds events by id and by seq', async () => {
      const [o] = await store.appendEvents([dm(A, B)]);
      expect(await store.getEventById(o?.event!.id as string)).toEqual(o?.event);
      expect(await store.getEventBySeq(dmCid(A, B), 1)).toEqual(o?.event);
      expect(await store.getEventById('0x' + 'f'.repeat(64))).toBeNull();
    });

    it('answers many lookups made at once, each with its own answer', async () => {
      const out = await store.appendEvents([dm(A, B), dm(A, C), dm(B, C)]);
      await store.setMuted(B, dmCid(A, B), true);
      const ids = out.map((o) => o.event!.id as string);
      const missing = '0x' + 'e'.repeat(64);
      const got = await Promise.all([...ids, missing, ids[0] as string].map((id) => store.getEventById(id)));
      expect(got).toEqual([...out.map((o) => o.event), null, out[0]?.event]);
      const muted = await Promise.all([dmCid(A, B), dmCid(A, C), dmCid(A, B)].map((c) => store.mutedUsers(c)));
      expect(muted).toEqual([[B], [], [B]]);
    });

    it('lists newest first by default and oldest first after a cursor', async () => {
      await store.appendEvents([dm(A, B), dm(B, A), dm(A, B), dm(B, A)]);
      const cid = dmCid(A, B);
      const newest = await store.listEvents({ cid, viewer: A, limit: 2, offset: 0 });
      expect(newest.map((e) => e.seq)).toEqual([4, 3]);
      const page2 = await store.listEvents({ cid, viewer: A, limit: 2, offset: 2 });
      expect(page2.map((e) => e.seq)).toEqual([2, 1]);
      const after = await store.listEvents({ cid, viewer: A, afterSeq: 1, limit: 10, offset: 0 });
      expect(after.map((e) => e.seq)).toEqual([2, 3, 4]);
    });

    it('filters by face', async () => {
      await store.appendEvents([dm(A, B), dm(A, B, { face: Face.IM, id: null }), dm(A, B)]);
      const r1 = await store.listEvents({ cid: dmCid(A, B), viewer: A, limit: 10, offset: 0, face: Face.RELATION_ONE });
      expect(r1.map((e) => e.seq)).toEqual([3, 1]);
    });

    it('serves a hide only to its hider and hides the target for the hider alone', async () => {
      await store.appendEvents([dm(A, B), dm(B, A)]);
      await store.appendEvents([dm(A, B, { counts: false, onlyFor: A, hides: { seq: 2 } })]);
      const cid = dmCid(A, B);
      const forA = await store.listEvents({ cid, viewer: A, limit: 10, offset: 0 });
      const forB = await store.listEvents({ cid, viewer: B, limit: 10, offset: 0 });
      expect(forA.map((e) => e.seq)).toEqual([3, 1]);
      expect(forB.map((e) => e.seq)).toEqual([2, 1]);
    });

    it('creates chat entries for both participants when a direct chat starts', async () => {
      await store.appendEvents([dm(A, B)]);
      expect(await store.getChat(A, dmCid(A, B))).toMatchObject({ peer: B, lastReadSeq: 0, muted: false, pinnedAt: null });
      expect(await store.getChat(B, dmCid(A, B))).toMatchObject({ peer: A });
      expect(await store.getChat(C, dmCid(A, B))).toBeNull();
    });

    it('counts unread messages from others after the read marker, never lowering the marker', async () => {
      await store.appendEvents([dm(A, B), dm(A, B), dm(B, A), dm(A, B)]);
      const cid = dmCid(A, B);
      expect(await store.unreadCount(B, cid)).toBe(3);
      expect(await store.unreadCount(A, cid)).toBe(1);
      expect(await store.markRead(B, cid, 2)).toBe(2);
      expect(await store.unreadCount(B, cid)).toBe(1);
      expect(await store.markRead(B, cid, 1)).toBe(2);
      expect(await store.unreadCount(B)).toBe(1);
    });

    it('does not count messages the reader hid', async () => {
      await store.appendEvents([dm(A, B), dm(A, B)]);
      await store.appendEvents([dm(B, A, { counts: false, onlyFor: B, hides: { seq: 1 } })]);
      expect(await store.unreadCount(B, dmCid(A, B))).toBe(1);
    });

    it('sums unread over all chats of the user', async () => {
      await store.appendEvents([dm(A, C), dm(B, C), dm(B, C), dm(C, A)]);
      expect(await store.unreadCount(C)).toBe(3);
      expect(await store.unreadCount(A)).toBe(1);
    });

    it('lists chats pinned first, then by last post, with unread and the last visible message', async () => {
      await store.appendEvents([dm(A, B, { receivedAt: 10 })]);
      await store.appendEvents([dm(C, A, { receivedAt: 20 })]);
      await store.appendEvents([dm(A, DAO, { receivedAt: 30 })]);
      let chats = await store.listChats(A, 10, 0);
      expect(chats.map((c) => c.peer)).toEqual([DAO, C, B]);
      expect(chats.find((c) => c.peer === C)).toMatchObject({ unread: 1, lastSeq: 1, lastPostAt: 20 });
      await store.setPinned(A, dmCid(A, B), 100);
      chats = await store.listChats(A, 10, 0);
      expect(chats.map((c) => c.peer)).toEqual([B, DAO, C]);
      expect(chats[0]?.pinnedAt).toBe(100);
      expect(chats[0]?.last?.seq).toBe(1);
      expect((await store.listChats(A, 1, 1)).map((c) => c.peer)).toEqual([DAO]);
    });

    it('keeps mute per user', async () => {
      await store.appendEvents([dm(A, B)]);
      await store.setMuted(A, dmCid(A, B), true);
      expect((await store.getChat(A, dmCid(A, B)))?.muted).toBe(true);
      expect((await store.getChat(B, dmCid(A, B)))?.muted).toBe(false);
    });

    it('lists a user\'s events across chats, newest commit first', async () => {
      await store.appendEvents([dm(A, B), dm(C, A), dm(B, C)]);
      const mine = await store.listUserEvents(A, 10, 0);
      expect(mine.map((e) => e.cid)).toEqual([dmCid(A, C), dmCid(A, B)]);
    });

    it('lists who muted a chat', async () => {
      await store.appendEvents([dm(A, B), dm(A, C)]);
      await store.setMuted(B, dmCid(A, B), true);
      expect(await store.mutedUsers(dmCid(A, B))).toEqual([B]);
      expect(await store.mutedUsers(dmCid(A, C))).toEqual([]);
    });

    it('keeps group conversations and per-user entries for them', async () => {
      await store.appendEvents([dm(A, DAO, { cid: DAO, participants: null })]);
      await store.appendEvents([dm(A, B)]);
      expect(await store.groupConversations()).toEqual([DAO]);
      expect(await store.getChat(A, DAO)).toBeNull();
      await store.ensureChat(A, DAO, null);
      expect((await store.listChats(A, 10, 0)).map((c) => c.cid)).toContain(DAO);
      expect(await store.unreadCount(A)).toBe(0);
      await store.appendEvents([dm(B, DAO, { cid: DAO, participants: null })]);
      expect(await store.unreadCount(A)).toBe(1);
      await store.removeChat(A, DAO);
      expect(await store.getChat(A, DAO)).toBeNull();
      expect(await store.unreadCount(A)).toBe(0);
      expect((await store.listEvents({ cid: DAO, viewer: B, limit: 10, offset: 0 })).length).toBe(2);
    });

    it('records group admins', async () => {
      await store.setAdmin(DAO, B, true);
      await store.setAdmin(DAO, A, true);
      await store.setAdmin(DAO, A, true);
      expect(await store.listAdmins(DAO)).toEqual([A, B]);
      await store.setAdmin(DAO, B, false);
      expect(await store.listAdmins(DAO)).toEqual([A]);
      expect(await store.listAdmins(C)).toEqual([]);
    });

    it('stores tokens and revokes them', async () => {
      await store.putToken('h1', { address: A, expiresAt: 5000, revoked: false });
      expect(await store.getToken('h1')).toEqual({ address: A, expiresAt: 5000, revoked: false });
      await store.revokeToken('h1');
      expect((await store.getToken('h1'))?.revoked).toBe(true);
      expect(await store.getToken('nope')).toBeNull();
    });

    it('serves the other face\'s chat messages but not its control events in a face view', async () => {
      await store.appendEvents([dm(A, B), dm(A, B, { face: Face.IM, id: null }), dm(A, B, { face: Face.IM, id: null, counts: false })]);
      const cid = dmCid(A, B);
      const view = await store.listEvents({ cid, viewer: A, limit: 10, offset: 0, afterSeq: 0, view: Face.RELATION_ONE });
      expect(view.map((e) => e.seq)).toEqual([1, 2]);
      const mine = await store.listUserEvents(A, 10, 0, undefined, Face.RELATION_ONE);
      expect(mine.map((e) => e.seq)).toEqual([2, 1]);
    });

    it('lists a conversation by seq range and by time range, with visibility, both orders', async () => {
      const cid = dmCid(A, B);
      await store.appendEvents([1, 2, 3, 4, 5].map((i) => dm(A, B, { receivedAt: i * 1000 })));
      await store.appendEvents([dm(A, B, { counts: false, onlyFor: A, hides: { seq: 2 }, receivedAt: 6000 })]);
      expect((await store.listRange({ cid, viewer: B, fromSeq: 2, toSeq: 4, limit: 10 })).map((e) => e.seq)).toEqual([2, 3, 4]);
      expect((await store.listRange({ cid, viewer: A, fromSeq: 1, toSeq: 4, limit: 10 })).map((e) => e.seq)).toEqual([1, 3, 4]);
      expect((await store.listRange({ cid, viewer: B, since: 3000, until: 4000, limit: 10 })).map((e) => e.seq)).toEqual([3, 4]);
      expect((await store.listRange({ cid, viewer: B, limit: 2, desc: true })).map((e) => e.seq)).toEqual([5, 4]);
      expect((await store.listRange({ cid, viewer: A, fromSeq: 5, limit: 10 })).map((e) => e.seq)).toEqual([5, 6]);
      expect(await store.lastSeq(cid)).toBe(6);
      expect(await store.lastSeq(dmCid(A, C))).toBe(0);
    });

    it('marks a revoked event without deleting it, for every reader', async () => {
      const cid = dmCid(A, B);
      await store.appendEvents([dm(A, B, { face: Face.IM, id: null })]);
      const [rev] = await store.appendEvents([dm(A, B, { face: Face.IM, id: null, counts: false, revokes: { seq: 1 } })]);
      expect(rev?.event!.seq).toBe(2);
      const target = await store.getEventBySeq(cid, 1);
      expect(target?.revokedBy).toBe(2);
      expect((await store.listRange({ cid, viewer: B, limit: 10 }))[0]?.revokedBy).toBe(2);
      expect((await store.getEventBySeq(cid, 2))?.revokedBy).toBeUndefined();
    });

    it('rolls back a batch refused in the middle: none of its events, counters, chats or hides remain', async () => {
      await store.appendEvents([dm(A, B)]);
      const bad = { ...dm(A, B), sender: null as unknown as string };
      await expect(store.appendEvents([dm(A, C), dm(A, B), dm(A, B, { counts: false, onlyFor: A, hides: { seq: 1 } }), bad, dm(C, B)]))
        .rejects.toThrow();
      expect(await store.lastSeq(dmCid(A, B))).toBe(1);
      expect(await store.lastSeq(dmCid(A, C))).toBe(0);
      expect(await store.getChat(A, dmCid(A, C))).toBeNull();
      expect(await store.getChat(C, dmCid(B, C))).toBeNull();
      expect((await store.listEvents({ cid: dmCid(A, B), viewer: A, limit: 10, offset: 0 })).map((e) => e.seq)).toEqual([1]);
      const [next] = await store.appendEvents([dm(A, B)]);
      expect(next?.event!.seq).toBe(2);
    });

    it('has an epoch: 32 hex digits, the same on every call', async () => {
      const e = await store.epoch();
      expect(e).toMatch(/^[0-9a-f]{32}$/);
      expect(await store.epoch()).toBe(e);
    });

    it('gives every new store its own epoch', async () => {
      const other = await make();
      try {
        expect(await other.epoch()).not.toBe(await store.epoch());
      } finally {
        await other.close();
      }
    });

    if (reopen) describe('with a second instance on the same data', () => {
      let second: Store;
      beforeEach(async () => { second = await reopen(store); });
      afterEach(async () => { await second.close(); });

      it('shares the epoch', async () => {
        expect(await second.epoch()).toBe(await store.epoch());
      });

      it('gives gap-free seqs to concurrent writers of one conversation, and unique commit positions', async () => {
        const calls = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? store : second)
          .appendEvents(Array.from({ length: 1 + (i % 4) }, (_u, j) => (j % 2 === 0 ? dm(A, B) : dm(B, A)))));
        const outs = (await Promise.all(calls)).flat();
        const seqs = outs.map((o) => o.event!.seq).sort((x, y) => x - y);
        expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, i) => i + 1));
        expect(new Set(outs.map((o) => o.event!.pos)).size).toBe(outs.length);
        // each instance's own calls keep their call order
        const listed = await second.listEvents({ cid: dmCid(A, B), viewer: A, afterSeq: 0, limit: 1000, offset: 0 });
        expect(listed.map((e) => e.seq)).toEqual(seqs);
        // positions follow seq within the conversation: a later seq committed later
        expect(listed.map((e) => e.pos)).toEqual([...listed.map((e) => e.pos)].sort((x, y) => x - y));
      });

      it('stores an id written by both instances at once exactly once', async () => {
        const e = dm(A, B);
        const [x, y] = await Promise.all([store.appendEvents([e, dm(A, C)]), second.appendEvents([dm(B, A), e])]);
        const statuses = [x?.[0]?.status, y?.[1]?.status].sort();
        expect(statuses).toEqual(['duplicate', 'stored']);
        expect(x?.[0]?.event).toEqual(y?.[1]?.event);
        expect((await store.listEvents({ cid: dmCid(A, B), viewer: A, limit: 10, offset: 0 })).length).toBe(2);
      });

      it('consumes a nonce once across instances', async () => {
        await store.putNonce('shared', 10_000);
        const got = await Promise.all([store.consumeNonce('shared', 1), second.consumeNonce('shared', 1), store.consumeNonce('shared', 1)]);
        expect(got.filter(Boolean)).toHaveLength(1);
      });
    });

    it('consumes a nonce once and only before it expires', async () => {
      await store.putNonce('n1', 1000);
      await store.putNonce('n2', 1000);
      expect(await store.consumeNonce('n1', 500)).toBe(true);
      expect(await store.consumeNonce('n1', 500)).toBe(false);
      expect(await store.consumeNonce('n2', 1500)).toBe(false);
      expect(await store.consumeNonce('unknown', 0)).toBe(false);
    });

    describe('MLS rules in the commit transaction (docs/e2ee.md section 4)', () => {
      let n = 0;
      const mls = (role: 'application' | 'proposal' | 'commit', epoch: number, hash = `h${++n}`): Partial<NewEvent> => ({ mls: { role, epoch, hash }, counts: role === 'application' });

      it('advances the epoch by stored commits only; a stale commit or proposal is refused with the current epoch and takes no seq', async () => {
        const cid = dmCid(A, B);
        expect(await store.mlsGroup(cid)).toEqual({ cid, epoch: 0, pendingRemovalEpoch: null });
        const [c0] = await store.appendEvents([dm(A, B, mls('commit', 0))]);
        expect(c0?.status).toBe('stored');
        expect(await store.mlsGroup(cid)).toMatchObject({ epoch: 1 });
        const out = await store.appendEvents([dm(B, A, mls('commit', 0)), dm(B, A, mls('proposal', 0)), dm(A, B, mls('proposal', 1)), dm(A, B, mls('application', 0)), dm(A, B, mls('commit', 1))]);
        expect(out.map((o) => o.status)).toEqual(['refused', 'refused', 'stored', 'stored', 'stored']);
        expect(out[0]).toEqual({ status: 'refused', code: 'MLS_STALE_EPOCH', currentEpoch: 1 });
        expect(out[1]).toEqual({ status: 'refused', code: 'MLS_STALE_EPOCH', currentEpoch: 1 });
        expect(out.slice(2).map((o) => o.event!.seq)).toEqual([2, 3, 4]);
        expect(await store.mlsGroup(cid)).toMatchObject({ epoch: 2 });
        expect(await store.lastSeq(cid)).toBe(4);
        // another conversation's group is its own
        expect((await store.appendEvents([dm(A, C, mls('commit', 0))]))[0]?.status).toBe('stored');
        expect(await store.mlsGroup(dmCid(A, C))).toMatchObject({ epoch: 1 });
      });

      it('refuses the same MLS bytes twice in a conversation (MLS_REPLAY), in one batch or across batches; a resent id stays a duplicate', async () => {
        const first = dm(A, B, mls('application', 0, 'same'));
        const out = await store.appendEvents([first, dm(A, B, mls('application', 0, 'same'))]);
        expect(out.map((o) => o.status)).toEqual(['stored', 'refused']);
        expect(out[1]).toMatchObject({ code: 'MLS_REPLAY' });
        expect((await store.appendEvents([dm(B, A, mls('application', 0, 'same'))]))[0]).toMatchObject({ status: 'refused', code: 'MLS_REPLAY' });
        expect((await store.appendEvents([first]))[0]?.status).toBe('duplicate');
        // the same bytes in another conversation are not a replay of this one
        expect((await store.appendEvents([dm(A, C, mls('application', 0, 'same'))]))[0]?.status).toBe('stored');
        expect(await store.lastSeq(dmCid(A, B))).toBe(1);
      });

      it('of 20 overlapping commits at the same epoch stores exactly one (and of two in one batch, the first)', async () => {
        const cid = dmCid(A, B);
        const outs = await Promise.all(Array.from({ length: 20 }, () => store.appendEvents([dm(A, B, mls('commit', 0))])));
        expect(outs.flat().filter((o) => o.status === 'stored')).toHaveLength(1);
        expect(outs.flat().filter((o) => o.status === 'refused').every((o) => o.status === 'refused' && o.code === 'MLS_STALE_EPOCH' && o.currentEpoch === 1)).toBe(true);
        expect(await store.lastSeq(cid)).toBe(1);
        const both = await store.appendEvents([dm(A, B, mls('commit', 1)), dm(B, A, mls('commit', 1))]);
        expect(both.map((o) => o.status)).toEqual(['stored', 'refused']);
        expect(await store.mlsGroup(cid)).toMatchObject({ epoch: 2 });
      });

      if (reopen) it('of 20 commits at the same epoch from two connections at once stores exactly one', async () => {
        const other = await reopen(store);
        try {
          for (const epoch of [0, 1]) {
            const outs = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? store : other).appendEvents([dm(A, B, mls('commit', epoch))])));
            expect(outs.flat().filter((o) => o.status === 'stored')).toHaveLength(1);
            expect(outs.flat().filter((o) => o.status === 'refused')).toHaveLength(19);
          }
          expect(await store.lastSeq(dmCid(A, B))).toBe(2);
          expect(await other.mlsGroup(dmCid(A, B))).toMatchObject({ epoch: 2 });
        } finally {
          await other.close();
        }
      });
    });

    describe('MLS directory (docs/e2ee.md section 5)', () => {
      const dev = (id: string, address = A) => ({ deviceId: id.padEnd(32, '0'), address, credential: `cred-${id}`, createdAt: 1 });
      const limits = { maxDevices: 2, maxPackages: 5 };
      // Lifetimes in seconds: usable while notAfter > now + minLeft; expired at notAfter <= now.
      const at = { now: 1_000_000, minLeft: 3600 };
      const FAR = at.now + 30 * 86_400;
      const k = (keyPackage: string, notAfter = FAR) => ({ keyPackage, notAfter });
      const ks = (...names: string[]) => names.map((n) => k(n));

      it('uploads per device, caps devices and packages, claims single use then the last resort, deletes', async () => {
        expect(await store.mlsUpload(dev('a1'), ks('p1', 'p2'), k('last1'), limits, at)).toEqual({ status: 'ok', available: 2, lastResort: true });
        expect(await store.mlsUpload(dev('a1'), ks('p3'), null, limits, at)).toEqual({ status: 'ok', available: 3, lastResort: true });
        expect(await store.mlsUpload(dev('a1'), ks('x', 'x', 'x'), null, limits, at)).toEqual({ status: 'refused', code: 'TOO_MANY_PACKAGES' });
        expect(await store.mlsUpload(dev('a2'), ks('q1'), null, limits, at)).toMatchObject({ status: 'ok', available: 1, lastResort: false });
        expect(await store.mlsUpload(dev('a3'), ks('r1'), null, limits, at)).toEqual({ status: 'refused', code: 'MLS_TOO_MANY_DEVICES' });
        expect(await store.mlsUpload(dev('a1', B), ks('s1'), null, limits, at)).toEqual({ status: 'refused', code: 'MLS_TOO_MANY_DEVICES' }); // another wallet's device id
        expect((await store.mlsDevices(A, at)).map((d) => [d.deviceId.slice(0, 2), d.available, d.lastResort, d.credential])).toEqual([['a1', 3, true, 'cred-a1'], ['a2', 1, false, 'cred-a2']]);
        const first = await store.mlsClaim([A, B], at);
        expect(first.map((c) => [c.deviceId.slice(0, 2), c.keyPackage, c.lastResort, c.available])).toEqual([['a1', 'p1', false, 2], ['a2', 'q1', false, 0]]);
        expect((await store.mlsClaim([A], at)).map((c) => c.keyPackage)).toEqual(['p2']);
        expect((await store.mlsClaim([A], at)).map((c) => c.keyPackage)).toEqual(['p3']);
        for (let i = 0; i < 2; i++) expect((await store.mlsClaim([A], at)).map((c) => [c.keyPackage, c.lastResort])).toEqual([['last1', true]]);
        expect(await store.mlsDeleteDevice(B, dev('a1').deviceId)).toBe(false);
        expect(await store.mlsDeleteDevice(A, dev('a1').deviceId)).toBe(true);
        expect(await store.mlsClaim([A], at)).toEqual([]);
        expect(await store.mlsDevices(A, at)).toHaveLength(1);
      });

      it('lifetimes: a claim skips packages with an hour or less left, never hands out an expired one and deletes it; counts are of usable ones', async () => {
        const big = { maxDevices: 10, maxPackages: 5 };
        // oldest first: expired, exactly minLeft left, a second more than minLeft, then two far ones
        const up = await store.mlsUpload(dev('l1'), [k('expired', at.now - 1), k('at-edge', at.now + at.minLeft), k('just-ok', at.now + at.minLeft + 1), k('far1'), k('far2')],
          k('last-short', at.now + 60), big, at);
        expect(up).toEqual({ status: 'ok', available: 3, lastResort: false });
        expect((await store.mlsDevices(A, at)).find((d) => d.deviceId.startsWith('l1'))).toMatchObject({ available: 3, lastResort: false });
        const handed: [string, boolean, number][] = [];
        for (let i = 0; i < 4; i++) handed.push(...(await store.mlsClaim([A], at)).filter((c) => c.deviceId.startsWith('l1')).map((c) => [c.keyPackage, c.lastResort, c.available] as [string, boolean, number]));
        // the last-resort one has a minute left: never handed out, so the device drops out of claims
        expect(handed).toEqual([['just-ok', false, 2], ['far1', false, 1], ['far2', false, 0]]);
        // the expired row was deleted at claim time: the cap (5) counts only what is left (at-edge, last-short)
        expect(await store.mlsUpload(dev('l1'), ks('n1', 'n2', 'n3'), null, big, at)).toEqual({ status: 'ok', available: 3, lastResort: false });
        // later, at-edge and last-short have expired: the next upload deletes them, and a usable last resort is handed out again
        const later = { now: at.now + at.minLeft + 10, minLeft: at.minLeft };
        expect(await store.mlsUpload(dev('l1'), ks('n4', 'n5'), k('last-new'), big, later)).toEqual({ status: 'ok', available: 5, lastResort: true });
        const names: string[] = [];
        for (let i = 0; i < 6; i++) names.push(...(await store.mlsClaim([A], later)).filter((c) => c.deviceId.startsWith('l1')).map((c) => c.keyPackage));
        expect(names).toEqual(['n1', 'n2', 'n3', 'n4', 'n5', 'last-new']);
      });

      it('keeps a GroupInfo only at the current epoch; the first epoch-auth report and the first meta value win', async () => {
        const cid = dmCid(A, B);
        expect(await store.mlsPutGroupInfo(cid, 1, 'gi1', 5)).toEqual({ stored: false, currentEpoch: 0 });
        expect(await store.mlsPutGroupInfo(cid, 0, 'gi0', 5)).toEqual({ stored: true, currentEpoch: 0 });
        expect(await store.mlsGroupRecord(cid)).toMatchObject({ epoch: 0, groupInfo: 'gi0', groupInfoEpoch: 0 });
        // a first commit after a GroupInfo at epoch 0 still advances the group
        expect((await store.appendEvents([dm(A, B, { mls: { role: 'commit', epoch: 0, hash: 'gi-c0' }, counts: false })]))[0]?.status).toBe('stored');
        expect(await store.mlsPutGroupInfo(cid, 0, 'late', 6)).toEqual({ stored: false, currentEpoch: 1 });
        expect(await store.mlsPutGroupInfo(cid, 1, 'gi1', 7)).toEqual({ stored: true, currentEpoch: 1 });
        expect(await store.mlsGroupRecord(cid)).toMatchObject({ epoch: 1, groupInfo: 'gi1', groupInfoEpoch: 1 });
        expect(await store.mlsEpochAuth(cid, 1, 'h1')).toBe('h1');
        expect(await store.mlsEpochAuth(cid, 1, 'h2')).toBe('h1');
        expect(await store.mlsEpochAuth(cid, 2, 'h2')).toBe('h2');
        expect(await store.metaGetOrSet('mls_test', 'one')).toBe('one');
        expect(await store.metaGetOrSet('mls_test', 'two')).toBe('one');
      });

      if (reopen) it('never gives one KeyPackage to two claimers on two connections at once', async () => {
        const other = await reopen(store);
        try {
          const pkgs = Array.from({ length: 5 }, (_, i) => `pkg${i}`);
          await store.mlsUpload(dev('c1'), pkgs.map((p) => k(p)), k('lr'), { maxDevices: 10, maxPackages: 200 }, at);
          const outs = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? store : other).mlsClaim([A], at)));
          const single = outs.flat().filter((c) => !c.lastResort).map((c) => c.keyPackage);
          expect(single.sort()).toEqual(pkgs);
          expect(outs.flat().filter((c) => c.lastResort)).toHaveLength(7);
        } finally {
          await other.close();
        }
      });
    });

    it('keeps the ban list: add, replace, list oldest first, lift', async () => {
      expect(await store.listBans()).toEqual([]);
      await store.putBan({ address: B, reason: 'spam', createdAt: 2000 });
      await store.putBan({ address: A, reason: 'abuse', createdAt: 1000 });
      await store.putBan({ address: B, reason: 'spam again', createdAt: 3000 });
      expect(await store.listBans()).toEqual([
        { address: A, reason: 'abuse', createdAt: 1000 },
        { address: B, reason: 'spam again', createdAt: 3000 },
      ]);
      expect(await store.deleteBan(A)).toBe(true);
      expect(await store.deleteBan(A)).toBe(false);
      expect(await store.listBans()).toEqual([{ address: B, reason: 'spam again', createdAt: 3000 }]);
    });
  });
}
