import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { GroupCommitter } from '../../roles/chat/committer.js';
import { MessageService } from '../../roles/chat/message-service.js';
import type { Clock } from '../../clock.js';
import { isAppError } from '../../errors/app-error.js';
import type { SignatureVerifier } from '../../roles/identity/verifier.js';
import { LocalHub } from '../../bus/hub.js';
import { NoRelations } from '../../roles/relations/none.js';
import type { Store } from '../../store/port.js';
import type { ArchiveStore } from '../port.js';
import type { ChainSource } from './source.js';
import { describe, walkChain } from './walk.js';
import type { Progress } from './verify.js';

export interface ImportReport {
  bundles: number;
  /** Messages stored by this import. */
  imported: number;
  /** Messages that were in the store already (an import can be run again, or resumed after a kill). */
  alreadyPresent: number;
  /** Bundles recorded by an earlier run of the import, skipped without reading their data. */
  skippedBundles: number;
}

/** How long the import's hold on the archive lease lasts; renewed after every bundle. */
const IMPORT_LEASE_MS = 10 * 60_000;

/** A clock that reads the timestamp of the message being imported. */
class MessageClock implements Clock {
  at = 0;
  now(): number {
    return this.at;
  }
}

/**
 * Loads a proxy's store from the chain whose head is `head`, oldest bundle first.
 *
 * Messages go through `MessageService.submit`, the same pipeline as a client's send, rather than straight
 * into the store: ids, signatures, delegation windows, hide targets, conversation ids and idempotency are
 * then decided by the one code that decides them for live traffic. Two things differ, both by
 * construction of the service used here: its clock reads the timestamp of the message being submitted,
 * so the freshness (clock skew) check, which is meaningless for history, passes while the delegation
 * window is still enforced; and it has no relation reader (names and memberships at import time say
 * nothing about who could send back then). Submission is strictly one message after another, so every
 * conversation's seq follows the archive's commit order. A message's `receivedAt` becomes its timestamp
 * (the archive does not carry the original one).
 *
 * Each bundle, once loaded, is recorded in the archive state as accepted with its transaction id, so the
 * proxy, given the same archive wallet, continues the same chain instead of archiving the history again.
 * Refuses to start when the chain itself is broken (missing, forked or tampered bundles).
 */
export async function importChain(
  source: ChainSource,
  head: string,
  target: { store: Store; archive: ArchiveStore; verifier: SignatureVerifier; commitBatchMax: number },
  progress?: (p: Progress) => void,
): Promise<ImportReport> {
  const walk = await walkChain(source, head, (n) => progress?.({ phase: 'walk', bundle: n, bundles: 0, messages: 0 }));
  const broken = walk.problems.filter((p) => p.kind !== 'fork');
  if (broken.length > 0 || walk.links[0]?.meta.seq !== 1) {
    throw new Error(`the chain cannot be imported:\n  ${(broken.length > 0 ? broken.map(describe) : ['it does not reach bundle 1']).join('\n  ')}`);
  }
  const clock = new MessageClock();
  const committer = new GroupCommitter(target.store, target.commitBatchMax);
  const service = new MessageService({
    store: target.store, committer, verifier: target.verifier, relations: new NoRelations(), push: new LocalHub(), clock, requireName: false, maxPending: Number.MAX_SAFE_INTEGER, trustHistory: true,
  });
  // The import writes archive state like an archiver does: under the lease, with its fencing token. The
  // holder is named after the machine, not the process, so an import killed half way and run again here
  // takes its own lease back at once instead of waiting for it to lapse.
  const holder = `import:${hostname()}`;
  let token = await target.archive.acquireLease(holder, Date.now(), IMPORT_LEASE_MS);
  if (token === null) throw new Error('another process holds the archive lease: stop the proxy before importing');
  const report: ImportReport = { bundles: 0, imported: 0, alreadyPresent: 0, skippedBundles: 0 };
  let messages = 0;
  try {
    for (const [i, link] of walk.links.entries()) {
      const { seq, sha256 } = link.meta;
      const recorded = await target.archive.getBundle(seq);
      if (recorded?.txid === link.tx.id && recorded.status === 'confirmed') {
        // Imported by an earlier run (killed later on): its messages are in the store already.
        report.bundles += 1;
        report.skippedBundles += 1;
        messages += recorded.count;
        progress?.({ phase: 'verify', bundle: i + 1, bundles: walk.links.length, messages });
        continue;
      }
      const data = await source.data(link.tx.id);
      const actual = createHash('sha256').update(data).digest('hex');
      if (actual !== sha256) throw new Error(`bundle ${seq} (tx ${link.tx.id}) is tampered: data hashes to ${actual}, Data-SHA256 says ${sha256}`);
      const items = JSON.parse(data.toString('utf8')) as unknown[];
      let firstPos = 0;
      let lastPos = 0;
      for (const [index, raw] of items.entries()) {
        const ts = (raw as { timestamp?: unknown }).timestamp;
        clock.at = typeof ts === 'number' ? ts : 0;
        let result;
        try {
          result = await service.submit(raw);
        } catch (e) {
          const reason = isAppError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
          throw new Error(`bundle ${seq} (tx ${link.tx.id}) message #${index}: ${reason}`);
        }
        if (result.duplicate) report.alreadyPresent += 1;
        else report.imported += 1;
        const stored = await target.store.getEventById(result.id);
        const pos = stored?.pos ?? 0;
        if (index === 0) firstPos = pos;
        lastPos = pos;
      }
      await target.archive.adoptBundle({
        seq, prevTx: link.meta.prevTx, firstPos, lastPos, count: items.length, firstTs: link.meta.firstTs, lastTs: link.meta.lastTs,
        bytes: data.length, sha256, file: '', cutAt: clock.at,
      }, link.tx.id, clock.at, token);
      report.bundles += 1;
      messages += items.length;
      progress?.({ phase: 'verify', bundle: i + 1, bundles: walk.links.length, messages });
      const renewed = await target.archive.acquireLease(holder, Date.now(), IMPORT_LEASE_MS);
      if (renewed !== token) throw new Error('the archive lease was taken by another process during the import');
      token = renewed;
    }
    await committer.drain();
  } finally {
    await target.archive.releaseLease(holder).catch(() => undefined);
  }
  return report;
}
