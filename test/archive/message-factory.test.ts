import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { makeSigner, signMessage } from '../support/archive-messages.js';

describe('test message factory', () => {
  it('reproduces the reference vector message-1 exactly', () => {
    const v = JSON.parse(readFileSync(new URL('../vectors/message-1.json', import.meta.url), 'utf8'));
    const signer = makeSigner({ walletKey: v.walletKey, sessionKey: v.sessionKey, createdAt: 1767225600000, lifetimeMs: 1769904000000 - 1767225600000 });
    const m = signMessage(signer, {
      receiver: v.message.receiver, timestamp: v.message.timestamp, tags: v.message.tags, payload: v.message.payload,
      encryptedSymmetricKey: v.message.encryptedSymmetricKey,
    });
    expect(m).toEqual(v.message);
  });
});
