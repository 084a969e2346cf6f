import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { RelationActions } from '../../src/roles/relations/chain/demo.js';
import { ethersProvider } from '../../src/roles/relations/chain/eip1193.js';
import { demoSuite, until, type Demo, type MlsDev } from './support.js';

// Issue 17, "a client offline across many epochs: each ends readable or reported, never silently
// dropped". carol's device is offline while the others take the DAO group through more than 20 epochs
// (key updates, two members added by external commit, one removed by the chain watcher's proposal) and
// send a message at every epoch; when it comes back it resumes, processes every handshake in seq order,
// and each message sent meanwhile is either read or reported. Real server, real chain.
const EPOCHS = 20;

describe('MLS: a device offline across many epochs', () => {
  let demo: Demo;
  const { dev, reads } = demoSuite({ allowDevPlaintext: false, relationsRefreshMs: 200 }, (d) => { demo = d; });

  it('comes back after 20+ epochs of updates, adds and a removal and reads (or reports) every message', async () => {
    const dao = demo.dao;
    const alice = await dev('alice');
    const bob = await dev('bob');
    const carol = await dev('carol');
    for (const d of [alice, bob, carol]) await d.mls.join(dao, 1);
    const hello = `before carol goes offline ${Date.now()}`;
    await alice.client.send(dao, hello, { kind: 1 });
    await until(() => reads(carol, hello), 30_000, 'carol reads before going offline');
    const carolEpoch = (await carol.mls.epochOf(dao))!;
    carol.client.close();

    const provider = ethersProvider(demo.chain.chain!, demo.chain.chain!.chainId);
    const actions = new RelationActions(demo.chain.addresses);
    const daveAddr = new Wallet(demo.keys.dave).address;
    const senders: MlsDev[] = [alice, bob];
    const sent: { id: string; seq: number; text: string }[] = [];
    let dave: MlsDev | null = null;
    const serverEpoch = async (): Promise<number> => (await alice.client.rest.mlsGroup(dao)).epoch;
    const start = await serverEpoch();
    for (let step = 0; (await serverEpoch()) - start < EPOCHS; step++) {
      const before = await serverEpoch();
      if (step === 4) {
        // dave joins the DAO on chain and the group by external commit (an add).
        await actions.join(new Wallet(demo.keys.dave, provider), dao);
        await until(async () => (await demo.chain.reader.isMember(dao, daveAddr.toLowerCase())), 30_000, 'dave is a member on chain');
        dave = await dev('dave');
        await dave.mls.join(dao, 1);
        senders.push(dave);
      } else if (step === 8) {
        // A second device of bob joins (another add).
        const bob2 = await dev('bob');
        await bob2.mls.join(dao, 1);
        senders.push(bob2);
      } else if (step === 12 && dave) {
        // dave leaves the DAO on chain: the watcher proposes his removal, alice's or bob's client commits it.
        senders.splice(senders.indexOf(dave), 1);
        dave.client.close();
        await actions.remove(new Wallet(demo.keys.dave, provider), dao, daveAddr);
        await until(async () => !((await alice.mls.members(dao)) ?? []).some((m) => m.wallet === daveAddr.toLowerCase()), 30_000, 'dave removed');
      } else {
        // A key update (an empty commit with a path) by one of the members.
        const by = senders[step % senders.length]!;
        await by.mls.update(dao, 1);
      }
      // Everyone online has caught up with the epoch before the next one is sent on.
      await until(async () => (await serverEpoch()) > before, 30_000, `epoch moves at step ${step}`);
      const now = await serverEpoch();
      for (const d of senders) await until(async () => Number(await d.mls.epochOf(dao)) === now, 30_000, `a member at epoch ${now}`);
      const by = senders[step % senders.length]!;
      const text = `offline step ${step} from ${by.client.address.slice(0, 8)} ${Date.now()}`;
      const r = await by.client.send(dao, text, { kind: 1 });
      sent.push({ id: r.id, seq: r.seq, text });
    }
    const finalEpoch = await serverEpoch();
    expect(finalEpoch - Number(carolEpoch)).toBeGreaterThanOrEqual(EPOCHS);
    expect(sent.length).toBeGreaterThanOrEqual(EPOCHS - 2);

    // carol's device comes back with its stored state and cursors.
    const back = await dev('carol', carol.storage);
    const accounted = async (): Promise<boolean> => {
      for (const s of sent) if (!(await reads(back, s.text)) && !back.bad.some((u) => u.id === s.id)) return false;
      return true;
    };
    await until(accounted, 60_000, 'every message sent while carol was offline is read or reported');
    await back.mls.idle(dao, 1);
    const unread = [];
    for (const s of sent) if (!(await reads(back, s.text))) unread.push(s);
    // Nothing is both read and reported; what is not read is reported with its seq and a reason.
    for (const s of sent) {
      const reported = back.bad.filter((u) => u.id === s.id);
      if (await reads(back, s.text)) expect(reported).toEqual([]);
      else expect(reported[0]).toMatchObject({ seq: s.seq, chatId: dao.toLowerCase() });
    }
    // Processed in order, the stored state reaches the current epoch and reads everything.
    expect(unread).toEqual([]);
    expect(back.bad).toEqual([]);
    expect(Number(await back.mls.epochOf(dao))).toBe(finalEpoch);
    expect(await back.mls.epochAuthHash(dao)).toBe(await alice.mls.epochAuthHash(dao));
    const after = `after carol is back ${Date.now()}`;
    await back.client.send(dao, after, { kind: 1 });
    await until(async () => (await reads(alice, after)) && (await reads(bob, after)), 30_000, 'the others read carol again');
  }, 180_000);
});
