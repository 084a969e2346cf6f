import { isTxId, parseBundleTags, type BundleMeta } from '../format.js';
import type { ChainSource, ChainTx } from './source.js';

export type ProblemKind =
  | 'not-found' | 'bad-tags' | 'foreign-owner' | 'gap' | 'fork' | 'cycle'
  | 'tampered' | 'malformed' | 'count-mismatch' | 'timestamp-mismatch' | 'invalid-message' | 'duplicate';

/** One thing wrong with the chain, with where it is. */
export interface Problem {
  kind: ProblemKind;
  /** Bundle-Seq of the bundle concerned, when known. */
  seq?: number;
  txid?: string;
  /** Index of the message in its bundle (0-based). */
  index?: number;
  messageId?: string;
  reason: string;
}

export interface ChainLink {
  tx: ChainTx;
  meta: BundleMeta;
}

export interface Walk {
  head: string;
  owner: string | null;
  /** The bundles reached from the head, oldest first. */
  links: ChainLink[];
  problems: Problem[];
}

export const describe = (p: Problem): string => {
  const where = [
    p.seq !== undefined ? `bundle ${p.seq}` : null,
    p.txid ? `tx ${p.txid}` : null,
    p.index !== undefined ? `message #${p.index}` : null,
    p.messageId ? `id ${p.messageId}` : null,
  ].filter((x) => x !== null).join(', ');
  return `${p.kind.toUpperCase()}${where ? ` [${where}]` : ''}: ${p.reason}`;
};

/** Finds the head of `owner`'s chain: its bundle with the highest Bundle-Seq (GraphQL, newest first). */
export async function findHead(source: ChainSource, owner: string): Promise<string | null> {
  let best: { id: string; seq: number } | null = null;
  for (const tx of await source.bundlesOf(owner)) {
    const parsed = parseBundleTags(tx.tags);
    if ('meta' in parsed && (!best || parsed.meta.seq > best.seq)) best = { id: tx.id, seq: parsed.meta.seq };
  }
  return best?.id ?? null;
}

/**
 * Follows Prev-Tx from `head` back to the first bundle, checking the links: every transaction found, tags
 * well-formed, one owner, Bundle-Seq falling by exactly one per link down to 1 with no Prev-Tx on bundle 1.
 * Then lists the owner's bundles to find any not on this chain (a fork or a stray bundle).
 */
export async function walkChain(source: ChainSource, head: string, onBundle?: (n: number, tx: ChainTx) => void): Promise<Walk> {
  const problems: Problem[] = [];
  const links: ChainLink[] = [];
  const seen = new Set<string>();
  let owner: string | null = null;
  let cur: string | null = head;
  let child: ChainLink | null = null;
  // The owner's bundles, listed once (GraphQL pages of 100) as soon as the head names the owner: the walk
  // then looks links up there instead of asking for each transaction, and the fork check reuses the list.
  let listed = null as Map<string, ChainTx> | null;
  while (cur !== null) {
    if (seen.has(cur)) {
      problems.push({ kind: 'cycle', txid: cur, reason: 'Prev-Tx leads back to a bundle already visited' });
      break;
    }
    seen.add(cur);
    const tx: ChainTx | null = !isTxId(cur) ? null : listed?.get(cur) ?? await source.tx(cur);
    if (tx && listed === null) listed = new Map((await source.bundlesOf(tx.owner)).map((t) => [t.id, t]));
    if (!tx) {
      problems.push(child
        ? { kind: 'not-found', seq: child.meta.seq - 1, txid: cur, reason: `Prev-Tx of bundle ${child.meta.seq} (tx ${child.tx.id}) names a transaction the gateway does not have` }
        : { kind: 'not-found', txid: cur, reason: 'the head transaction is not on the gateway' });
      break;
    }
    onBundle?.(links.length + 1, tx);
    owner ??= tx.owner;
    if (tx.owner !== owner) {
      problems.push({ kind: 'foreign-owner', txid: tx.id, reason: `signed by ${tx.owner}, the chain's head by ${owner}` });
    }
    const parsed = parseBundleTags(tx.tags);
    if ('problems' in parsed) {
      for (const reason of parsed.problems) problems.push({ kind: 'bad-tags', txid: tx.id, reason });
      break;
    }
    const link: ChainLink = { tx, meta: parsed.meta };
    if (child && link.meta.seq !== child.meta.seq - 1) {
      problems.push({
        kind: 'gap', seq: child.meta.seq, txid: child.tx.id,
        reason: link.meta.seq < child.meta.seq
          ? `Prev-Tx points to bundle ${link.meta.seq} (tx ${tx.id}): bundles ${link.meta.seq + 1}..${child.meta.seq - 1} are missing`
          : `Prev-Tx points to bundle ${link.meta.seq} (tx ${tx.id}), which is not before it`,
      });
    }
    links.unshift(link);
    child = link;
    cur = link.meta.prevTx;
  }
  const first = links[0];
  if (first && first.meta.prevTx === null && first.meta.seq !== 1) {
    problems.push({ kind: 'gap', seq: first.meta.seq, txid: first.tx.id, reason: `the chain starts at bundle ${first.meta.seq} without Prev-Tx: bundles 1..${first.meta.seq - 1} are missing` });
  }
  if (owner !== null) {
    const onChain = new Map(links.map((l) => [l.tx.id, l]));
    const bySeq = new Map(links.map((l) => [l.meta.seq, l]));
    for (const tx of listed?.values() ?? await source.bundlesOf(owner)) {
      if (onChain.has(tx.id)) continue;
      const parsed = parseBundleTags(tx.tags);
      const seq = 'meta' in parsed ? parsed.meta.seq : undefined;
      const rival = seq !== undefined ? bySeq.get(seq) : undefined;
      problems.push({
        kind: 'fork', txid: tx.id, ...(seq !== undefined ? { seq } : {}),
        reason: rival
          ? `also claims Bundle-Seq ${seq} (Prev-Tx ${'meta' in parsed ? parsed.meta.prevTx ?? 'none' : '?'}); the chain from the head has tx ${rival.tx.id} there`
          : `a bundle of this owner that is not on the chain from the head${seq !== undefined ? ` (Bundle-Seq ${seq})` : ''}`,
      });
    }
  }
  return { head, owner, links, problems };
}
