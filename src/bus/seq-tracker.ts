interface Track {
  /** The first seq this process saw of the conversation: below it, only late doorbells are delivered. */
  floor: number;
  /** Every seq in [floor, upTo] has been delivered (or was none of this process's business). */
  upTo: number;
  /** Delivered seqs above upTo (out of order: a local commit ran ahead of a remote one). */
  above: Set<number>;
  /** Delivered seqs below floor (late doorbells of commits that raced the first one seen), bounded. */
  below: Set<number>;
}

const MAX_BELOW = 64;

/**
 * Which events of each conversation this process has delivered to its connections, so that a doorbell
 * can be told apart as new, a duplicate, or the far side of a gap (SPEC section 9: the bus is a doorbell).
 * Bounded: the `max` most recently active conversations are kept; one evicted (or never seen) starts
 * again at the first seq it is rung for.
 */
export class SeqTracker {
  private readonly tracks = new Map<string, Track>();

  constructor(private readonly max: number) {}

  private touch(cid: string, t: Track): void {
    this.tracks.delete(cid);
    this.tracks.set(cid, t);
    if (this.tracks.size > this.max) {
      const oldest = this.tracks.keys().next().value;
      if (oldest !== undefined) this.tracks.delete(oldest);
    }
  }

  /** Whether `seq` of `cid` was delivered already. */
  has(cid: string, seq: number): boolean {
    const t = this.tracks.get(cid);
    if (!t) return false;
    if (seq < t.floor) return t.below.has(seq);
    return seq <= t.upTo || t.above.has(seq);
  }

  /**
   * Marks `seq` delivered; false when it was already. The first seq seen of a conversation sets its floor:
   * what came before is the business of the client's resume, except doorbells still on their way.
   */
  claim(cid: string, seq: number): boolean {
    let t = this.tracks.get(cid);
    if (!t) {
      t = { floor: seq, upTo: seq, above: new Set(), below: new Set() };
      this.touch(cid, t);
      return true;
    }
    this.touch(cid, t);
    if (seq < t.floor) {
      if (t.below.has(seq)) return false;
      t.below.add(seq);
      if (t.below.size > MAX_BELOW) t.below.delete(t.below.values().next().value as number);
      return true;
    }
    if (seq <= t.upTo || t.above.has(seq)) return false;
    if (seq === t.upTo + 1) {
      t.upTo = seq;
      while (t.above.delete(t.upTo + 1)) t.upTo++;
    } else {
      t.above.add(seq);
    }
    return true;
  }

  /**
   * The seqs of `cid` up to `seq` not delivered yet, oldest first: `[seq]` for a conversation not tracked,
   * the whole gap (upTo, seq] for one that is. Below the floor only `seq` itself is considered.
   */
  missing(cid: string, seq: number): number[] {
    const t = this.tracks.get(cid);
    if (!t) return [seq];
    if (seq < t.floor) return t.below.has(seq) ? [] : [seq];
    const out: number[] = [];
    for (let s = t.upTo + 1; s <= seq; s++) if (!t.above.has(s)) out.push(s);
    return out;
  }

  /** Highest seq known delivered of a tracked conversation. */
  last(cid: string): number | undefined {
    const t = this.tracks.get(cid);
    if (!t) return undefined;
    let m = t.upTo;
    for (const s of t.above) if (s > m) m = s;
    return m;
  }

  /** The tracked conversations, least recently active first. */
  conversations(): string[] {
    return [...this.tracks.keys()];
  }

  get size(): number {
    return this.tracks.size;
  }
}
