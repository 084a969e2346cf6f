import { toUtf8Bytes } from 'ethers';
import { AppError } from '../../errors/app-error.js';
import { checkFreshness, parseDelegation, type Delegation } from '../../protocol/delegation.js';
import { idPreimage, type RelationMessage } from '../../protocol/message.js';
import { recoverPersonal } from './recover-core.js';
import { Lru } from './lru.js';
import type { JobRunner } from './worker-pool.js';

export interface VerifiedMessage {
  /** Lowercase wallet address of the sender (the delegator). */
  sender: string;
  delegation: Delegation;
}

/**
 * The port through which the domain checks signatures. Implementations must enforce everything of
 * SPEC section 2: id, delegation signature, message signature, windows.
 */
export interface SignatureVerifier {
  /** Verifies a structurally valid message at time `now`; throws an AppError naming the first failed check. */
  verifyMessage(m: RelationMessage, now: number): Promise<VerifiedMessage>;
  /** Lowercase address that EIP-191 signed the UTF-8 `text`, or null for a malformed or unrecoverable signature. */
  recoverText(text: string, sig: string): string | null;
  close(): Promise<void>;
}

export interface VerifierOptions {
  clockSkewMs: number;
  maxDelegationMs: number;
  delegationCacheSize: number;
}

/**
 * Cheap checks first (delegation text, windows, clock), then one job on the runner: keccak of the
 * preimage plus the session-key recovery, plus the wallet recovery only when this delegation has not
 * been seen. The cache maps (delegationMessage, delegationSig) to the address it recovers to — a pure
 * function of its key, so caching it can never accept anything a fresh recovery would refuse.
 */
export class MessageVerifier implements SignatureVerifier {
  private readonly delegations: Lru<string, string>;

  constructor(private readonly runner: JobRunner, private readonly opts: VerifierOptions) {
    this.delegations = new Lru(opts.delegationCacheSize);
  }

  async verifyMessage(m: RelationMessage, now: number): Promise<VerifiedMessage> {
    const delegation = parseDelegation(m.delegationMessage, this.opts.maxDelegationMs);
    checkFreshness(delegation, m.timestamp, now, this.opts.clockSkewMs);
    const cacheKey = m.delegationSig + m.delegationMessage;
    const cached = this.delegations.get(cacheKey);
    const result = await this.runner.run({
      preimage: idPreimage(m),
      id: m.id,
      sig: m.sig,
      delegationMessage: cached === undefined ? m.delegationMessage : null,
      delegationSig: cached === undefined ? m.delegationSig : null,
    });
    if (!result.idOk) throw new AppError('ID_MISMATCH');
    const delegator = cached ?? result.delegator;
    if (cached === undefined && result.delegator !== null) this.delegations.set(cacheKey, result.delegator);
    if (delegator === null || delegator !== m.sender.toLowerCase()) {
      throw new AppError('INVALID_SIGNATURE', 'delegationSig does not recover to the sender');
    }
    if (result.signer === null || result.signer !== delegation.sessionAddress) {
      throw new AppError('INVALID_SIGNATURE', 'sig does not recover to the delegated session key');
    }
    return { sender: delegator, delegation };
  }

  recoverText(text: string, sig: string): string | null {
    return recoverPersonal(toUtf8Bytes(text), sig);
  }

  close(): Promise<void> {
    return this.runner.close();
  }
}
