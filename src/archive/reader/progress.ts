import type { Progress } from './verify.js';

/** What a progress line is made of, for a reader walking and checking (or importing) a chain. */
export interface ProgressView {
  phase: Progress['phase'];
  bundle: number;
  bundles: number;
  messages: number;
  /** Seconds since the phase began. */
  elapsedS: number;
  messagesPerS: number;
  bundlesPerS: number;
  /** Estimated seconds left, null while unknown (walking, or nothing done yet). */
  leftS: number | null;
}

const duration = (s: number): string => {
  if (s < 60) return `${Math.ceil(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
};

/** One line of progress text. */
export function progressLine(v: ProgressView, verb: string): string {
  if (v.phase === 'walk') return `walking back from the head: ${v.bundle} bundle(s), ${v.bundlesPerS.toFixed(0)} bundles/s`;
  const pct = v.bundles > 0 ? Math.floor((100 * v.bundle) / v.bundles) : 0;
  return `${verb} bundle ${v.bundle}/${v.bundles} (${pct}%), ${v.messages} message(s), ${v.messagesPerS.toFixed(0)} msg/s, `
    + `${v.bundlesPerS.toFixed(1)} bundles/s${v.leftS !== null ? `, ~${duration(v.leftS)} left` : ''}`;
}

/**
 * Turns Progress events into rates and a time-left estimate (from the bundle rate of the phase so far),
 * calling `show` at most every `everyMs` (and always for the last bundle).
 */
export function progressMeter(show: (v: ProgressView) => void, opts: { now?: () => number; everyMs?: number } = {}): (p: Progress) => void {
  const now = opts.now ?? (() => performance.now());
  const every = opts.everyMs ?? 200;
  let phase: Progress['phase'] | null = null;
  let started = 0;
  let shownAt = -Infinity;
  return (p) => {
    const t = now();
    if (p.phase !== phase) {
      phase = p.phase;
      started = t;
      shownAt = -Infinity;
    }
    const last = p.phase === 'verify' && p.bundle === p.bundles;
    if (!last && t - shownAt < every) return;
    shownAt = t;
    const elapsedS = Math.max((t - started) / 1000, 1e-3);
    const bundlesPerS = p.bundle / elapsedS;
    show({
      phase: p.phase, bundle: p.bundle, bundles: p.bundles, messages: p.messages, elapsedS,
      messagesPerS: p.messages / elapsedS, bundlesPerS,
      leftS: p.phase === 'verify' && p.bundle > 0 ? (p.bundles - p.bundle) / bundlesPerS : null,
    });
  };
}
