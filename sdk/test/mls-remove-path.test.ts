import { describe, expect, it } from 'vitest';
import {
  createApplicationMessage, createCommit, createGroup, defaultCredentialTypes, defaultExtensionTypes, defaultProposalTypes,
  generateKeyPackage, getCiphersuiteImpl, joinGroup, processMessage, unsafeTestingAuthenticationService,
  type ClientState, type MlsContext,
} from 'ts-mls';

/**
 * ts-mls 2.0.0-rc.10 committed a single Remove without an UpdatePath (it asked for a path only from two
 * Removes on), so the removed member could still derive the next epoch's secrets. patches/ applies the
 * RFC 9420 rule (section 12.4.2: a path whenever the commit covers an Update or a Remove). This test
 * fails without the patch: the removed member reads the first message sent after its removal. The patch
 * also stops a member at a commit that removes it before the UpdatePath (it cannot decrypt it; rc.10 then
 * looped on a truncated leaf until the process died).
 */
describe('ts-mls with the project patch: removing one member', () => {
  it('the removed member cannot read what follows (the commit carries an UpdatePath)', async () => {
    const cs = await getCiphersuiteImpl('MLS_256_XWING_AES256GCM_SHA512_Ed25519');
    const context: MlsContext = { cipherSuite: cs, authService: unsafeTestingAuthenticationService };
    const kp = (name: string) => generateKeyPackage({ credential: { credentialType: defaultCredentialTypes.basic, identity: new TextEncoder().encode(name) }, cipherSuite: cs });
    const [a, b, c] = await Promise.all([kp('alice'), kp('bob'), kp('carol')]);
    let alice: ClientState = await createGroup({ context, groupId: new TextEncoder().encode('g'), keyPackage: a.publicPackage, privateKeyPackage: a.privatePackage });
    const add = await createCommit({
      context, state: alice, ratchetTreeExtension: true,
      extraProposals: [b, c].map((x) => ({ proposalType: defaultProposalTypes.add, add: { keyPackage: x.publicPackage } })),
    });
    alice = add.newState;
    const join = (x: typeof b) => joinGroup({ context, welcome: add.welcome!.welcome, keyPackage: x.publicPackage, privateKeys: x.privatePackage });
    let bob = await join(b);
    let carol = await join(c);

    const removal = await createCommit({ context, state: alice, extraProposals: [{ proposalType: defaultProposalTypes.remove, remove: { removed: bob.privatePath.leafIndex } }] });
    alice = removal.newState;
    carol = await processMessage({ context, state: carol, message: removal.commit }).then((r) => {
      if (r.kind !== 'newState') throw new Error('carol could not process the removal');
      return r.newState;
    });
    expect(carol.groupContext.epoch).toBe(alice.groupContext.epoch);

    const after = await createApplicationMessage({ context, state: alice, message: new TextEncoder().encode('after the removal') });
    alice = after.newState;
    const carolReads = await processMessage({ context, state: carol, message: after.message });
    expect(carolReads.kind === 'applicationMessage' && new TextDecoder().decode(carolReads.message)).toBe('after the removal');

    // Bob, removed, tries to follow: processing the removal must not give him the new epoch's secrets.
    let bobRead: string | null = null;
    try {
      const r1 = await processMessage({ context, state: bob, message: removal.commit });
      if (r1.kind === 'newState') {
        bob = r1.newState;
        const r2 = await processMessage({ context, state: bob, message: after.message });
        if (r2.kind === 'applicationMessage') bobRead = new TextDecoder().decode(r2.message);
      }
    } catch {
      bobRead = null;
    }
    expect(bobRead).toBeNull();

    // carol, the last leaf, is removed too: the tree shrinks past her leaf. Processing her own removal must
    // neither crash (rc.10 with the path rule above walked her truncated leaf's path until V8 aborted the
    // process; the patch stops a removed member before the path) nor move her to the next epoch.
    const second = await createCommit({ context, state: alice, extraProposals: [{ proposalType: defaultProposalTypes.remove, remove: { removed: carol.privatePath.leafIndex } }] });
    alice = second.newState;
    const r3 = await processMessage({ context, state: carol, message: second.commit });
    expect(r3.kind).toBe('newState');
    if (r3.kind === 'newState') {
      expect(r3.newState.groupActiveState.kind).toBe('removedFromGroup');
      expect(r3.newState.groupContext.epoch).toBe(carol.groupContext.epoch);
    }
    const later = await createApplicationMessage({ context, state: alice, message: new TextEncoder().encode('after carol left') });
    await expect(processMessage({ context, state: r3.kind === 'newState' ? { ...r3.newState, groupActiveState: { kind: 'active' } } : carol, message: later.message })).rejects.toThrow();
  });

  it('a GroupContextExtensions commit (which now carries a path) is processed by the other members', async () => {
    // rc.10 encrypted such a commit's path secrets under the GroupContext with the old extensions while
    // members decrypt under the new ones (RFC 9420 section 12.4.2: the provisional context), so nobody could
    // open it (HPKE OpenError). The SDK sends one when the proxy's external sender changes (a rebuild).
    const cs = await getCiphersuiteImpl('MLS_256_XWING_AES256GCM_SHA512_Ed25519');
    const context: MlsContext = { cipherSuite: cs, authService: unsafeTestingAuthenticationService };
    const kp = (name: string) => generateKeyPackage({ credential: { credentialType: defaultCredentialTypes.basic, identity: new TextEncoder().encode(name) }, cipherSuite: cs });
    const [a, b] = await Promise.all([kp('alice'), kp('bob')]);
    let alice: ClientState = await createGroup({ context, groupId: new TextEncoder().encode('g2'), keyPackage: a.publicPackage, privateKeyPackage: a.privatePackage });
    const add = await createCommit({ context, state: alice, ratchetTreeExtension: true, extraProposals: [{ proposalType: defaultProposalTypes.add, add: { keyPackage: b.publicPackage } }] });
    alice = add.newState;
    let bob = await joinGroup({ context, welcome: add.welcome!.welcome, keyPackage: b.publicPackage, privateKeys: b.privatePackage });
    const sender = await cs.signature.keygen();
    const extensions = [{ extensionType: defaultExtensionTypes.external_senders, extensionData: { signaturePublicKey: sender.publicKey, credential: { credentialType: defaultCredentialTypes.basic, identity: new TextEncoder().encode('proxy') } } }];
    const gce = await createCommit({ context, state: alice, extraProposals: [{ proposalType: defaultProposalTypes.group_context_extensions, groupContextExtensions: { extensions } }] });
    alice = gce.newState;
    const r = await processMessage({ context, state: bob, message: gce.commit });
    expect(r.kind).toBe('newState');
    if (r.kind === 'newState') bob = r.newState;
    expect(bob.groupContext.epoch).toBe(alice.groupContext.epoch);
    expect(bob.groupContext.extensions.some((x) => x.extensionType === defaultExtensionTypes.external_senders)).toBe(true);
    const m = await createApplicationMessage({ context, state: alice, message: new TextEncoder().encode('after the extensions changed') });
    const read = await processMessage({ context, state: bob, message: m.message });
    expect(read.kind === 'applicationMessage' && new TextDecoder().decode(read.message)).toBe('after the extensions changed');
  });
});
