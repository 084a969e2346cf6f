import type { Auth } from './auth.js';
import { ImError } from './errors.js';
import { request, type HttpOptions } from './http.js';
import type { RelationMessage, ServedItem } from './message.js';

export interface SendResult { id: string; chatId: string; seq: number; receivedAt: number }
export interface ReadResult { chatId: string; lastReadSeq: number }
export interface Chat {
  id: string; name: string; avatar: string; channelType: 'P2P' | 'GROUP';
  unreadMessageCount: number; type: string; payload: string; lastPostAt: string;
  lastSeq: number; lastReadSeq: number; muted: boolean; pinned: boolean;
}
export interface Profile { address: string; name: string; avatar: string; hasName: boolean }
export interface Person { address: string; name: string; avatar: string }
export interface GroupInfo { address: string; name: string; avatar: string; owner: string; freeJoin: boolean; admins: string[] }
export interface Member extends Person { role: 'owner' | 'admin' | 'member' }
export interface Health { ok: boolean; connections: number; [k: string]: unknown }
export interface MlsDeviceEntry { deviceId: string; fingerprint: string; credential: string; available: number; lastResort: boolean; createdAt: number }
export interface MlsGroupEntry { cid: string; epoch: number; groupInfo: string | null; groupInfoEpoch: number | null; externalSender: { signatureKey: string; credential: string } }
export interface ListQuery { chatId?: string; afterSeq?: number; limit?: number; offset?: number }

const enc = encodeURIComponent;

function qs(q: Record<string, string | number | undefined>): string {
  const parts = Object.entries(q).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${enc(String(v))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}

/**
 * Typed client for every REST endpoint of the Relation ONE face (docs/protocol.md section 2). A request
 * refused because the token expired is retried once after a fresh login; a second refusal is thrown
 * (TOKEN_EXPIRED / UNAUTHENTICATED), never retried in a loop.
 */
export class RestClient {
  /** The store epoch the last answer announced (`X-Store-Epoch`), null when it carried none. */
  epoch: string | null = null;
  private readonly http: HttpOptions;

  constructor(http: HttpOptions, private readonly auth?: Auth) {
    const outer = http.onEpoch;
    this.http = { ...http, onEpoch: (e) => { this.epoch = e; outer?.(e); } };
  }

  private async authed(method: string, path: string, body?: unknown): Promise<unknown> {
    if (!this.auth) throw new ImError('UNAUTHENTICATED', 'this client has no signer to log in with');
    const token = await this.auth.token();
    try {
      return await request(this.http, method, path, { token, ...(body !== undefined ? { body } : {}) });
    } catch (e) {
      if (!(e instanceof ImError) || (e.code !== 'TOKEN_EXPIRED' && e.code !== 'UNAUTHENTICATED')) throw e;
      await this.auth.invalidate(token);
      const again = await this.auth.token();
      return request(this.http, method, path, { token: again, ...(body !== undefined ? { body } : {}) });
    }
  }

  health(): Promise<Health> { return request(this.http, 'GET', '/health') as Promise<Health>; }
  nonce(): Promise<{ nonce: string; expiresAt: number }> { return request(this.http, 'GET', '/auth/nonce') as Promise<{ nonce: string; expiresAt: number }>; }
  /** `POST /message/send` (no token: the message's signatures authenticate it). Idempotent by id. */
  send(message: RelationMessage): Promise<SendResult> { return request(this.http, 'POST', '/message/send', { body: message }) as Promise<SendResult>; }
  list(q: ListQuery = {}): Promise<ServedItem[]> { return this.authed('GET', `/message/list${qs({ chatId: q.chatId, afterSeq: q.afterSeq, limit: q.limit, offset: q.offset })}`) as Promise<ServedItem[]>; }
  read(messageId: string): Promise<ReadResult> { return this.authed('POST', `/message/read${qs({ messageId })}`) as Promise<ReadResult>; }
  unreadCount(chatId?: string): Promise<number> { return this.authed('GET', `/message/unreadCount${qs({ chatId })}`) as Promise<number>; }
  chats(q: { limit?: number; offset?: number } = {}): Promise<Chat[]> { return this.authed('GET', `/chats/list${qs(q)}`) as Promise<Chat[]>; }
  async mute(chatId: string): Promise<void> { await this.authed('POST', `/chats/mute${qs({ chatId })}`); }
  async unmute(chatId: string): Promise<void> { await this.authed('POST', `/chats/unmute${qs({ chatId })}`); }
  async pin(chatId: string): Promise<void> { await this.authed('POST', `/chats/pin${qs({ chatId })}`); }
  async unpin(chatId: string): Promise<void> { await this.authed('POST', `/chats/unpin${qs({ chatId })}`); }
  user(address: string): Promise<Profile> { return this.authed('GET', `/users/${enc(address)}`) as Promise<Profile>; }
  friends(address: string): Promise<Person[]> { return this.authed('GET', `/users/${enc(address)}/friends`) as Promise<Person[]>; }
  following(address: string): Promise<Person[]> { return this.authed('GET', `/users/${enc(address)}/following`) as Promise<Person[]>; }
  followers(address: string): Promise<Person[]> { return this.authed('GET', `/users/${enc(address)}/followers`) as Promise<Person[]>; }
  group(address: string): Promise<GroupInfo> { return this.authed('GET', `/groups/${enc(address)}`) as Promise<GroupInfo>; }
  members(address: string): Promise<Member[]> { return this.authed('GET', `/groups/${enc(address)}/members`) as Promise<Member[]>; }
  async grantAdmin(group: string, user: string): Promise<void> { await this.authed('PUT', `/groups/${enc(group)}/admins/${enc(user)}`); }
  async revokeAdmin(group: string, user: string): Promise<void> { await this.authed('DELETE', `/groups/${enc(group)}/admins/${enc(user)}`); }
  // --- MLS Delivery Service (docs/e2ee.md section 5) ---
  mlsUploadKeyPackages(keyPackages: string[], lastResort?: string): Promise<{ deviceId: string; available: number; lastResort: boolean }> {
    return this.authed('POST', '/mls/key-packages', { keyPackages, ...(lastResort ? { lastResort } : {}) }) as Promise<{ deviceId: string; available: number; lastResort: boolean }>;
  }
  mlsDevices(address: string): Promise<{ address: string; devices: MlsDeviceEntry[] }> { return this.authed('GET', `/mls/devices/${enc(address)}`) as Promise<{ address: string; devices: MlsDeviceEntry[] }>; }
  async mlsRemoveDevice(deviceId: string): Promise<void> { await this.authed('DELETE', `/mls/devices/${enc(deviceId)}`); }
  mlsClaim(addresses: string[]): Promise<{ keyPackages: { address: string; deviceId: string; keyPackage: string; lastResort: boolean }[] }> {
    return this.authed('POST', '/mls/key-packages/claim', { addresses }) as Promise<{ keyPackages: { address: string; deviceId: string; keyPackage: string; lastResort: boolean }[] }>;
  }
  mlsGroup(chatId: string): Promise<MlsGroupEntry> { return this.authed('GET', `/mls/groups/${enc(chatId)}`) as Promise<MlsGroupEntry>; }
  async mlsPutGroupInfo(chatId: string, epoch: number, groupInfo: string): Promise<void> { await this.authed('PUT', `/mls/groups/${enc(chatId)}/group-info`, { epoch, groupInfo }); }
  mlsEpochAuth(chatId: string, epoch: number, hash: string): Promise<{ status: 'ok' | 'out_of_sync'; epoch?: number }> {
    return this.authed('POST', `/mls/groups/${enc(chatId)}/epoch-auth`, { epoch, hash }) as Promise<{ status: 'ok' | 'out_of_sync'; epoch?: number }>;
  }
  mlsExternalSender(): Promise<{ signatureKey: string; credential: string }> { return this.authed('GET', '/mls/external-sender') as Promise<{ signatureKey: string; credential: string }>; }
  /** `POST /auth/logout` is `Auth.logout()`. */
}
