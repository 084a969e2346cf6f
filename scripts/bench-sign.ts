/**
 * Fast message signing for the load generator: the session signature with libsecp256k1 (ethers' pure-JS
 * signer would take minutes for tens of thousands of messages). Messages are byte-for-byte what
 * test/support/messages.ts makes with ethers; only the signer is faster.
 */
import { createRequire } from 'node:module';
import { keccak256, toUtf8Bytes, Wallet } from 'ethers';
import { delegationText } from '../src/protocol/delegation.js';
import { idPreimage, type RelationMessage } from '../src/protocol/message.js';
import { hexToBytes, personalDigest } from '../src/roles/identity/recover-core.js';

const require = createRequire(import.meta.url);
const secp = require('secp256k1/bindings') as { ecdsaSign(msg32: Uint8Array, key: Uint8Array): { signature: Uint8Array; recid: number } };

export interface BenchIdentity {
  address: string;
  wallet: Wallet;
  sessionKey: Uint8Array;
  delegationMessage: string;
  delegationSig: string;
}

export function benchIdentity(key?: string): BenchIdentity {
  const wallet = key ? new Wallet(key) : Wallet.createRandom();
  const session = Wallet.createRandom();
  const now = Date.now();
  const delegationMessage = delegationText(session.address, now - 60_000, now + 86_400_000);
  return {
    address: wallet.address, wallet: new Wallet(wallet.privateKey), sessionKey: hexToBytes(session.privateKey),
    delegationMessage, delegationSig: wallet.signMessageSync(delegationMessage),
  };
}

export function benchMessage(from: BenchIdentity, receiver: string, payload: string, kind: RelationMessage['kind'] = 0): RelationMessage {
  const m: RelationMessage = {
    id: '', encryptedBy: 'Lit', sender: from.address, receiver, timestamp: Date.now(), kind, tags: [], type: 'TEXT', payload,
    encryptedSymmetricKey: '0x' + 'cd'.repeat(16), delegationMessage: from.delegationMessage, delegationSig: from.delegationSig, sig: '',
  };
  m.id = keccak256(toUtf8Bytes(idPreimage(m)));
  const { signature, recid } = secp.ecdsaSign(personalDigest(hexToBytes(m.id)), from.sessionKey);
  m.sig = '0x' + Buffer.from(signature).toString('hex') + (27 + recid).toString(16);
  return m;
}
