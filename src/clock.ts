/** Time as the domain sees it; injected so tests and vectors can fix "now". */
export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
