import { Interface, type FunctionFragment, type EventFragment } from 'ethers';
import { describe, expect, it } from 'vitest';
import { ABI } from '../../src/roles/relations/chain/abi.js';
import { ARTIFACTS, SOLC_VERSION, SOURCE_HASH } from '../../src/roles/relations/chain/artifacts.generated.js';
import { DEPLOYABLE, compileContracts } from '../../scripts/contracts/compile.js';

describe('contracts/ and their committed artifacts', () => {
  it('artifacts.generated.ts is what contracts/*.sol compile to (run `npm run contracts:compile` if not)', () => {
    const result = compileContracts();
    expect(result.solcVersion).toBe(SOLC_VERSION);
    expect(result.sourceHash).toBe(SOURCE_HASH);
    expect(result.contracts).toEqual(ARTIFACTS);
  }, 120_000);

  it.each(DEPLOYABLE)('%s implements its functions and events exactly as contracts-abi/ declares them', (name) => {
    const ours = new Interface([...ARTIFACTS[name].abi]);
    const upstream = new Interface(ABI[name]);
    const readOnly = (m: string): string => (m === 'pure' || m === 'view' ? 'read' : m);
    ours.forEachFunction((f: FunctionFragment) => {
      const theirs = upstream.getFunction(f.selector);
      expect(theirs, `${name}.${f.format()} is not in contracts-abi/${name}.json`).not.toBeNull();
      expect(theirs?.outputs.map((o) => o.type)).toEqual(f.outputs.map((o) => o.type));
      expect(readOnly(theirs?.stateMutability ?? '')).toBe(readOnly(f.stateMutability));
    });
    ours.forEachEvent((e: EventFragment) => {
      const theirs = upstream.getEvent(e.topicHash);
      expect(theirs, `${name} event ${e.format()} is not in contracts-abi/${name}.json`).not.toBeNull();
      expect(theirs?.inputs.map((i) => i.indexed)).toEqual(e.inputs.map((i) => i.indexed));
    });
  });

  it('each contract offers what the reader and the demo seed call', () => {
    const needs: Record<(typeof DEPLOYABLE)[number], string[]> = {
      NameService: ['register', 'nameOf', 'profileURI', 'setProfileURI'],
      FollowRegister: ['deployFollowContract', 'ownedFollowContract'],
      Follow: ['follow', 'unfollow', 'isFollowing', 'representedAddress'],
      DaoRegister: ['deployDaoContract', 'daoOf'],
      Dao: ['name', 'daoURI', 'setDaoURI', 'ownerOfDao', 'isFreeJoin', 'setFreeJoin', 'join', 'addMember', 'remove', 'isMember'],
    };
    for (const name of DEPLOYABLE) {
      const ours = new Interface([...ARTIFACTS[name].abi]);
      for (const fn of needs[name]) expect(ours.getFunction(fn), `${name}.${fn}`).not.toBeNull();
    }
  });
});
