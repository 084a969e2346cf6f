import { fromServer, ImError } from './errors.js';

export type FetchLike = (url: string, init: { method: string; headers: Record<string, string>; body?: string | Uint8Array; signal?: AbortSignal }) => Promise<{ status: number; ok: boolean; text(): Promise<string>; headers: { get(name: string): string | null } }>;

export interface HttpOptions {
  baseUrl: string;
  fetch?: FetchLike;
  timeoutMs?: number;
  /** Called after every answer with its `X-Store-Epoch` header (list answers; SPEC section 9), or null. */
  onEpoch?: (epoch: string | null) => void;
}

/** One HTTP request; every failure becomes an ImError (server codes from the body, else NETWORK/TIMEOUT/BAD_RESPONSE). */
export async function request(opts: HttpOptions, method: string, path: string, o: { token?: string; body?: unknown; raw?: boolean } = {}): Promise<unknown> {
  const f: FetchLike = opts.fetch ?? ((globalThis as unknown as { fetch: FetchLike }).fetch).bind(globalThis);
  const headers: Record<string, string> = {};
  if (o.token) headers['authorization'] = `Bearer ${o.token}`;
  let body: string | undefined;
  if (o.body !== undefined) {
    body = JSON.stringify(o.body);
    headers['content-type'] = 'application/json';
  }
  const ctl = typeof AbortController === 'function' ? new AbortController() : undefined;
  const timer = setTimeout(() => ctl?.abort(), opts.timeoutMs ?? 30_000);
  let res: Awaited<ReturnType<FetchLike>>;
  let text: string;
  try {
    res = await f(opts.baseUrl.replace(/\/$/, '') + path, { method, headers, ...(body !== undefined ? { body } : {}), ...(ctl ? { signal: ctl.signal } : {}) });
    text = await res.text();
  } catch (e) {
    const aborted = ctl?.signal.aborted === true;
    throw new ImError(aborted ? 'TIMEOUT' : 'NETWORK', `${method} ${path}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
  opts.onEpoch?.(res.headers?.get?.('x-store-epoch') || null);
  let json: unknown = undefined;
  if (text !== '') {
    try {
      json = JSON.parse(text);
    } catch {
      if (res.ok) throw new ImError('BAD_RESPONSE', `${method} ${path}: the answer is not JSON`, { status: res.status });
    }
  }
  if (!res.ok) {
    const err = (json as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    if (err) throw fromServer(err.code, err.message, res.status);
    throw new ImError(res.status >= 500 ? 'INTERNAL' : 'BAD_RESPONSE', `${method} ${path}: HTTP ${res.status}`, { status: res.status });
  }
  return json;
}
