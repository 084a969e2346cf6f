import { format, inspect } from 'node:util';
import type { Logger } from './logger.js';

/**
 * Sends whatever a library prints with `console.*` into the JSON log instead of as bare text, so every
 * line on stdout is one JSON object. The embedded arlocal gateway prints `arlocal started on port N`
 * and its route errors that way; nothing of ours uses console. Called once, by `main`.
 */
export function routeConsoleToLog(log: Logger): void {
  const c = log.child({ component: 'console' });
  const line = (...args: unknown[]): string => format(...args);
  console.log = (...a: unknown[]) => c.info(line(...a));
  console.info = (...a: unknown[]) => c.info(line(...a));
  console.debug = (...a: unknown[]) => c.debug(line(...a));
  console.trace = (...a: unknown[]) => c.debug({ stack: new Error().stack }, line(...a));
  console.warn = (...a: unknown[]) => c.warn(line(...a));
  console.error = (...a: unknown[]) => c.error(line(...a));
  console.dir = (obj: unknown) => c.info(inspect(obj));
}
