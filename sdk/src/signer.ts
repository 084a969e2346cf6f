import { ImError, toImError } from './errors.js';
import { bytesToHex, utf8 } from './hex.js';
import { addressOf, hexToBytes, personalSign } from './keys.js';

/**
 * What the SDK needs from a wallet: its address and an EIP-191 `personal_sign` of a UTF-8 text (the
 * delegation text and the SIWE message). Everything else is signed by the session key.
 */
export interface Signer {
  readonly address: string;
  signMessage(message: string): Promise<string>;
}

/** The slice of an EIP-1193 provider (`window.ethereum`) the adapter uses. */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
}

/** Asks the provider for an account (`eth_requestAccounts`) and signs with `personal_sign`. */
export async function fromEip1193(provider: Eip1193Provider, opts: { address?: string } = {}): Promise<Signer> {
  let address = opts.address;
  if (!address) {
    let accounts: unknown;
    try {
      accounts = await provider.request({ method: 'eth_requestAccounts' });
    } catch (e) {
      throw new ImError('SIGNER_FAILED', `eth_requestAccounts failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
    }
    if (!Array.isArray(accounts) || typeof accounts[0] !== 'string') throw new ImError('SIGNER_FAILED', 'the wallet returned no account');
    address = accounts[0];
  }
  const addr = address;
  return {
    address: addr,
    async signMessage(message) {
      try {
        const sig = await provider.request({ method: 'personal_sign', params: [bytesToHex(utf8(message)), addr] });
        if (typeof sig !== 'string') throw new Error('personal_sign returned no string');
        return sig;
      } catch (e) {
        throw new ImError('SIGNER_FAILED', `personal_sign failed: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
      }
    },
  };
}

/** The slice of an ethers v6 `Signer` the adapter uses (structural: no ethers import). */
export interface EthersSignerLike {
  getAddress(): Promise<string>;
  signMessage(message: string | Uint8Array): Promise<string>;
}

export async function fromEthers(signer: EthersSignerLike): Promise<Signer> {
  const address = await signer.getAddress();
  return { address, signMessage: (m) => wrapSign(() => signer.signMessage(m)) };
}

/** The slice of a viem `LocalAccount` (or JSON-RPC account with a client bound) the adapter uses. */
export interface ViemAccountLike {
  address: string;
  signMessage(args: { message: string }): Promise<string>;
}

export function fromViemAccount(account: ViemAccountLike): Signer {
  return { address: account.address, signMessage: (message) => wrapSign(() => account.signMessage({ message })) };
}

/** A signer over a raw private key (Node scripts, tests, the demo identities of a development server). */
export function privateKeySigner(privateKey: string | Uint8Array): Signer {
  const key = typeof privateKey === 'string' ? hexToBytes(privateKey) : privateKey;
  return { address: addressOf(key), signMessage: async (m) => personalSign(key, m) };
}

async function wrapSign(f: () => Promise<string>): Promise<string> {
  try {
    return await f();
  } catch (e) {
    throw e instanceof ImError ? e : new ImError('SIGNER_FAILED', toImError(e).message, { cause: e });
  }
}
