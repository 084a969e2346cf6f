import { AppError } from '../errors/app-error.js';

/** A parsed session-key delegation (SPEC section 2). */
export interface Delegation {
  sessionAddress: string; // lowercase
  createdAt: number;
  expiresAt: number;
}

// 授权 ${sessionAddress} 代理签名，创建时间：${createdAtMs}, 过期时间：${expiresAtMs}
const DELEGATION = /^授权 (0x[0-9a-fA-F]{40}) 代理签名，创建时间：(0|[1-9]\d{0,15}), 过期时间：(0|[1-9]\d{0,15})$/;

export function delegationText(sessionAddress: string, createdAt: number, expiresAt: number): string {
  return `授权 ${sessionAddress} 代理签名，创建时间：${createdAt}, 过期时间：${expiresAt}`;
}

/** Parses the delegation text and checks that its lifetime is sane and within `maxLifetimeMs`. */
export function parseDelegation(text: string, maxLifetimeMs: number): Delegation {
  const m = DELEGATION.exec(text);
  if (!m) throw new AppError('INVALID_DELEGATION', 'delegationMessage does not match the delegation text');
  const createdAt = Number(m[2]);
  const expiresAt = Number(m[3]);
  if (!Number.isSafeInteger(createdAt) || !Number.isSafeInteger(expiresAt) || expiresAt < createdAt) {
    throw new AppError('INVALID_DELEGATION', 'delegation expires before it is created');
  }
  if (expiresAt - createdAt > maxLifetimeMs) {
    throw new AppError('INVALID_DELEGATION', `delegation lifetime exceeds ${maxLifetimeMs} ms`);
  }
  return { sessionAddress: (m[1] as string).toLowerCase(), createdAt, expiresAt };
}

/** Checks a message timestamp against the delegation window and the server clock. */
export function checkFreshness(d: Delegation, timestamp: number, now: number, skewMs: number): void {
  if (timestamp < d.createdAt || timestamp > d.expiresAt) {
    throw new AppError('DELEGATION_EXPIRED', 'timestamp lies outside the delegation window');
  }
  if (Math.abs(timestamp - now) > skewMs) {
    throw new AppError('TIMESTAMP_SKEW', `timestamp is more than ${skewMs} ms from the server clock`);
  }
}
