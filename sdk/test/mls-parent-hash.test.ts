import { describe, expect, it } from 'vitest';
import {
  createCommit, createGroup, defaultCredentialTypes, defaultProposalTypes, generateKeyPackage, getCiphersuiteImpl, joinGroup, leafNodeSources, nodeTypes,
  processMessage, unsafeTestingAuthenticationService, type ClientState, type MlsContext,
} from 'ts-mls';
// ts-mls's internals (not exported from its index): the function the project's patch changes, and the
// unchanged per-node function the reference below is built from.
import { calculateParentHash, verifyParentHashes } from 'ts-mls/dist/src/parentHash.js';
import { leafWidth, root } from 'ts-mls/dist/src/treemath.js';

type Tree = ClientState['ratchetTree'];
type Hash = Awaited<ReturnType<typeof getCiphersuiteImpl>>['hash'];
const verify = verifyParentHashes as (tree: Tree, h: Hash) => Promise<boolean>;
const calc = calculateParentHash as (tree: Tree, nodeIndex: number, h: Hash) => Promise<[Uint8Array, number | undefined]>;

/**
 * rc.10's parent-hash coverage, as it was before the patch (every sibling tree hash computed afresh),
 * written against the unchanged `calculateParentHash`: the reference the patched one must agree with.
 */
async function reference(tree: Tree, h: Hash): Promise<boolean> {
  const parents = tree.flatMap((n, i) => (n !== undefined && n.nodeType === nodeTypes.parent ? [i] : []));
  if (parents.length === 0) return true;
  const rootIndex = (root as (w: number) => number)((leafWidth as (n: number) => number)(tree.length));
  const coverage = new Map<number, number>();
  for (let i = 0; i < tree.length; i += 2) {
    if (tree[i] === undefined) continue;
    let cur = i;
    while (cur !== rootIndex) {
      const node = tree[cur]!;
      const [hash, at] = await calc(tree, cur, h);
      const expected = node.nodeType === nodeTypes.parent ? node.parent.parentHash : node.leaf.leafNodeSource === leafNodeSources.commit ? node.leaf.parentHash : undefined;
      if (expected === undefined || Buffer.compare(Buffer.from(hash), Buffer.from(expected)) !== 0) break;
      coverage.set(at!, (coverage.get(at!) ?? 0) + 1);
      cur = at!;
    }
  }
  return parents.every((p) => coverage.get(p) === 1);
}

describe('ts-mls with the project patch: parent-hash verification of a joined tree', () => {
  it('agrees with rc.10\'s algorithm on a tree filled by members\' commits, and refuses tampered parent hashes and keys', async () => {
    const cs = await getCiphersuiteImpl('MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519');
    const context: MlsContext = { cipherSuite: cs, authService: unsafeTestingAuthenticationService };
    const kp = (name: string) => generateKeyPackage({ credential: { credentialType: defaultCredentialTypes.basic, identity: new TextEncoder().encode(name) }, cipherSuite: cs });
    const pkgs = await Promise.all(Array.from({ length: 11 }, (_, i) => kp(`m${i}`)));
    let states: ClientState[] = [await createGroup({ context, groupId: new TextEncoder().encode('g'), keyPackage: pkgs[0]!.publicPackage, privateKeyPackage: pkgs[0]!.privatePackage })];
    const add = await createCommit({ context, state: states[0]!, extraProposals: pkgs.slice(1).map((x) => ({ proposalType: defaultProposalTypes.add, add: { keyPackage: x.publicPackage } })) });
    states[0] = add.newState;
    for (const x of pkgs.slice(1)) states.push(await joinGroup({ context, welcome: add.welcome!.welcome, keyPackage: x.publicPackage, privateKeys: x.privatePackage, ratchetTree: add.newState.ratchetTree }));
    // members commit in turn (empty commits carry an UpdatePath), filling parents across the tree
    for (const who of [9, 4, 7, 2, 10, 5]) {
      const c = await createCommit({ context, state: states[who]! });
      states = await Promise.all(states.map(async (s, i) => {
        if (i === who) return c.newState;
        const r = await processMessage({ context, state: s, message: c.commit });
        if (r.kind !== 'newState') throw new Error('commit not applied');
        return r.newState;
      }));
    }
    const tree = states[0]!.ratchetTree;
    const parents = tree.flatMap((n, i) => (n !== undefined && n.nodeType === nodeTypes.parent ? [i] : []));
    expect(parents.length).toBeGreaterThan(5);
    expect(await reference(tree, cs.hash)).toBe(true);
    expect(await verify(tree, cs.hash)).toBe(true);

    // Every parent node's parent hash, and every parent's public key, flipped in turn.
    for (const p of parents) {
      for (const field of ['parentHash', 'hpkePublicKey'] as const) {
        const node = tree[p]!;
        if (node.nodeType !== nodeTypes.parent) throw new Error('expected a parent');
        const bytes = node.parent[field].slice();
        if (bytes.length === 0) continue;
        bytes[0]! ^= 1;
        const tampered: Tree = tree.slice();
        tampered[p] = { ...node, parent: { ...node.parent, [field]: bytes } };
        const ref = await reference(tampered, cs.hash);
        expect(await verify(tampered, cs.hash)).toBe(ref);
        expect(ref).toBe(false);
      }
    }
    // A committed leaf's parent hash flipped.
    const leafAt = tree.findIndex((n, i) => i % 2 === 0 && n?.nodeType === nodeTypes.leaf && n.leaf.leafNodeSource === leafNodeSources.commit);
    const leaf = tree[leafAt]!;
    if (leaf.nodeType !== nodeTypes.leaf || leaf.leaf.leafNodeSource !== leafNodeSources.commit) throw new Error('expected a committed leaf');
    const ph = leaf.leaf.parentHash.slice();
    ph[0]! ^= 1;
    const tampered: Tree = tree.slice();
    tampered[leafAt] = { ...leaf, leaf: { ...leaf.leaf, parentHash: ph } };
    expect(await reference(tampered, cs.hash)).toBe(false);
    expect(await verify(tampered, cs.hash)).toBe(false);
  });
});
