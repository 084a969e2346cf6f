/**
 * Full-jitter exponential backoff (delay uniformly in [0, min(cap, base * 2^attempt)]): reconnecting
 * clients spread out instead of returning in waves. It never gives up by itself; the caller decides.
 */
export class Backoff {
  attempt = 0;
  constructor(private readonly baseMs = 500, private readonly capMs = 30_000, private readonly random: () => number = Math.random) {}
  next(): number {
    const ceiling = Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.floor(this.random() * ceiling);
  }
  reset(): void {
    this.attempt = 0;
  }
}

export function sleep(ms: number, signal?: { aborted: boolean }): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) resolve();
    else setTimeout(resolve, ms);
  });
}
