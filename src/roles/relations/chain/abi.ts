import { Contract, type ContractRunner } from 'ethers';
import daoAbi from '../../../../contracts-abi/Dao.json' with { type: 'json' };
import daoRegisterAbi from '../../../../contracts-abi/DaoRegister.json' with { type: 'json' };
import followAbi from '../../../../contracts-abi/Follow.json' with { type: 'json' };
import followRegisterAbi from '../../../../contracts-abi/FollowRegister.json' with { type: 'json' };
import nameServiceAbi from '../../../../contracts-abi/NameService.json' with { type: 'json' };

/**
 * The Relation Protocol interfaces (contracts-abi/*.json, ethers v6 human-readable fragments). Every read
 * goes through these, never through this project's own compiled ABIs, so the reader works against the
 * upstream contracts on a real network as well as against contracts/ on the local chain.
 */
export const ABI = {
  NameService: nameServiceAbi,
  FollowRegister: followRegisterAbi,
  Follow: followAbi,
  DaoRegister: daoRegisterAbi,
  Dao: daoAbi,
} as const satisfies Record<string, string[]>;

export type RelationContract = keyof typeof ABI;

export function relationContract(kind: RelationContract, address: string, runner: ContractRunner): Contract {
  return new Contract(address, ABI[kind], runner);
}
