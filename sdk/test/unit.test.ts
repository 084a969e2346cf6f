import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Backoff } from '../src/backoff.js';
import { CursorStore, SeenSet } from '../src/cursors.js';
import { DEV_ENCRYPTED_BY, DevEncryptor } from '../src/encryptor.js';
import { fromServer, ImError, toImError } from '../src/errors.js';
import { buildMessage, idPreimage } from '../src/message.js';
import { createSession, delegationText, SessionManager } from '../src/session.js';
import { Wallet } from 'ethers';
import { privateKeyToAccount } from 'viem/accounts';
import { fromEip1193, fromEthers, fromViemAccount, privateKeySigner } from '../src/signer.js';
import { recoverPersonal } from '../src/keys.js';
import { MemoryStorage } from '../src/storage.js';

const vector = JSON.parse(readFileSync(new URL('../../test/vectors/message-1.json', import.meta.url), 'utf8')) as {
  walletKey: string; sessionKey: string; preimage: string; message: Record<string, unknown> & { timestamp: number; tags: [string, string][]; payload: string; receiver: string; encryptedSymmetricKey: string; encryptedBy: string };
};

describe('reference vector (shared/vectors/message-1.json)', () => {
  it('createSession + buildMessage reproduce the vector exactly (delegation text, both signatures, id)', async () => {
    const wallet = privateKeySigner(vector.walletKey);
    expect(wallet.address).toBe(vector.message['sender']);
    const session = await createSession(wallet, { privateKey: vector.sessionKey, now: 1767225600000, lifetimeMs: 1769904000000 - 1767225600000 });
    expect(session.delegationMessage).toBe(vector.message['delegationMessage']);
    expect(session.delegationSig).toBe(vector.message['delegationSig']);
    const m = buildMessage(session, {
      receiver: vector.message.receiver, timestamp: vector.message.timestamp, kind: 0, tags: vector.message.tags, type: 'TEXT',
      payload: vector.message.payload, encryptedBy: vector.message.encryptedBy, encryptedSymmetricKey: vector.message.encryptedSymmetricKey,
    });
    expect(idPreimage(m)).toBe(vector.preimage);
    expect(m).toEqual(vector.message);
    expect(JSON.stringify(Object.keys(m))).toBe(JSON.stringify(Object.keys(vector.message)));
  });

  it('delegation text is the SPEC text with full-width punctuation', () => {
    expect(delegationText('0xAb', 1, 2)).toBe('授权 0xAb 代理签名，创建时间：1, 过期时间：2');
  });

  it('refuses to sign outside the delegation window (typed error)', async () => {
    const session = await createSession(privateKeySigner(vector.walletKey), { now: 1000, lifetimeMs: 1000 });
    expect(() => buildMessage(session, { receiver: vector.message.receiver, payload: 'x', timestamp: 5000 })).toThrow(ImError);
  });
});

describe('signers', () => {
  it('the EIP-1193 adapter asks for accounts and signs personal_sign over hex UTF-8', async () => {
    const key = privateKeySigner(vector.walletKey);
    const calls: string[] = [];
    const provider = {
      async request({ method, params }: { method: string; params?: unknown[] }): Promise<unknown> {
        calls.push(method);
        if (method === 'eth_requestAccounts') return [key.address];
        if (method === 'personal_sign') return key.signMessage(new TextDecoder().decode(Buffer.from(String(params?.[0]).slice(2), 'hex')));
        throw new Error('unsupported');
      },
    };
    const s = await fromEip1193(provider);
    const sig = await s.signMessage('héllo 授权');
    expect(recoverPersonal('héllo 授权', sig)).toBe(key.address.toLowerCase());
    expect(calls).toEqual(['eth_requestAccounts', 'personal_sign']);
  });

  it('the ethers v6 and viem adapters sign the same EIP-191 text as the key itself', async () => {
    const text = '授权 0xabc 代理签名，创建时间：1, 过期时间：2';
    const viaKey = await privateKeySigner(vector.walletKey).signMessage(text);
    const e = await fromEthers(new Wallet(vector.walletKey));
    const v = fromViemAccount(privateKeyToAccount(vector.walletKey as `0x${string}`));
    expect(e.address).toBe(vector.message['sender']);
    expect(v.address).toBe(vector.message['sender']);
    expect(await e.signMessage(text)).toBe(viaKey);
    expect(await v.signMessage(text)).toBe(viaKey);
  });

  it('a wallet that refuses becomes SIGNER_FAILED', async () => {
    const s = await fromEip1193({ request: async ({ method }) => { if (method === 'eth_requestAccounts') return ['0x' + '1'.repeat(40)]; throw new Error('User rejected'); } });
    await expect(s.signMessage('x')).rejects.toMatchObject({ code: 'SIGNER_FAILED', temporary: false });
  });
});

describe('session manager', () => {
  it('keeps and reuses a session key until near expiry, then delegates a new one', async () => {
    let now = 1_000_000;
    let prompts = 0;
    const wallet = privateKeySigner(vector.walletKey);
    const counting = { address: wallet.address, signMessage: (m: string) => { prompts++; return wallet.signMessage(m); } };
    const storage = new MemoryStorage();
    const a = new SessionManager({ signer: counting, storage, lifetimeMs: 100_000, renewBeforeMs: 10_000, now: () => now });
    const s1 = await a.get();
    const [x, y] = await Promise.all([a.get(), a.get()]);
    expect(x).toBe(s1);
    expect(y).toBe(s1);
    // A new manager on the same storage (a page reload) reuses the kept key.
    const b = new SessionManager({ signer: counting, storage, lifetimeMs: 100_000, renewBeforeMs: 10_000, now: () => now });
    expect((await b.get()).address).toBe(s1.address);
    expect(prompts).toBe(1);
    now += 91_000; // within the renewal margin
    const s2 = await b.get();
    expect(s2.address).not.toBe(s1.address);
    expect(prompts).toBe(2);
  });
});

describe('cursors and the store epoch', () => {
  it('drops the cursors when the announced epoch differs, keeps them when it is absent or first seen', async () => {
    const storage = new MemoryStorage();
    const c = new CursorStore(storage, 'k');
    await c.load();
    await c.advance('0xAA', 5);
    await c.advance('0xaa', 3); // never lowers
    expect(c.get('0xaa')).toBe(5);
    expect(await c.applyEpoch(undefined)).toBe(false); // server without epochs
    expect(await c.applyEpoch('e1')).toBe(false); // first epoch seen: adopted, cursors kept
    expect(c.get('0xaa')).toBe(5);
    const reloaded = new CursorStore(storage, 'k');
    await reloaded.load();
    expect(reloaded.epoch).toBe('e1');
    expect(await reloaded.applyEpoch('e1')).toBe(false);
    expect(await reloaded.applyEpoch('e2')).toBe(true); // store rebuilt: resync
    expect(reloaded.all()).toEqual({});
    expect(reloaded.initialized).toBe(false);
  });

  it('the seen set admits each (chat, seq) once', () => {
    const s = new SeenSet(3);
    expect(s.add('a', 1)).toBe(true);
    expect(s.add('A', 1)).toBe(false);
    expect(s.add('a', 2)).toBe(true);
  });
});

describe('backoff, errors, encryptor', () => {
  it('full jitter stays within [0, min(cap, base*2^n)] and keeps going', () => {
    const b = new Backoff(100, 1000, () => 0.999999);
    const seen = Array.from({ length: 40 }, () => b.next());
    expect(seen.slice(0, 4)).toEqual([99, 199, 399, 799]);
    expect(Math.max(...seen)).toBeLessThan(1000);
    expect(new Backoff(100, 1000, () => 0).next()).toBe(0);
  });

  it('errors carry code, status and temporary from the catalogue', () => {
    const e = fromServer('OVERLOADED', 'busy', 503);
    expect(e).toBeInstanceOf(ImError);
    expect([e.code, e.status, e.temporary, e.num]).toEqual(['OVERLOADED', 503, true, 4002]);
    expect(new ImError('NOT_MEMBER')).toMatchObject({ status: 403, temporary: false, num: 3005 });
    expect(fromServer('NO_SUCH_CODE', 'x').code).toBe('BAD_RESPONSE');
    expect(toImError(new TypeError('boom'))).toMatchObject({ code: 'NETWORK', temporary: true });
  });

  it('the development encryptor says it is not end-to-end encryption and round-trips', async () => {
    const d = new DevEncryptor();
    const e = await d.encrypt('héllo 👋', { sender: '0x', receiver: '0x', kind: 0 });
    expect(e.encryptedBy).toBe(DEV_ENCRYPTED_BY);
    expect(e.encryptedBy).toMatch(/NOT-end-to-end/);
    expect(await d.decrypt({ ...e })).toBe('héllo 👋');
    expect(await d.decrypt({ encryptedBy: 'Lit', payload: e.payload })).toBeNull();
  });
});
