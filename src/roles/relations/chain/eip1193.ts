import { BrowserProvider, FetchRequest, Network, makeError, type JsonRpcError, type JsonRpcPayload } from 'ethers';

/** The EIP-1193 `request` shape shared by the in-process chain, the HTTP adapter and ethers' BrowserProvider. */
export interface Eip1193 {
  request(args: { method: string; params?: readonly unknown[] | Record<string, unknown> }): Promise<unknown>;
}

/** A JSON-RPC error as EIP-1193 describes it (ethers reads `code`, `message` and `data`). */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message);
    this.name = 'RpcError';
  }
}

/**
 * The RPC could not be reached or answered nothing usable (refused, reset, timed out, HTTP error). Thrown by
 * the EIP-1193 sources here so that ethers reports NETWORK_ERROR instead of guessing: for eth_call ethers
 * would otherwise turn any failure into CALL_EXCEPTION, which the reader must keep for real reverts.
 */
export class TransportError extends Error {
  readonly code = 'RPC_TRANSPORT';
  constructor(message: string) {
    super(message);
    this.name = 'TransportError';
  }
}

class Eip1193Provider extends BrowserProvider {
  override getRpcError(payload: JsonRpcPayload, error: JsonRpcError): Error {
    if ((error.error as { code?: unknown }).code === 'RPC_TRANSPORT') {
      return makeError(`RPC unreachable: ${error.error.message}`, 'NETWORK_ERROR', { event: payload.method });
    }
    return super.getRpcError(payload, error);
  }
}

/**
 * An ethers v6 provider over an EIP-1193 source with a fixed chain id, so ethers never starts its
 * endless network-detection retry loop against an RPC that is down, and with ethers' 250 ms result cache
 * off (a refresh must see the newest block number).
 */
export function ethersProvider(source: Eip1193, chainId: number): BrowserProvider {
  const provider = new Eip1193Provider(source, chainId, {
    staticNetwork: Network.from(chainId),
    cacheTimeout: -1,
    pollingInterval: 100,
  });
  return provider;
}

/**
 * EIP-1193 over HTTP JSON-RPC (`CHAIN=rpc`). Every request carries its own timeout, so a stuck
 * connection is abandoned rather than held.
 */
export class HttpEip1193 implements Eip1193 {
  #id = 0;
  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
  ) {}

  async request(args: { method: string; params?: readonly unknown[] | Record<string, unknown> }): Promise<unknown> {
    const req = new FetchRequest(this.url);
    req.timeout = this.timeoutMs;
    req.retryFunc = async () => false;
    req.setHeader('content-type', 'application/json');
    req.body = JSON.stringify({ jsonrpc: '2.0', id: ++this.#id, method: args.method, params: args.params ?? [] });
    let body;
    try {
      const res = await req.send();
      res.assertOk();
      body = res.bodyJson as { result?: unknown; error?: { code: number; message: string; data?: unknown } };
    } catch (e) {
      throw new TransportError(e instanceof Error ? e.message : String(e));
    }
    if (body.error) throw new RpcError(body.error.code, body.error.message, body.error.data);
    return body.result;
  }
}

/** Reports each request's method, seconds and failure kind (metrics) around another EIP-1193 source. */
export class MeteredEip1193 implements Eip1193 {
  constructor(
    private readonly inner: Eip1193,
    private readonly observe: (method: string, seconds: number, error?: 'transport' | 'rpc') => void,
  ) {}

  async request(args: { method: string; params?: readonly unknown[] | Record<string, unknown> }): Promise<unknown> {
    const started = performance.now();
    try {
      const result = await this.inner.request(args);
      this.observe(args.method, (performance.now() - started) / 1000);
      return result;
    } catch (e) {
      this.observe(args.method, (performance.now() - started) / 1000, e instanceof RpcError ? 'rpc' : 'transport');
      throw e;
    }
  }
}
