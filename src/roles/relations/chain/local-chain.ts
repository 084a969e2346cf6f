import { createRequire } from 'node:module';
import { HDNodeWallet, Mnemonic, computeAddress } from 'ethers';
import { RpcError, TransportError, type Eip1193 } from './eip1193.js';

// EDR is a native (napi) CommonJS module; load it lazily so nothing pays for it unless a local chain starts.
type Edr = typeof import('@nomicfoundation/edr');
type EdrProvider = Awaited<ReturnType<InstanceType<Edr['EdrContext']>['createProvider']>>;
const require = createRequire(import.meta.url);

/** The well-known development mnemonic (Hardhat/Anvil): its keys are public, never use them on a real network. */
export const DEV_MNEMONIC = 'test test test test test test test test test test test junk';
export const LOCAL_CHAIN_ID = 31337;

export interface LocalChainOptions {
  chainId?: number;
  /** How many funded development accounts to create (default 20). */
  accounts?: number;
  /** Balance of each development account, in wei (default 10,000 ether). */
  balanceWei?: bigint;
  /** Block gas limit (default 60M, so large batches such as seeding thousands of members fit). */
  blockGasLimit?: bigint;
}

/** Private keys of the first `count` accounts of `DEV_MNEMONIC` (m/44'/60'/0'/0/i). */
export function devKeys(count: number): string[] {
  const root = HDNodeWallet.fromMnemonic(Mnemonic.fromPhrase(DEV_MNEMONIC), "m/44'/60'/0'/0");
  return Array.from({ length: count }, (_, i) => root.deriveChild(i).privateKey);
}

let context: Promise<{ edr: Edr; ctx: InstanceType<Edr['EdrContext']> }> | undefined;

/** EDR wants exactly one context per process; all local chains share it. */
function edrContext(): Promise<{ edr: Edr; ctx: InstanceType<Edr['EdrContext']> }> {
  context ??= (async () => {
    const edr = require('@nomicfoundation/edr') as Edr;
    const ctx = new edr.EdrContext();
    await ctx.registerProviderFactory(edr.L1_CHAIN_TYPE, edr.l1ProviderFactory());
    return { edr, ctx };
  })();
  return context;
}

const bytes = (hex: string): Uint8Array => Uint8Array.from(Buffer.from(hex.replace(/^0x/, ''), 'hex'));

/**
 * An in-process Ethereum chain (Hardhat's EDR, the Rust EVM behind Hardhat 3) exposed as an EIP-1193
 * provider: automining (every transaction is its own block, mined at once), funded development accounts,
 * state in memory only. Wrap it with `ethersProvider(chain, chain.chainId)` for ethers v6.
 */
export class LocalChain implements Eip1193 {
  #closed = false;
  #id = 0;

  private constructor(
    private readonly provider: EdrProvider,
    readonly chainId: number,
    /** Private keys of the funded development accounts (derived from DEV_MNEMONIC). */
    readonly keys: readonly string[],
  ) {}

  static async start(options: LocalChainOptions = {}): Promise<LocalChain> {
    const { edr, ctx } = await edrContext();
    const chainId = options.chainId ?? LOCAL_CHAIN_ID;
    const keys = devKeys(options.accounts ?? 20);
    const hardfork = edr.PRAGUE;
    const balance = options.balanceWei ?? 10n ** 22n;
    const genesisState = [
      ...edr.l1GenesisState(edr.l1HardforkFromString(hardfork)),
      ...keys.map((k) => ({ address: bytes(computeAddress(k)), balance })),
    ];
    const provider = await ctx.createProvider(
      edr.L1_CHAIN_TYPE,
      {
        allowBlocksWithSameTimestamp: true,
        allowUnlimitedContractSize: false,
        bailOnCallFailure: true,
        bailOnTransactionFailure: true,
        chainId: BigInt(chainId),
        coinbase: bytes('0x' + '00'.repeat(20)),
        defaultTransactionGasLimit: 30_000_000n,
        genesisState,
        hardfork,
        initialBaseFeePerGas: 1_000_000_000n,
        minGasPrice: 0n,
        mining: { autoMine: true, memPool: { order: edr.MineOrdering.Priority } },
        network: { genesisBlockGasLimit: options.blockGasLimit ?? 60_000_000n },
        networkId: BigInt(chainId),
        observability: {},
        ownedAccounts: [],
        precompileOverrides: [],
      },
      { enable: false, decodeConsoleLogInputsCallback: () => [], printLineCallback: () => {} },
      { subscriptionCallback: () => {} },
      new edr.ContractDecoder(),
    );
    return new LocalChain(provider, chainId, keys);
  }

  async request(args: { method: string; params?: readonly unknown[] | Record<string, unknown> }): Promise<unknown> {
    if (this.#closed) throw new TransportError('local chain is closed');
    const response = await this.provider.handleRequest(
      JSON.stringify({ jsonrpc: '2.0', id: ++this.#id, method: args.method, params: args.params ?? [] }),
    );
    const raw: unknown = response.data;
    const body = (typeof raw === 'string' ? JSON.parse(raw) : raw) as {
      result?: unknown;
      error?: { code: number; message: string; data?: unknown };
    };
    if (body.error) {
      // EDR nests the revert bytes ({ reason, data }); ethers decodes revert reasons from a hex `data`.
      const data = body.error.data as { data?: unknown } | undefined;
      throw new RpcError(body.error.code, body.error.message, typeof data?.data === 'string' ? data.data : body.error.data);
    }
    return body.result;
  }

  /**
   * One JSON-RPC request object exactly as a client sent it (its own id), answered exactly as EDR answers it
   * (`result` or `error`, EDR's codes and data): what the external JSON-RPC port serves.
   */
  async raw(call: unknown): Promise<unknown> {
    if (this.#closed) throw new TransportError('local chain is closed');
    const response = await this.provider.handleRequest(JSON.stringify(call));
    const data: unknown = response.data;
    return typeof data === 'string' ? JSON.parse(data) : data;
  }

  /** Refuses further requests; the EDR provider's memory is freed when it is garbage-collected. */
  async close(): Promise<void> {
    this.#closed = true;
  }
}

