import { createHash } from 'node:crypto';
import { isAppError } from '../../errors/app-error.js';
import type { SignatureVerifier } from '../../roles/identity/verifier.js';
import { parseMessage } from '../../protocol/message.js';
import type { ChainSource } from './source.js';
import { walkChain, type ChainLink, type Problem } from './walk.js';

export interface VerifyReport {
  ok: boolean;
  head: string;
  owner: string | null;
  bundles: number;
  messages: number;
  problems: Problem[];
}

export interface Progress {
  phase: 'walk' | 'verify';
  bundle: number;
  bundles: number;
  messages: number;
}

/** Messages verified concurrently (the verifier spreads them over its worker threads). */
const WINDOW = 256;

/**
 * Checks one bundle's data against its tags and every message in it: hash, JSON array, count, first and
 * last timestamps, then each message's fields, id, delegation signature, signature and delegation window.
 * Freshness against a clock is not checked (archived history is old by nature): each message is verified
 * as at its own timestamp. Ids seen in earlier bundles are reported as duplicates.
 */
export async function verifyBundle(link: ChainLink, data: Buffer, verifier: SignatureVerifier, seen: Map<string, { seq: number; index: number }>): Promise<{ problems: Problem[]; messages: unknown[] }> {
  const { seq, sha256, count, firstTs, lastTs } = link.meta;
  const txid = link.tx.id;
  const problems: Problem[] = [];
  const actual = createHash('sha256').update(data).digest('hex');
  if (actual !== sha256) problems.push({ kind: 'tampered', seq, txid, reason: `data hashes to ${actual}, Data-SHA256 says ${sha256}` });
  let items: unknown;
  try {
    items = JSON.parse(data.toString('utf8'));
  } catch (e) {
    problems.push({ kind: 'malformed', seq, txid, reason: `data is not JSON: ${e instanceof Error ? e.message : String(e)}` });
    return { problems, messages: [] };
  }
  if (!Array.isArray(items)) {
    problems.push({ kind: 'malformed', seq, txid, reason: 'data is not a JSON array' });
    return { problems, messages: [] };
  }
  if (items.length !== count) problems.push({ kind: 'count-mismatch', seq, txid, reason: `holds ${items.length} messages, Message-Count says ${count}` });
  const ts = (i: number): unknown => (items as Record<string, unknown>[])[i]?.['timestamp'];
  if (items.length > 0 && (ts(0) !== firstTs || ts(items.length - 1) !== lastTs)) {
    problems.push({ kind: 'timestamp-mismatch', seq, txid, reason: `first/last message timestamps ${String(ts(0))}/${String(ts(items.length - 1))}, tags say ${firstTs}/${lastTs}` });
  }
  for (let start = 0; start < items.length; start += WINDOW) {
    const slice = items.slice(start, start + WINDOW);
    const verdicts = await Promise.all(slice.map(async (raw: unknown, k) => {
      const index = start + k;
      let id: string | undefined;
      try {
        const m = parseMessage(raw);
        id = m.id;
        await verifier.verifyMessage(m, m.timestamp);
        return { index, id, error: null };
      } catch (e) {
        const reason = isAppError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
        return { index, id: id ?? (typeof raw === 'object' && raw !== null && typeof (raw as { id?: unknown }).id === 'string' ? (raw as { id: string }).id : undefined), error: reason };
      }
    }));
    for (const v of verdicts) {
      if (v.error !== null) {
        problems.push({ kind: 'invalid-message', seq, txid, index: v.index, ...(v.id ? { messageId: v.id } : {}), reason: v.error });
      }
      if (v.id === undefined) continue;
      const before = seen.get(v.id);
      if (before) {
        problems.push({ kind: 'duplicate', seq, txid, index: v.index, messageId: v.id, reason: `already archived as message #${before.index} of bundle ${before.seq}` });
      } else {
        seen.set(v.id, { seq, index: v.index });
      }
    }
  }
  return { problems, messages: items };
}

/** Bundles whose data is fetched ahead, in parallel, while earlier ones are verified (memory: this many bundles). */
export const FETCH_AHEAD = 8;

/**
 * Fetches the data of `links` in order with up to `ahead` requests in flight, yielding each bundle's data
 * (or the error that fetching it raised) in chain order. Only `ahead` bundles are held at a time.
 */
export async function* fetchInOrder(source: ChainSource, links: readonly ChainLink[], ahead = FETCH_AHEAD): AsyncGenerator<{ link: ChainLink; data: Buffer | Error }> {
  const inFlight: Promise<Buffer | Error>[] = [];
  let next = 0;
  const fill = (): void => {
    while (next < links.length && inFlight.length < Math.max(1, ahead)) {
      const link = links[next++] as ChainLink;
      inFlight.push(source.data(link.tx.id).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e)))));
    }
  };
  for (let i = 0; i < links.length; i++) {
    fill();
    const data = await (inFlight.shift() as Promise<Buffer | Error>);
    yield { link: links[i] as ChainLink, data };
  }
}

/** Walks the chain from `head` to the first bundle and verifies everything; the report lists every problem found. */
export async function verifyChain(source: ChainSource, head: string, verifier: SignatureVerifier, progress?: (p: Progress) => void, opts: { fetchAhead?: number } = {}): Promise<VerifyReport> {
  const walk = await walkChain(source, head, (n) => progress?.({ phase: 'walk', bundle: n, bundles: 0, messages: 0 }));
  const problems = [...walk.problems];
  const seen = new Map<string, { seq: number; index: number }>();
  let messages = 0;
  let i = 0;
  for await (const { link, data } of fetchInOrder(source, walk.links, opts.fetchAhead)) {
    i += 1;
    if (data instanceof Error) {
      problems.push({ kind: 'not-found', seq: link.meta.seq, txid: link.tx.id, reason: `data unavailable: ${data.message}` });
      continue;
    }
    const result = await verifyBundle(link, data, verifier, seen);
    problems.push(...result.problems);
    messages += result.messages.length;
    progress?.({ phase: 'verify', bundle: i, bundles: walk.links.length, messages });
  }
  return { ok: problems.length === 0, head, owner: walk.owner, bundles: walk.links.length, messages, problems };
}
