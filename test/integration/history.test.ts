import { Wallet } from 'ethers';
import { describe, expect, it } from 'vitest';
import { GroupCommitter } from '../../src/roles/chat/committer.js';
import { MessageService } from '../../src/roles/chat/message-service.js';
import { MessageVerifier } from '../../src/roles/identity/verifier.js';
import { InlineRunner } from '../../src/roles/identity/worker-pool.js';
import { LocalHub } from '../../src/bus/hub.js';
import { NoRelations } from '../../src/roles/relations/none.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { makeIdentity, signedMessage } from '../support/messages.js';

function service(trustHistory: boolean): { messages: MessageService; store: SqliteStore } {
  const store = new SqliteStore({ file: ':memory:', synchronous: 'FULL' });
  const verifier = new MessageVerifier(new InlineRunner(), { clockSkewMs: 300_000, maxDelegationMs: 30 * 86_400_000, delegationCacheSize: 10 });
  const messages = new MessageService({
    store, committer: new GroupCommitter(store, 64), verifier, relations: new NoRelations(), push: new LocalHub(),
    clock: { now: () => Date.now() }, requireName: true, maxPending: 100, trustHistory,
  });
  return { messages, store };
}

/** The archive importer replays history: who could send then is not asked again, signatures still are. */
describe('MessageService with trustHistory (archive import)', () => {
  const alice = makeIdentity();
  const dao = Wallet.createRandom().address;

  it('stores archived group messages and hides of them without a relation reader', async () => {
    const { messages, store } = service(true);
    const m = signedMessage(alice, { receiver: dao, kind: 1 });
    const r = await messages.submit(m);
    expect(r).toMatchObject({ chatId: dao.toLowerCase(), seq: 1 });
    const hide = signedMessage(alice, { receiver: dao, kind: 4, tags: [['quoteId', m.id]] });
    expect((await messages.submit(hide)).seq).toBe(2);
    expect((await store.getEventById(m.id))?.cid).toBe(dao.toLowerCase());
    await store.close();
  });

  it('still refuses a forged archived message', async () => {
    const { messages, store } = service(true);
    const m = signedMessage(alice, { receiver: dao, kind: 1 });
    await expect(messages.submit({ ...m, payload: 'changed' })).rejects.toMatchObject({ code: 'ID_MISMATCH' });
    await store.close();
  });

  it('refuses the same group message live when no chain is configured', async () => {
    const { messages, store } = service(false);
    await expect(messages.submit(signedMessage(alice, { receiver: dao, kind: 1 }))).rejects.toMatchObject({ code: 'GROUPS_UNAVAILABLE' });
    await store.close();
  });
});
