import { ContractFactory, type ContractTransactionResponse, type Signer } from 'ethers';
import { ARTIFACTS } from './artifacts.generated.js';

/** Where the three root contracts live; Follow and Dao contracts are created through the registers. */
export interface RelationAddresses {
  nameService: string;
  followRegister: string;
  daoRegister: string;
}

/** The Name Service suffix used by the development contracts (`alice` registers `alice.rel`). */
export const DEV_NAME_SUFFIX = '.rel';

/**
 * Deploys this project's NameService, FollowRegister and DaoRegister (contracts/, compiled into
 * artifacts.generated.ts) with `deployer`, waiting for each deployment to be mined. Returns lowercase addresses.
 */
export async function deployRelationContracts(deployer: Signer, suffix = DEV_NAME_SUFFIX): Promise<RelationAddresses> {
  const deploy = async (name: 'NameService' | 'FollowRegister' | 'DaoRegister', args: unknown[]): Promise<string> => {
    const artifact = ARTIFACTS[name];
    const factory = new ContractFactory([...artifact.abi], artifact.bytecode, deployer);
    const contract = await factory.deploy(...args);
    await contract.waitForDeployment();
    return (await contract.getAddress()).toLowerCase();
  };
  return {
    nameService: await deploy('NameService', [suffix]),
    followRegister: await deploy('FollowRegister', []),
    daoRegister: await deploy('DaoRegister', []),
  };
}

/** Sends a contract transaction and waits until it is mined; a revert becomes an ethers CALL_EXCEPTION. */
export async function mined(tx: Promise<ContractTransactionResponse>): Promise<void> {
  const response = await tx;
  const receipt = await response.wait();
  if (!receipt || receipt.status !== 1) throw new Error(`transaction ${response.hash} failed`);
}
