import { describe, expect, it } from 'vitest';
import { demoSuite, until, type Demo, type MlsDev } from './support.js';

// Concurrent commits at one epoch, against the real server (its MLS Delivery Service), the in-process
// chain and the demo identities. The server runs WITHOUT ALLOW_DEV_PLAINTEXT: only MLS gets through.

describe('MLS: concurrent commits (real server)', () => {
  let demo: Demo;
  const { all, dev, texts } = demoSuite({ allowDevPlaintext: false }, (d) => { demo = d; });

  const hasText = async (d: MlsDev, t: string): Promise<boolean> => (await texts(d)).includes(t);

  it('randomized: N devices commit at the same epoch of a DAO group, exactly one wins, all converge', async () => {
    const who: (keyof Demo['keys'])[] = ['alice', 'bob', 'carol'];
    const n = 2 + Math.floor(Math.random() * 7); // 2..8 (bounded for npm test on a loaded machine)
    const devs: MlsDev[] = [];
    for (let i = 0; i < n; i++) devs.push(await dev(who[i % who.length]!));
    const cid = demo.dao.toLowerCase();
    // Each joins (the first creates it with the proxy's external sender) by sending a message.
    for (const [i, d] of devs.entries()) await d.client.send(demo.dao, `hello ${i}`);
    await until(async () => {
      const e = await Promise.all(devs.map((d) => d.mls.epochOf(cid)));
      return e.every((x) => x !== null && x === e[0]);
    }, 40_000, 'all joined at one epoch');
    const before = await devs[0]!.mls.epochOf(cid);
    const won = await Promise.all(devs.map((d) => d.mls.update(demo.dao, 1)));
    expect(won.filter(Boolean)).toHaveLength(1);
    await until(async () => {
      const e = await Promise.all(devs.map((d) => d.mls.epochOf(cid)));
      return e.every((x) => x === before! + 1n);
    }, 40_000, 'all at the winner\'s epoch');
    const hashes = new Set(await Promise.all(devs.map((d) => d.mls.epochAuthHash(cid))));
    expect(hashes.size).toBe(1);
    const last = `after the race ${Date.now()}`;
    await devs[n - 1]!.client.send(demo.dao, last);
    await until(async () => (await Promise.all(devs.slice(0, -1).map((d) => hasText(d, last)))).every(Boolean), 30_000, 'all read');
  }, 90_000);
});
