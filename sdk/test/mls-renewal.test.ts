import { base64ToBytes } from 'ts-mls';
import { describe, expect, it } from 'vitest';
import { parseDelegation, parseIdentity } from '../src/mls/credential.js';
import { conversationId } from '../src/mls/mls-encryptor.js';
import { decodeCredential } from '../src/mls/tsmls.js';
import { demoSuite, until, type Demo, type MlsDev } from './support.js';

// A renewed session key (a new delegation) reaches the device's KeyPackages and its leaf in every group:
// the directory serves packages of the new credential only, the device commits an update of its own leaf
// carrying it, members see the new session in the member list, and a member joining afterwards validates
// it. Real server, real chain, no ALLOW_DEV_PLAINTEXT.

describe('MLS: a renewed session key refreshes the device credential', () => {
  let demo: Demo;
  const { all, dev, reads } = demoSuite({ allowDevPlaintext: false }, (d) => { demo = d; });

  it('after a renewal: fresh KeyPackages, an updated leaf that members and a later joiner see and accept', async () => {
    const dao = demo.dao;
    const cid = dao.toLowerCase();
    const alice = await dev('alice');
    const bob = await dev('bob');
    for (const d of [alice, bob]) await d.mls.join(dao, 1);
    const hello = `before the renewal ${Date.now()}`;
    await alice.client.send(dao, hello, { kind: 1 });
    await until(() => reads(bob, hello), 30_000, 'bob reads');

    const bobId = bob.mls.deviceId!;
    const leafOf = async (d: MlsDev, c: string) => ((await d.mls.members(c)) ?? []).find((m) => m.deviceId === bobId);
    const old = await bob.client.sessions.get();
    const before = (await leafOf(alice, cid))!;
    expect(before.session).toBe(old.address.toLowerCase());

    // The session key is renewed (what SessionManager does near expiry: a new delegation, one wallet prompt).
    const renewed = await bob.client.sessions.renew();
    expect(renewed.address).not.toBe(old.address);
    // bob's next send notices it (ensureDevice) and starts the refresh; refreshCredential waits for it.
    const during = `bob right after the renewal ${Date.now()}`;
    await bob.client.send(dao, during, { kind: 1 });
    await bob.mls.refreshCredential();
    await until(() => reads(alice, during), 30_000, 'alice reads the send that started the refresh');

    // The directory: bob's device is listed with the renewed credential and has packages to claim.
    const dir = await alice.client.rest.mlsDevices(bob.client.address);
    const entry = dir.devices.find((x) => x.deviceId === bobId)!;
    expect(entry).toBeDefined();
    const listed = parseIdentity((decodeCredential(base64ToBytes(entry.credential)) as { identity: Uint8Array }).identity)!;
    expect(parseDelegation(listed.delegationMessage)!.session).toBe(renewed.address.toLowerCase());
    expect(entry.available).toBeGreaterThan(0);
    expect(entry.lastResort).toBe(true);

    // The group: bob's own leaf and alice's view of it carry the new session (same device, same fingerprint).
    const mine = (await leafOf(bob, cid))!;
    expect(mine).toMatchObject({ self: true, session: renewed.address.toLowerCase(), expiresAt: renewed.expiresAt, fingerprint: before.fingerprint });
    await until(async () => (await leafOf(alice, cid))?.session === renewed.address.toLowerCase(), 30_000, 'alice sees bob\'s renewed credential');
    expect(await alice.mls.epochAuthHash(cid)).toBe(await bob.mls.epochAuthHash(cid));

    // carol joins after the renewal (external commit from the GroupInfo of bob's commit): the tree she
    // validates holds bob's renewed leaf, and she reads him.
    const carol = await dev('carol');
    await carol.mls.join(dao, 1);
    expect((await leafOf(carol, cid))?.session).toBe(renewed.address.toLowerCase());
    const next = `bob to all three ${Date.now()}`;
    await bob.client.send(dao, next, { kind: 1 });
    await until(async () => (await reads(alice, next)) && (await reads(carol, next)), 30_000, 'alice and carol read bob');
    const fromCarol = `carol to bob ${Date.now()}`;
    await carol.client.send(dao, fromCarol, { kind: 1 });
    await until(() => reads(bob, fromCarol), 30_000, 'bob reads carol');

    // A new conversation claims one of bob's fresh packages: dave starts a direct chat with bob; his
    // Authentication Service checks the package's credential in full (the delegation window too).
    const dave = await dev('dave');
    const dm = conversationId(dave.client.address, bob.client.address, 0);
    const toBob = `dave to bob ${Date.now()}`;
    await dave.client.send(bob.client.address, toBob);
    await until(() => reads(bob, toBob), 30_000, 'bob reads dave');
    expect((await leafOf(dave, dm))?.session).toBe(renewed.address.toLowerCase());

    // A second refresh for the same session changes nothing (no commit).
    const epoch = await bob.mls.epochOf(cid);
    await bob.mls.refreshCredential();
    expect(await bob.mls.epochOf(cid)).toBe(epoch);
    for (const d of [alice, bob, carol, dave]) expect(d.bad).toEqual([]);
  }, 180_000);
});
