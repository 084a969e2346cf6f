import { describe, expect, it } from 'vitest';
import { conversationId } from '../src/mls/mls-encryptor.js';
import { demoSuite, until, type Demo, type MlsDev } from './support.js';

// A commit that goes stale makes the device catch up from the conversation's history (catchUp). The
// application messages sent at the epochs it passes through must be opened then, at their epoch: once
// its group is past them, the engine keeps only the last few epochs' keys (ts-mls: 4), and they would
// be reported `old-epoch` when they arrive. Real server, real chain, no ALLOW_DEV_PLAINTEXT.
/** Epochs the others go through while alice's device is away: more than the engine's key retention. */
const EPOCHS = 7;

describe('MLS: catching up after a stale commit', () => {
  let demo: Demo;
  const { dev, reads } = demoSuite({ allowDevPlaintext: false }, (d) => { demo = d; });

  it('a device whose commit went stale reads every message sent at the epochs it caught up through', async () => {
    const alice = await dev('alice');
    const bob = await dev('bob');
    const cid = conversationId(alice.client.address, bob.client.address, 0);
    const hello = `hello before alice goes away ${Date.now()}`;
    await alice.client.send(bob.client.address, hello);
    await until(() => reads(bob, hello), 30_000, 'bob reads');
    const aliceEpoch = (await alice.mls.epochOf(cid))!;
    // alice's device goes away with its state (no live push while it is gone).
    alice.client.close();

    // Meanwhile bob gets a second device (bob's next send adds it: a commit), and bob's two devices take
    // the group through more epochs (key updates), each sending a message at every epoch.
    const bob2 = await dev('bob');
    const sent: { id: string; seq: number; text: string; epoch: bigint }[] = [];
    const say = async (d: MlsDev, text: string): Promise<void> => {
      const r = await d.client.send(alice.client.address, text, { kind: 0 });
      sent.push({ id: r.id, seq: r.seq, text, epoch: (await d.mls.epochOf(cid))! });
    };
    await say(bob, `bob adds his second device ${Date.now()}`);
    await until(async () => (await bob2.mls.epochOf(cid)) === (await bob.mls.epochOf(cid)), 30_000, 'bob2 joined');
    for (let i = 1; i < EPOCHS; i++) {
      const by = i % 2 === 0 ? bob2 : bob;
      const other = by === bob ? bob2 : bob;
      expect(await by.mls.update(alice.client.address, 0)).toBe(true);
      await until(async () => (await other.mls.epochOf(cid)) === (await by.mls.epochOf(cid)), 30_000, `both bob devices at step ${i}`);
      await say(by, `epoch step ${i} from ${by === bob ? 'bob' : 'bob2'} ${Date.now()}`);
    }
    const finalEpoch = (await bob.mls.epochOf(cid))!;
    expect(finalEpoch - aliceEpoch).toBe(BigInt(EPOCHS));
    expect(new Set(sent.map((s) => s.epoch)).size).toBe(EPOCHS);

    // alice's device, still away, writes to bob: it sees bob2 in the directory and not in its group, so it
    // commits an Add at its old epoch; the proxy answers MLS_STALE_EPOCH and the device catches up from the
    // history, then encrypts at the current epoch.
    const reply = `alice after catching up ${Date.now()}`;
    const m = await alice.client.prepare(bob.client.address, reply, { kind: 0 });
    expect(await alice.mls.epochOf(cid)).toBe(finalEpoch);
    await alice.client.rest.send(m);
    await until(async () => (await reads(bob, reply)) && (await reads(bob2, reply)), 30_000, 'both bob devices read alice');

    // alice's device comes back (same storage, a new client: the texts kept in storage are what it reads)
    // and receives the history in seq order: every message sent while it was away is read, none reported.
    const back = await dev('alice', alice.storage);
    const accounted = async (): Promise<boolean> => {
      for (const s of sent) if (!(await reads(back, s.text)) && !back.bad.some((u) => u.id === s.id)) return false;
      return true;
    };
    await until(accounted, 60_000, 'every message read or reported');
    await back.mls.idle(bob.client.address, 0);
    const unread: typeof sent = [];
    for (const s of sent) if (!(await reads(back, s.text))) unread.push(s);
    expect(back.bad).toEqual([]);
    expect(unread).toEqual([]);
    expect(await back.mls.epochAuthHash(cid)).toBe(await bob.mls.epochAuthHash(cid));
    const last = `alice is back ${Date.now()}`;
    await back.client.send(bob.client.address, last);
    await until(async () => (await reads(bob, last)) && (await reads(bob2, last)), 30_000, 'bob reads alice again');
  }, 180_000);
});
