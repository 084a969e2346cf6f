import type { ArchiveUplink, SignedBundleTx, TxState } from '../port.js';
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
    const tx = await this.arweave.createTransaction({ data }, this.jwk);
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
    if (!uploader.isComplete && !s.txPosted && (await this.txState(tx.id)) !== 'unknown') {
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
    let res;
    try {
      res = await this.arweave.api.get(`tx/${id}/status`);
    } catch (e) {
      throw new GatewayError(-1, `gateway unreachable: ${e instanceof Error ? e.message : String(e)}`);
    }
    if (res.status === 404) return 'unknown';
    if (res.status === 202) return 'pending';
    if (res.status === 200) {
      const body: unknown = res.data;
      return typeof body === 'object' && body !== null && 'block_height' in body ? 'confirmed' : 'pending';
    }
    throw new GatewayError(res.status, `tx status answered ${res.status}`);
  }

  async afterAccepted(): Promise<void> {
    await this.hooks.afterAccepted?.();
  }

  async close(): Promise<void> {
    await this.hooks.close?.();
  }
}
