import { AppError } from '../../errors/app-error.js';

type Query = Record<string, unknown>;

function single(q: Query, name: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new AppError('INVALID_FIELD', `${name} must be given once`, { field: name });
  return v;
}

/** An integer query parameter within [min, max], or the default when absent. */
export function intParam(q: Query, name: string, def: number | undefined, min: number, max: number): number | undefined {
  const v = single(q, name);
  if (v === undefined || v === '') return def;
  if (!/^\d{1,16}$/.test(v)) throw new AppError('INVALID_FIELD', `${name} must be a non-negative integer`, { field: name });
  const n = Number(v);
  if (n < min || n > max) throw new AppError('INVALID_FIELD', `${name} must be between ${min} and ${max}`, { field: name });
  return n;
}

export function strParam(q: Query, name: string, pattern: RegExp, required: true): string;
export function strParam(q: Query, name: string, pattern: RegExp, required?: false): string | undefined;
export function strParam(q: Query, name: string, pattern: RegExp, required = false): string | undefined {
  const v = single(q, name);
  if (v === undefined || v === '') {
    if (required) throw new AppError('INVALID_FIELD', `${name} is required`, { field: name });
    return undefined;
  }
  if (v.length > 200 || !pattern.test(v)) throw new AppError('INVALID_FIELD', `${name} is malformed`, { field: name });
  return v;
}

export const CHAT_ID = /^(0x[0-9a-fA-F]{40}|dm:0x[0-9a-fA-F]{40}:0x[0-9a-fA-F]{40})$/;
export const MESSAGE_ID = /^0x[0-9a-fA-F]{64}$/;
export const ADDRESS = /^0x[0-9a-fA-F]{40}$/;
