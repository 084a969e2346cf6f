import type { ArchiveUplink, SignedBundleTx, TxState, UplinkSpec } from '../port.js';
import type { Tag } from '../format.js';
import type { ArweaveClient, Jwk } from './client.js';

/** The chunked uploader's state as `toJSON()` gives it and `getUploader()` takes it back. */
interface UploaderState {
  chunkIndex: number;
  txPosted: boolean;
  transaction: Record<string, unknown>;
  lastRequestTimeEnd: number;
  lastResponseStatus: number;
  lastResponseError: string;
}

/** A gateway answer that is not a success; `status` -1 when the gateway could not be reached. */
export class GatewayError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'GatewayError';
  }
}

/**
 * Uploads bundles with the `arweave` client: transactions signed by the archive wallet, data sent with the
 * client's chunked uploader, whose state is handed back after every chunk so an upload resumes where it
 * stopped after a crash. The client's own 40 s error sleep is bypassed: the first failed chunk ends the
 * attempt and the archiver retries with its own backoff.
 */
export class ArweaveUplink implements ArchiveUplink {
  private address: string | null = null;

  constructor(
    private readonly arweave: ArweaveClient,
    private readonly jwk: Jwk,
    private readonly hooks: { afterAccepted?: () => Promise<void>; close?: () => Promise<void> } = {},
  ) {}

  async owner(): Promise<string> {
    this.address ??= await this.arweave.wallets.jwkToAddress(this.jwk);
    return this.address;
  }

  async sign(data: Buffer, tags: readonly Tag[]): Promise<SignedBundleTx> {
    // Anchored to the tip block (/info `current`): the freshest anchor there is, and one whose age can be
    // told later (a gateway's /tx_anchor may name an older block). Left to the client when there is none.
    const info = await this.get('info');
    const current = (info.data as { current?: unknown } | null)?.current;
    const tx = await this.arweave.createTransaction(typeof current === 'string' && current !== '' ? { data, last_tx: current } : { data }, this.jwk);
    for (const t of tags) tx.addTag(t.name, t.value);
    await this.arweave.transactions.sign(tx, this.jwk);
    // Serialise without the data (toJSON would base64 the whole bundle).
    tx.data = new Uint8Array(0);
    return { id: tx.id, json: JSON.stringify(tx.toJSON()) };
  }

  async upload(tx: SignedBundleTx, data: Buffer, state: string | null, save: (state: string) => Promise<void>): Promise<void> {
    const s: UploaderState = state !== null
      ? (JSON.parse(state) as UploaderState)
      : { chunkIndex: 0, txPosted: false, transaction: JSON.parse(tx.json) as Record<string, unknown>, lastRequestTimeEnd: 0, lastResponseStatus: 0, lastResponseError: '' };
    // A previous attempt ended on an error: start clean (the client would otherwise sleep 40 s first).
    s.lastResponseError = '';
    s.lastRequestTimeEnd = 0;
    const uploader = await this.arweave.transactions.getUploader(s as never, data);
    if (!uploader.isComplete && !s.txPosted && (await this.txState(tx.id)).state !== 'unknown') {
      // Posted before a crash that came before its state was saved: never post the header twice.
      // A one-chunk transaction went up with its data in the body, so it is complete.
      const posted = JSON.parse(JSON.stringify(uploader.toJSON())) as UploaderState;
      posted.txPosted = true;
      if (uploader.totalChunks <= 1) posted.chunkIndex = uploader.totalChunks;
      await save(JSON.stringify(posted));
      return this.upload(tx, data, JSON.stringify(posted), save);
    }
    while (!uploader.isComplete) {
      try {
        await uploader.uploadChunk();
      } catch (e) {
        throw new GatewayError(uploader.lastResponseStatus, e instanceof Error ? e.message : String(e));
      }
      if (uploader.lastResponseError !== '') {
        throw new GatewayError(uploader.lastResponseStatus, `chunk ${uploader.uploadedChunks}: ${uploader.lastResponseStatus} ${uploader.lastResponseError}`);
      }
      await save(JSON.stringify(uploader.toJSON()));
    }
  }

  async txState(id: string): Promise<TxState> {
    const res = await this.get(`tx/${id}/status`);
    if (res.status === 404) return { state: 'unknown' };
    if (res.status === 202) return { state: 'pending' };
    if (res.status === 200) {
      const body: unknown = res.data;
      if (typeof body !== 'object' || body === null || !('block_height' in body)) return { state: 'pending' };
      // Counted from the tip ourselves (gateways differ on whether number_of_confirmations counts the block itself).
      const height = Number((body as { block_height: unknown }).block_height);
      const tip = await this.tipHeight();
      return { state: 'mined', confirmations: Math.max(1, tip - height + 1) };
    }
    throw new GatewayError(res.status, `tx status answered ${res.status}`);
  }

  async anchorAge(txJson: string): Promise<number | null> {
    const anchor = (JSON.parse(txJson) as { last_tx?: unknown }).last_tx;
    if (typeof anchor !== 'string' || anchor === '') return null;
    const res = await this.get(`block/hash/${anchor}`);
    if (res.status !== 200 || typeof res.data !== 'object' || res.data === null) return null;
    const height = Number((res.data as { height?: unknown }).height);
    if (!Number.isFinite(height)) return null;
    return (await this.tipHeight()) - height;
  }

  private async tipHeight(): Promise<number> {
    const res = await this.get('info');
    const height = Number((res.data as { height?: unknown } | null)?.height);
    if (res.status !== 200 || !Number.isFinite(height)) throw new GatewayError(res.status, `gateway /info answered ${res.status} without a height`);
    return height;
  }

  private async get(route: string): Promise<{ status: number; data: unknown }> {
    try {
      return await this.arweave.api.get(route);
    } catch (e) {
      throw new GatewayError(-1, `gateway unreachable: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  /** The same gateway (as this client reaches it) and wallet, for the archive's worker thread. */
  workerSpec(): UplinkSpec {
    const c = this.arweave.api.config as { protocol?: string; host?: string; port?: number | string };
    const host = (c.host ?? '127.0.0.1').includes(':') ? `[${c.host}]` : c.host;
    return { gatewayUrl: `${c.protocol ?? 'http'}://${host}:${c.port ?? 80}`, jwk: this.jwk as unknown as Record<string, unknown> };
  }

  async afterAccepted(): Promise<void> {
    await this.hooks.afterAccepted?.();
  }

  async close(): Promise<void> {
    await this.hooks.close?.();
  }
}
