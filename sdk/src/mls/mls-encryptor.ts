import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex as toHex, concatBytes } from '@noble/hashes/utils.js';
import { base64ToBytes, bytesToBase64 } from 'ts-mls';
import type { Encrypted, EncryptorContext, IncomingVerdict, MessageEncryptor } from '../encryptor.js';
import { ImError, isImError } from '../errors.js';
import type { MessageKind, RelationMessage, ServedMessage } from '../message.js';
import type { SessionKey } from '../session.js';
import { getJson, setJson } from '../storage.js';
import { buildIdentity, checkIdentity, deviceId, fingerprint, parseDelegation, parseIdentity } from './credential.js';
import type { KeyPackagePair, MlsDevice, MlsEngine, MlsGroup } from './engine.js';
import { keyPackageLifetime, TsMlsEngine } from './tsmls.js';

export const MLS_ENCRYPTED_BY = 'MLS';

/** Why a message could not be opened (the `undecryptable` event's `reason`). */
export type UndecryptableReason = 'not-a-member' | 'old-epoch' | 'wrong-group' | 'future-epoch' | 'malformed' | 'removed' | 'failed';

export interface UndecryptableEvent {
  chatId: string;
  seq: number;
  id: string;
  reason: UndecryptableReason;
  detail: string;
}

interface SavedDevice { publicKey: string; privateKey: string }
interface SavedKp { pub: string; priv: string }

/** How many KeyPackages this device keeps uploaded (topped up when the server says fewer remain). */
const KP_BATCH = 20;
const KP_LOW = 10;
/** A device replaces its packages in the directory, the last-resort one too, once one has less than this left (docs/e2ee.md section 5). */
export const KP_RENEW_BEFORE_MS = 7 * 86_400_000;
/**
 * How long the private keys of a KeyPackage are kept after its lifetime ended (docs/e2ee.md section 5).
 * Members refuse an expired package, so a Welcome to it was made before its end; this is how long such a
 * Welcome can wait for a device that was away. Past it the keys are deleted (forward secrecy: a stolen
 * device does not open old Welcomes), and such a device rejoins by external commit instead.
 */
export const KP_KEEP_AFTER_END_MS = 30 * 86_400_000;
/** How often a running client checks its KeyPackages (MlsEncryptor's `keyPackageCheckMs`). */
export const KP_CHECK_EVERY_MS = 6 * 3_600_000;

/**
 * The saved packages still worth keeping at `nowMs`: those whose lifetime ended less than
 * KP_KEEP_AFTER_END_MS ago. A package whose lifetime cannot be read is kept (it cannot be judged).
 */
export function keptKeyPackages<T extends { pub: string }>(kps: T[], nowMs: number): T[] {
  return kps.filter((k) => {
    const end = keyPackageLifetime(unb64(k.pub))?.notAfter;
    return end === undefined || end * 1000 + KP_KEEP_AFTER_END_MS > nowMs;
  });
}

const b64 = (b: Uint8Array): string => bytesToBase64(b);
const unb64 = (s: string): Uint8Array => base64ToBytes(s);

/** The conversation id of a message (`dm:<lower>:<higher>` or the DAO address). */
export function conversationId(sender: string, receiver: string, kind: MessageKind): string {
  const r = receiver.toLowerCase();
  if (kind !== 0) return r;
  const s = sender.toLowerCase();
  return s <= r ? `dm:${s}:${r}` : `dm:${r}:${s}`;
}

/** Runs jobs of one key one after another (one queue per conversation). */
class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();
  run<T>(key: string, job: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(job, job);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => { if (this.tails.get(key) === tail) this.tails.delete(key); });
    return next;
  }
}

/**
 * End-to-end encryption with MLS (docs/e2ee.md): one MLS group per conversation, the proxy as Delivery
 * Service. Everything of one conversation (commits, joins, sends, processing) runs in one queue, so
 * handshakes and sends never interleave; all state is persisted through the client's storage after every
 * change. Anything it cannot open is reported (`undecryptable`), never dropped silently.
 */
export class MlsEncryptor implements MessageEncryptor {
  readonly encryptedBy = MLS_ENCRYPTED_BY;
  private ctx: EncryptorContext | null = null;
  private enginePromise: Promise<MlsEngine> | null = null;
  private device: (MlsDevice & { id: string; session: string }) | null = null;
  private kps: SavedKp[] | null = null;
  private readonly groups = new Map<string, MlsGroup | null>();
  private readonly queue = new KeyedQueue();
  /** Plaintext of messages this client sent or opened, by payload (a ratchet key opens a message once). */
  private readonly opened = new Map<string, string>();
  /** Payloads of handshakes this device sent (their echo is not processed again). */
  private readonly ownHandshakes = new Set<string>();
  private readonly rejoinWanted = new Set<string>();
  /** Highest seq processed per conversation (where a catch-up starts reading). */
  private readonly lastSeq = new Map<string, number>();
  private uploading: Promise<void> | null = null;
  private externalSenderTrusted = false;
  private indexCache: string[] | null = null;
  private storeChange: Promise<void> | null = null;
  private refreshing: Promise<void> | null = null;
  private deviceBuilding: Promise<MlsDevice & { id: string }> | null = null;
  private renewing: Promise<boolean> | null = null;
  private readonly now: () => number;

  /**
   * `now`: the clock (ms) for KeyPackage lifetimes and their renewal (default Date.now; the engine made
   * here uses it too). `keyPackageCheckMs`: how often a running client repeats the start's KeyPackage
   * check (default 6 hours), so a device that stays connected for weeks renews its packages before
   * they expire even if nobody claims one (a claim skips a device with no usable package, so no
   * `mls.keyPackagesLow` would reach it).
   */
  constructor(private readonly opts: { engine?: MlsEngine; keepTexts?: boolean; now?: () => number; keyPackageCheckMs?: number } = {}) {
    this.now = opts.now ?? Date.now;
  }

  get keyPackageCheckMs(): number {
    return this.opts.keyPackageCheckMs ?? KP_CHECK_EVERY_MS;
  }

  /**
   * The start's KeyPackage step, also repeated every `keyPackageCheckMs`: the first upload when this
   * device has none in the directory yet (or it failed before), else the renewal check. Rejects when the
   * upload fails; a failed renewal goes to `onRenewalError` when given (the start reports it and goes on),
   * else rejects too.
   */
  async maintainKeyPackages(onRenewalError?: (err: unknown) => void): Promise<void> {
    if ((await this.c.storage.get(this.key('lastResort'))) !== '1') return this.uploadKeyPackages();
    const renewal = this.renewKeyPackages().then(() => undefined);
    await (onRenewalError ? renewal.catch(onRenewalError) : renewal);
  }

  attach(ctx: EncryptorContext): void {
    this.ctx = ctx;
  }

  private get c(): EncryptorContext {
    if (!this.ctx) throw new ImError('INVALID_ARGUMENT', 'MlsEncryptor is not attached to a RelationClient');
    return this.ctx;
  }

  /** The chat id of the REST face for a conversation: the peer's address for a direct chat, else the DAO. */
  private restId(cid: string): string {
    if (!cid.startsWith('dm:')) return cid;
    const [, a, b] = cid.split(':') as [string, string, string];
    return a === this.c.address.toLowerCase() ? b : a;
  }

  private key(k: string): string {
    return `mls:${this.c.namespace}:${k}`;
  }

  private engine(): Promise<MlsEngine> {
    this.enginePromise ??= this.opts.engine ? Promise.resolve(this.opts.engine)
      : TsMlsEngine.create({ validateIdentity: (id, k, o) => checkIdentity(id, k, Date.now(), o).ok, now: this.now });
    return this.enginePromise;
  }

  // ---------------------------------------------------------------- device and KeyPackages

  /** This device's MLS signature key (created once, persisted) with a credential from the current session key. */
  async ensureDevice(): Promise<MlsDevice & { id: string }> {
    const session = await this.c.sessions.get();
    if (this.device && this.device.session === session.address) return this.device;
    // One build at a time: two concurrent first calls would each make a signature key.
    this.deviceBuilding ??= this.buildDevice(session as SessionKey).finally(() => { this.deviceBuilding = null; });
    return this.deviceBuilding;
  }

  private async buildDevice(session: SessionKey): Promise<MlsDevice & { id: string }> {
    const e = await this.engine();
    let saved = await getJson<SavedDevice>(this.c.storage, this.key('device'));
    if (!saved) {
      const k = await e.generateSignatureKey();
      saved = { publicKey: b64(k.publicKey), privateKey: b64(k.privateKey) };
      await setJson(this.c.storage, this.key('device'), saved);
    }
    const pub = unb64(saved.publicKey);
    this.device = { signaturePublicKey: pub, signaturePrivateKey: unb64(saved.privateKey), identity: buildIdentity(session, pub), id: deviceId(pub), session: session.address };
    // The session key the directory's packages and this device's leaves were made with (`…:credentialSession`):
    // another one means the session key was renewed since, and they carry the old delegation.
    const carried = await this.c.storage.get(this.key('credentialSession'));
    if (carried === null) await this.c.storage.set(this.key('credentialSession'), session.address);
    else if (carried !== session.address) void this.refreshCredential().catch(() => undefined);
    return this.device!;
  }

  /**
   * After a renewal of the session key (docs/e2ee.md section 2): this device's KeyPackages and its leaf in
   * every group it is a member of carry the new delegation. The directory keeps a device's credential
   * from its first upload and its packages until they are claimed, so the device leaves it and uploads a
   * fresh batch and a new last-resort package; then, in each group, it commits an update of its own leaf
   * with the new credential (a commit with a path; a stale one catches up and tries again). Runs by itself
   * when `ensureDevice` sees a new session key (every send and every connection check); the session key it was done for is
   * recorded only once all of it succeeded, so a failure is retried at the next send or start.
   */
  refreshCredential(): Promise<void> {
    this.refreshing ??= (async () => {
      try {
        const dev = await this.ensureDevice();
        const session = await this.c.sessions.get();
        if ((await this.c.storage.get(this.key('credentialSession'))) !== session.address) {
          await this.uploading?.catch(() => undefined);
          await this.c.rest.mlsRemoveDevice(dev.id).catch((err: unknown) => {
            if (!isImError(err, 'MLS_NO_KEY_PACKAGE')) throw err;
          });
          await this.c.storage.remove(this.key('lastResort'));
          await this.uploadKeyPackages();
        }
        let failed: unknown = null;
        for (const cid of [...(await this.groupIndex())]) {
          await this.queue.run(cid, () => this.refreshLeaf(cid, session.delegationMessage)).catch((err: unknown) => { failed ??= err; });
        }
        if (failed !== null) throw failed;
        await this.c.storage.set(this.key('credentialSession'), session.address);
      } catch (err) {
        this.device = null; // the next ensureDevice checks again
        throw err;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }

  /** Commits an update of this device's leaf with the current credential, unless it carries it already. */
  private async refreshLeaf(cid: string, delegationMessage: string): Promise<void> {
    const e = await this.engine();
    const dev = await this.ensureDevice();
    const kind: MessageKind = cid.startsWith('dm:') ? 0 : 1;
    for (let attempt = 0; attempt < 5; attempt++) {
      const g = await this.loadGroup(cid);
      if (!g) return;
      const own = e.members(g).find((m) => m.leafIndex === e.ownLeaf(g));
      if (!own || parseIdentity(own.identity)?.delegationMessage === delegationMessage) return;
      const c = await e.commit(g, { identity: dev.identity });
      if ((await this.sendHandshake(cid, this.restId(cid), kind, c.commit)) === 'ok') {
        await this.saveGroup(cid, c.group);
        await this.afterEpochChange(cid, c.group, true);
        return;
      }
      await this.catchUp(cid, g); // another member committed first: its commit is in the history
    }
    throw new ImError('MLS_STALE_EPOCH', `could not update this device's leaf in ${cid}`);
  }

  get deviceId(): string | null {
    return this.device?.id ?? null;
  }

  private async loadKps(): Promise<SavedKp[]> {
    this.kps ??= (await getJson<SavedKp[]>(this.c.storage, this.key('keyPackages'))) ?? [];
    return this.kps;
  }

  private async saveKps(): Promise<void> {
    await setJson(this.c.storage, this.key('keyPackages'), this.kps ?? []);
  }

  /** Generates and uploads KeyPackages (and a last-resort one the first time). Called on start and on `mls.keyPackagesLow`. */
  uploadKeyPackages(count = KP_BATCH): Promise<void> {
    this.uploading ??= (async () => {
      try {
        const e = await this.engine();
        const dev = await this.ensureDevice();
        await this.pruneKeyPackages();
        const kps = await this.loadKps();
        const fresh: KeyPackagePair[] = [];
        for (let i = 0; i < count; i++) fresh.push(await e.generateKeyPackage(dev));
        const hasLast = (await this.c.storage.get(this.key('lastResort'))) === '1';
        let last: KeyPackagePair | undefined;
        if (!hasLast) last = await e.generateKeyPackage(dev);
        // Private keys are persisted before the public halves leave the device.
        for (const k of [...fresh, ...(last ? [last] : [])]) kps.push({ pub: b64(k.publicMessage), priv: b64(k.privateKeys) });
        await this.saveKps();
        const r = await this.c.rest.mlsUploadKeyPackages(fresh.map((k) => b64(k.publicMessage)), last ? b64(last.publicMessage) : undefined);
        if (last) await this.c.storage.set(this.key('lastResort'), '1');
        // The earliest end of what this device has in the directory: a new last-resort package means the
        // directory held nothing of it before (first upload, after leaving it, a rebuilt store).
        const ends = [...fresh, ...(last ? [last] : [])].map((k) => keyPackageLifetime(k.publicMessage)?.notAfter ?? 0);
        const before = last ? null : await this.c.storage.get(this.key('kpNotAfter'));
        await this.c.storage.set(this.key('kpNotAfter'), String(Math.min(...ends, ...(before === null ? [] : [Number(before)]))));
        if (r.available < KP_LOW) {
          this.uploading = null;
          await this.uploadKeyPackages(KP_BATCH);
        }
      } finally {
        this.uploading = null;
      }
    })();
    return this.uploading;
  }

  /**
   * KeyPackage lifetimes (docs/e2ee.md section 5): when a package this device has in the directory, the
   * last-resort one included, has less than 7 days left, the device leaves the directory and uploads a
   * fresh batch with a new last-resort package (the directory cannot drop single packages; old ones would
   * be claimed first). The private keys of the old packages stay on the device until KP_KEEP_AFTER_END_MS
   * after their lifetime: a Welcome for one that was claimed before may still arrive. Called on start and
   * on `mls.keyPackagesLow`; true when it renewed.
   */
  renewKeyPackages(): Promise<boolean> {
    this.renewing ??= (async () => {
      try {
        await this.uploading?.catch(() => undefined);
        await this.pruneKeyPackages();
        if ((await this.c.storage.get(this.key('lastResort'))) !== '1') return false; // nothing uploaded yet
        let end = Number((await this.c.storage.get(this.key('kpNotAfter'))) ?? NaN);
        if (Number.isNaN(end)) {
          // uploaded by a version that did not record it: the earliest of the packages kept here
          const kept = (await this.loadKps()).map((k) => keyPackageLifetime(unb64(k.pub))?.notAfter ?? 0);
          end = kept.length > 0 ? Math.min(...kept) : 0;
        }
        if (end * 1000 - this.now() >= KP_RENEW_BEFORE_MS) return false;
        const dev = await this.ensureDevice();
        await this.c.rest.mlsRemoveDevice(dev.id).catch((err: unknown) => {
          if (!isImError(err, 'MLS_NO_KEY_PACKAGE')) throw err;
        });
        await this.c.storage.remove(this.key('lastResort'));
        await this.uploadKeyPackages();
        return true;
      } finally {
        this.renewing = null;
      }
    })();
    return this.renewing;
  }

  /** Deletes the private keys of packages whose lifetime ended more than KP_KEEP_AFTER_END_MS ago. */
  private async pruneKeyPackages(): Promise<void> {
    const kps = await this.loadKps();
    const kept = new Set(keptKeyPackages(kps, this.now()));
    if (kept.size === kps.length) return;
    // in place (an upload running meanwhile pushes to this same array)
    for (let i = kps.length - 1; i >= 0; i--) if (!kept.has(kps[i]!)) kps.splice(i, 1);
    await this.saveKps();
  }

  private async candidates(): Promise<KeyPackagePair[]> {
    return (await this.loadKps()).map((k) => ({ publicMessage: unb64(k.pub), privateKeys: unb64(k.priv) }));
  }

  private async dropKp(used: KeyPackagePair): Promise<void> {
    const pub = b64(used.publicMessage);
    const kps = await this.loadKps();
    const i = kps.findIndex((k) => k.pub === pub);
    // The last-resort package (the last one generated with a flag) stays usable; others are single use.
    if (i >= 0) kps.splice(i, 1);
    await this.saveKps();
  }

  // ---------------------------------------------------------------- group state

  private async loadGroup(cid: string): Promise<MlsGroup | null> {
    if (this.groups.has(cid)) return this.groups.get(cid) ?? null;
    const e = await this.engine();
    const s = await this.c.storage.get(this.key(`group:${cid}`));
    const g = s ? e.deserialize(unb64(s)) : null;
    this.groups.set(cid, g);
    return g;
  }

  private async saveGroup(cid: string, g: MlsGroup | null): Promise<void> {
    const e = await this.engine();
    this.groups.set(cid, g);
    if (g) await this.c.storage.set(this.key(`group:${cid}`), b64(e.serialize(g)));
    else await this.c.storage.remove(this.key(`group:${cid}`));
    const index = await this.groupIndex();
    if (g ? !index.includes(cid) : index.includes(cid)) {
      this.indexCache = g ? [...index, cid] : index.filter((x) => x !== cid);
      await setJson(this.c.storage, this.key('groups'), this.indexCache);
    }
  }

  /** The conversations this device holds a group state for (`…:groups`: storage cannot list its keys). */
  private async groupIndex(): Promise<string[]> {
    this.indexCache ??= (await getJson<string[]>(this.c.storage, this.key('groups'))) ?? [];
    return this.indexCache;
  }

  /** The current epoch of this device's group for a conversation (null: not a member). */
  async epochOf(cid: string): Promise<bigint | null> {
    return (await this.loadGroup(cid))?.epoch ?? null;
  }

  /** hex SHA-256 of "relation-mls-fork:" ‖ epoch_authenticator (docs/e2ee.md section 5). */
  async epochAuthHash(cid: string): Promise<string | null> {
    const g = await this.loadGroup(cid);
    if (!g) return null;
    const e = await this.engine();
    return toHex(sha256(concatBytes(new TextEncoder().encode('relation-mls-fork:'), e.epochAuthenticator(g))));
  }

  private async trustExternalSender(): Promise<{ signatureKey: Uint8Array; credential: Uint8Array }> {
    const x = await this.c.rest.mlsExternalSender();
    const entry = { signatureKey: unb64(x.signatureKey), credential: unb64(x.credential) };
    const e = await this.engine();
    if (e instanceof TsMlsEngine) e.trustExternalSender(entry);
    this.externalSenderTrusted = true;
    return entry;
  }

  // ---------------------------------------------------------------- sending

  async encrypt(plaintext: string, to: { sender: string; receiver: string; kind: MessageKind }): Promise<Encrypted> {
    const cid = conversationId(to.sender, to.receiver, to.kind);
    await this.ensureDevice(); // notices a renewed session key (refreshCredential)
    return this.queue.run(cid, async () => {
      let g = await this.ensureGroup(cid, to.receiver, to.kind);
      if (to.kind === 0) g = await this.addMissingDevices(cid, g, to.receiver);
      const e = await this.engine();
      // No application message over uncommitted proposals (RFC 9420; the proxy refuses it after its own).
      if (e.pendingProposals(g) > 0) {
        const c = await e.commit(g);
        if ((await this.sendHandshake(cid, to.receiver, to.kind, c.commit)) === 'ok') {
          g = c.group;
          await this.saveGroup(cid, g);
          await this.afterEpochChange(cid, g, true);
        } else g = await this.catchUp(cid, g);
      }
      const r = await e.encrypt(g, new TextEncoder().encode(plaintext));
      await this.saveGroup(cid, r.group);
      const payload = b64(r.message);
      await this.remember(payload, plaintext);
      return { encryptedBy: MLS_ENCRYPTED_BY, payload, encryptedSymmetricKey: '' };
    });
  }

  /** Sends a handshake payload (type MLS) and applies `after` once the proxy accepted it. */
  private async sendHandshake(cid: string, receiver: string, kind: MessageKind, bytes: Uint8Array): Promise<'ok' | 'stale'> {
    const payload = b64(bytes);
    this.ownHandshakes.add(payload);
    try {
      await this.c.sendHandshake({ receiver, kind: kind === 3 ? 1 : kind, payload });
      return 'ok';
    } catch (e) {
      if (isImError(e, 'MLS_STALE_EPOCH')) return 'stale';
      throw e;
    }
  }

  private async afterEpochChange(cid: string, g: MlsGroup, publishGroupInfo: boolean): Promise<void> {
    const e = await this.engine();
    if (publishGroupInfo) {
      try {
        await this.c.rest.mlsPutGroupInfo(cid, Number(g.epoch), b64(await e.groupInfo(g)));
      } catch (err) {
        if (!isImError(err, 'MLS_STALE_EPOCH')) throw err;
      }
    }
    const hash = await this.epochAuthHash(cid);
    if (!hash) return;
    const r = await this.c.rest.mlsEpochAuth(cid, Number(g.epoch), hash);
    // Forked (another member saw another epoch authenticator): rejoin by external commit with resync.
    if (r.status === 'out_of_sync') this.scheduleRejoin(cid);
  }

  /** This device's group for the conversation: the stored one, or created / joined now (docs/e2ee.md section 6). */
  private async ensureGroup(cid: string, receiver: string, kind: MessageKind): Promise<MlsGroup> {
    if (this.rejoinWanted.has(cid)) {
      this.rejoinWanted.delete(cid);
      const g = await this.loadGroup(cid);
      await this.saveGroup(cid, null);
      try {
        return await this.joinExisting(cid, receiver, kind, g !== null);
      } catch (err) {
        // The rejoin failed (refused, or the network): the state this device had is kept, not lost with it.
        if (g && !(await this.loadGroup(cid))) await this.saveGroup(cid, g);
        throw err;
      }
    }
    const have = await this.loadGroup(cid);
    if (have) return have;
    const e = await this.engine();
    const dev = await this.ensureDevice();
    for (let attempt = 0; attempt < 5; attempt++) {
      const info = await this.c.rest.mlsGroup(cid);
      if (info.epoch > 0 || info.groupInfo) return this.joinExisting(cid, receiver, kind, false);
      // Nobody committed yet: create the group and commit epoch 0 -> 1 (the store's compare-and-set decides).
      const own = await e.generateKeyPackage(dev);
      let g: MlsGroup;
      let add: Uint8Array[] = [];
      if (kind === 0) {
        g = await e.createGroup(cid, dev, own);
        const me = this.c.address.toLowerCase();
        const claimed = await this.claim([me, receiver.toLowerCase()]);
        add = claimed.filter((k) => k.deviceId !== dev.id).map((k) => unb64(k.keyPackage));
      } else {
        const ext = await this.trustExternalSender();
        g = await e.createGroup(cid, dev, own, { externalSenders: [ext] });
      }
      const c = await e.commit(g, { add });
      const bytes = c.welcome ? concatBytes(c.commit, c.welcome) : c.commit;
      const sent = await this.sendHandshake(cid, receiver, kind, bytes);
      if (sent === 'ok') {
        await this.saveGroup(cid, c.group);
        await this.afterEpochChange(cid, c.group, true);
        return c.group;
      }
      // Another client won epoch 0 -> 1: drop this attempt, join the winner's group.
    }
    return this.joinExisting(cid, receiver, kind, false);
  }

  private async claim(addresses: string[]): Promise<{ address: string; deviceId: string; keyPackage: string }[]> {
    try {
      return (await this.c.rest.mlsClaim(addresses)).keyPackages;
    } catch (e) {
      if (isImError(e, 'MLS_NO_KEY_PACKAGE')) return [];
      throw e;
    }
  }

  /** Joins a group that exists: a Welcome for this device in the conversation's history, else an external commit. */
  private async joinExisting(cid: string, receiver: string, kind: MessageKind, resync: boolean): Promise<MlsGroup> {
    // resync: this device had a group state (a fork); the Welcome path is then pointless.
    const e = await this.engine();
    if (!resync && kind === 0) {
      const w = await this.welcomeFromHistory(cid);
      if (w) return w;
    }
    const dev = await this.ensureDevice();
    if (kind !== 0 && !this.externalSenderTrusted) await this.trustExternalSender();
    for (let attempt = 0; attempt < 8; attempt++) {
      const info = await this.c.rest.mlsGroup(cid);
      if (!info.groupInfo) {
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
        continue;
      }
      // Resync whenever this device's key still has a leaf (the adapter checks), so a device that lost its
      // state replaces its stale leaf instead of colliding with it.
      const j = await e.joinExternal(unb64(info.groupInfo), dev, await e.generateKeyPackage(dev), true);
      const sent = await this.sendHandshake(cid, receiver, kind, j.commit);
      if (sent === 'ok') {
        await this.saveGroup(cid, j.group);
        await this.afterEpochChange(cid, j.group, true);
        return j.group;
      }
      await new Promise((r) => setTimeout(r, 50 * (attempt + 1)));
    }
    throw new ImError('MLS_STALE_EPOCH', `could not join the MLS group of ${cid}`);
  }

  /** Scans the conversation for a commit whose Welcome opens with one of this device's KeyPackages; processes what follows. */
  private async welcomeFromHistory(cid: string): Promise<MlsGroup | null> {
    const e = await this.engine();
    let after = 0;
    let g: MlsGroup | null = null;
    for (;;) {
      const items = await this.c.rest.list({ chatId: this.restId(cid), afterSeq: after, limit: 50 });
      for (const it of items) {
        if ('im' in it) continue;
        after = it.seq;
        if (it.encryptedBy !== MLS_ENCRYPTED_BY || (!g && it.type !== 'MLS')) continue;
        const bytes = safeB64(it.payload);
        if (!bytes) continue;
        if (!g) {
          const h = e.header(bytes);
          if (!h || h.length >= bytes.length) continue;
          const j = await e.joinWelcome(bytes.slice(h.length), await this.candidates()).catch(() => null);
          if (j) {
            g = j.group;
            await this.dropKp(j.used);
          }
          continue;
        }
        // Later messages of the group after the Welcome: handshakes, and the application messages of each
        // epoch (sent while this device was a member: opened now, at their epoch, and kept).
        const h = e.header(bytes);
        if (!h || h.header.epoch === null || h.header.epoch < g.epoch) continue;
        if (h.header.contentType === 'application') {
          if (h.header.epoch === g.epoch) g = await this.openInPassing(g, it, bytes.slice(0, h.length));
          continue;
        }
        try {
          g = (await e.process(g, bytes.slice(0, h.length))).group;
        } catch {
          return null;
        }
      }
      if (items.length < 50) break;
    }
    if (g) {
      await this.saveGroup(cid, g);
      await this.afterEpochChange(cid, g, false);
    }
    return g;
  }

  /** Direct chat: every directory device of both wallets is in the group; a missing one is added now. */
  private async addMissingDevices(cid: string, g: MlsGroup, receiver: string): Promise<MlsGroup> {
    const e = await this.engine();
    const inGroup = new Set(e.members(g).map((m) => deviceId(m.signaturePublicKey)));
    const addrs = [this.c.address.toLowerCase(), receiver.toLowerCase()];
    let missing = false;
    for (const a of addrs) {
      const d = await this.c.rest.mlsDevices(a).catch(() => ({ devices: [] as { deviceId: string }[] }));
      if (d.devices.some((x) => !inGroup.has(x.deviceId))) missing = true;
    }
    if (!missing) return g;
    const claimed = (await this.claim(addrs)).filter((k) => !inGroup.has(k.deviceId));
    if (claimed.length === 0) return g;
    let c: Awaited<ReturnType<MlsEngine['commit']>>;
    try {
      c = await e.commit(g, { add: claimed.map((k) => unb64(k.keyPackage)) });
    } catch {
      // A package the Authentication Service refuses (an expired delegation …): send without adding.
      return g;
    }
    const sent = await this.sendHandshake(cid, receiver, 0, c.welcome ? concatBytes(c.commit, c.welcome) : c.commit);
    if (sent === 'stale') return this.catchUp(cid, g);
    await this.saveGroup(cid, c.group);
    await this.afterEpochChange(cid, c.group, true);
    return c.group;
  }

  /**
   * Processes what this device has not seen yet of the conversation (after a stale commit): the
   * handshakes, and interleaved with them in seq order the application messages of each epoch they pass
   * through. Those are opened at their epoch and kept as every opened message is (`remember`), so they
   * are delivered readable when they arrive in seq order: once the group moved past their epoch, the
   * engine keeps only a few epochs' keys and they could not be opened later (docs/e2ee.md section 6).
   */
  private async catchUp(cid: string, g: MlsGroup): Promise<MlsGroup> {
    const e = await this.engine();
    let cur = g;
    const items = [];
    for (let after = this.lastSeq.get(cid) ?? 0; ;) {
      const page = await this.c.rest.list({ chatId: this.restId(cid), afterSeq: after, limit: 50 });
      items.push(...page);
      if (page.length < 50) break;
      after = page[page.length - 1]!.seq;
    }
    for (const it of items) {
      if ('im' in it || it.encryptedBy !== MLS_ENCRYPTED_BY) continue;
      const bytes = safeB64(it.payload);
      const h = bytes && e.header(bytes);
      if (!bytes || !h || h.header.epoch !== cur.epoch) continue;
      if (h.header.contentType === 'application') {
        cur = await this.openInPassing(cur, it, bytes.slice(0, h.length));
        continue;
      }
      if (this.ownHandshakes.has(it.payload)) continue;
      try {
        cur = (await e.process(cur, bytes.slice(0, h.length))).group;
      } catch {
        /* not for this group state */
      }
    }
    await this.saveGroup(cid, cur);
    return cur;
  }

  /**
   * Opens an application message of the group's current epoch met while catching up, and keeps its text
   * (`remember`: in memory and in storage, as for any opened message), so that `receiveNow` delivers it
   * readable when it arrives. One this device sent or opened already is left alone; one that does not
   * open is left to `receiveNow`, which reports it. Returns the group state after it.
   */
  private async openInPassing(g: MlsGroup, m: Pick<RelationMessage, 'encryptedBy' | 'payload' | 'encryptedSymmetricKey' | 'sender' | 'receiver' | 'kind'>, framed: Uint8Array): Promise<MlsGroup> {
    if (this.opened.has(m.payload) || (await this.decrypt(m)) !== null) return g;
    const e = await this.engine();
    try {
      const r = await e.process(g, framed);
      if (r.kind !== 'application') return g;
      await this.remember(m.payload, new TextDecoder().decode(r.plaintext));
      return r.group;
    } catch {
      return g;
    }
  }

  // ---------------------------------------------------------------- receiving

  /**
   * Called by the client for every incoming message of a conversation in seq order, before delivery:
   * processes handshakes, opens application messages (their text is then given by `decrypt`), and
   * reports what cannot be opened.
   */
  receive(_chatId: string, m: ServedMessage): Promise<IncomingVerdict> {
    if (m.encryptedBy !== MLS_ENCRYPTED_BY) return Promise.resolve({ handshake: false });
    // The MLS group is the conversation (dm:<lower>:<higher> or the DAO), whatever the REST face calls it.
    const cid = conversationId(m.sender, m.receiver, m.kind === 3 || m.kind === 2 ? 1 : m.kind);
    return this.queue.run(cid, () => this.receiveNow(cid, m));
  }

  private async receiveNow(cid: string, m: ServedMessage): Promise<IncomingVerdict> {
    const handshake = m.type === 'MLS';
    if (typeof m.seq === 'number' && m.seq > (this.lastSeq.get(cid) ?? 0)) this.lastSeq.set(cid, m.seq);
    if (this.opened.has(m.payload) || this.ownHandshakes.has(m.payload)) return { handshake };
    // Opened (or sent) before a restart: its key is gone, its text is kept.
    if (!handshake && (await this.decrypt(m)) !== null) return { handshake };
    const e = await this.engine();
    const bytes = safeB64(m.payload);
    const h = bytes && e.header(bytes);
    const fail = (reason: UndecryptableReason, detail: string): IncomingVerdict => {
      if (!handshake || reason === 'malformed' || reason === 'wrong-group') this.c.undecryptable({ chatId: cid, seq: m.seq, id: m.id, reason, detail });
      return { handshake, undecryptable: reason };
    };
    if (!bytes || !h) return fail('malformed', 'not an MLS message');
    if (h.header.groupId !== cid) return fail('wrong-group', `group id ${String(h.header.groupId)}`);
    let g = await this.loadGroup(cid);
    if (!g) {
      if (handshake && h.length < bytes.length) {
        const j = await e.joinWelcome(bytes.slice(h.length), await this.candidates()).catch(() => null);
        if (j) {
          await this.dropKp(j.used);
          await this.saveGroup(cid, j.group);
          await this.afterEpochChange(cid, j.group, false);
          return { handshake };
        }
      }
      if (!handshake) this.scheduleRejoin(cid, m);
      return fail('not-a-member', 'this device has no state for the conversation at this epoch');
    }
    const epoch = h.header.epoch ?? 0n;
    if (handshake && epoch < g.epoch) return { handshake }; // applied already (own commit, or before a join)
    if (epoch > g.epoch) {
      this.scheduleRejoin(cid, m);
      return fail('future-epoch', `message at epoch ${epoch}, this device at ${g.epoch}`);
    }
    try {
      const r = await e.process(g, bytes.slice(0, h.length)).catch(async (err: unknown) => {
        // A DAO group's commit may name an external sender this device does not trust yet (members replace
        // it after a rebuild from the archive, docs/e2ee.md section 8): trust the proxy's current one, retry once.
        if (!handshake || cid.startsWith('dm:')) throw err;
        await this.trustExternalSender();
        return e.process(g!, bytes.slice(0, h.length));
      });
      g = r.group;
      if (r.kind === 'application') {
        await this.saveGroup(cid, g);
        await this.remember(m.payload, new TextDecoder().decode(r.plaintext));
        return { handshake: false };
      }
      if (r.kind === 'commit') {
        if (r.removedSelf) {
          await this.saveGroup(cid, null);
          return { handshake };
        }
        await this.saveGroup(cid, g);
        await this.afterEpochChange(cid, g, false);
        return { handshake };
      }
      await this.saveGroup(cid, g);
      // A Remove proposed by the proxy (a token left its holder): commit it at once. A refused commit (this
      // device is itself no member any more, or the network failed) leaves the proposal pending: the next
      // send commits it first, and the proposal itself was processed, so nothing is reported.
      if (r.external) await this.commitPending(cid, m).catch(() => undefined);
      return { handshake };
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err);
      if (/removed/.test(detail)) return fail('removed', detail);
      // Sent at an epoch this device never had (before it joined) or whose keys it no longer keeps.
      if (epoch < g.epoch) return fail('old-epoch', detail);
      return fail('failed', detail);
    }
  }

  /** After a message it could not open for lack of state, this device rejoins (so later ones are readable). */
  private scheduleRejoin(cid: string, m?: ServedMessage): void {
    if (this.rejoinWanted.has(cid)) return;
    this.rejoinWanted.add(cid);
    const kind: MessageKind = cid.startsWith('dm:') ? 0 : 1;
    const receiver = this.restId(cid);
    void this.queue.run(cid, async () => {
      if (!this.rejoinWanted.has(cid)) return;
      await this.ensureGroup(cid, receiver, kind);
    }).catch((e: unknown) => this.c.undecryptable({ chatId: cid, seq: m?.seq ?? 0, id: m?.id ?? '', reason: 'failed', detail: `rejoin failed: ${e instanceof Error ? e.message : String(e)}` }));
  }

  private async commitPending(cid: string, m: ServedMessage): Promise<void> {
    const e = await this.engine();
    const g = await this.loadGroup(cid);
    if (!g || e.pendingProposals(g) === 0) return;
    const c = await e.commit(g);
    const sent = await this.sendHandshake(cid, m.receiver, m.kind, c.commit);
    if (sent === 'ok') {
      await this.saveGroup(cid, c.group);
      await this.afterEpochChange(cid, c.group, true);
    }
    // stale: another member committed it; its commit arrives next in seq order.
  }

  private textKey(payload: string): string {
    return this.key(`text:${toHex(sha256(new TextEncoder().encode(payload)).slice(0, 16))}`);
  }

  /**
   * Keeps the text of a message this device sent or opened: in memory, and (unless `keepTexts: false`) in
   * the client's storage, as a messenger keeps its local history (MLS opens each message once).
   */
  private async remember(payload: string, text: string): Promise<void> {
    if (this.opts.keepTexts !== false) await this.c.storage.set(this.textKey(payload), text);
    this.opened.set(payload, text);
    if (this.opened.size > 5000) {
      const first = this.opened.keys().next().value;
      if (first !== undefined) this.opened.delete(first);
    }
  }

  /** The text of an MLS message this device sent or opened (null otherwise, or for handshakes). */
  async decrypt(m: Pick<RelationMessage, 'encryptedBy' | 'payload' | 'encryptedSymmetricKey' | 'sender' | 'receiver' | 'kind'>): Promise<string | null> {
    if (m.encryptedBy !== MLS_ENCRYPTED_BY) return null;
    const t = this.opened.get(m.payload);
    if (t !== undefined) return t;
    if (this.opts.keepTexts === false || !this.ctx) return null;
    return (await this.c.storage.get(this.textKey(m.payload))) ?? null;
  }

  /**
   * Makes sure this device is in the conversation's MLS group now (creates it, or joins by Welcome or
   * external commit), before anything is sent to it: a DAO member that joins only when the first message
   * arrives cannot read that message (it was encrypted before the join).
   */
  async join(receiver: string, kind: MessageKind): Promise<void> {
    const cid = conversationId(this.c.address, receiver, kind === 0 ? 0 : 1);
    await this.queue.run(cid, () => this.ensureGroup(cid, receiver, kind));
  }

  /**
   * The devices in this device's MLS group of a conversation (null: no group yet), each with the wallet
   * its credential names and the fingerprint computed here from the leaf's signature key (docs/e2ee.md
   * section 2), so a person verifies what the group holds, not what the server says.
   */
  async members(cid: string): Promise<{ wallet: string; deviceId: string; fingerprint: string; self: boolean; session: string; expiresAt: number }[] | null> {
    return this.queue.run(cid, async () => {
      const g = await this.loadGroup(cid);
      if (!g) return null;
      const e = await this.engine();
      const own = e.ownLeaf(g);
      return e.members(g).map((m) => {
        const id = parseIdentity(m.identity);
        const d = id ? parseDelegation(id.delegationMessage) : null;
        return {
          wallet: id?.wallet ?? '', deviceId: deviceId(m.signaturePublicKey),
          fingerprint: fingerprint(m.signaturePublicKey), self: m.leafIndex === own,
          // The session key (and its expiry) the leaf's credential carries: a renewal shows here.
          session: d?.session ?? '', expiresAt: d?.expiresAt ?? 0,
        };
      });
    });
  }

  /**
   * Commits now (a key update, and every pending proposal) in a conversation this device is a member of.
   * True when the proxy took it; false when another commit won the epoch (that one arrives in seq order).
   */
  update(receiver: string, kind: MessageKind): Promise<boolean> {
    const cid = conversationId(this.c.address, receiver, kind === 0 ? 0 : 1);
    return this.queue.run(cid, async () => {
      const g = await this.ensureGroup(cid, receiver, kind);
      const e = await this.engine();
      const c = await e.commit(g);
      if ((await this.sendHandshake(cid, receiver, kind, c.commit)) === 'stale') return false;
      await this.saveGroup(cid, c.group);
      await this.afterEpochChange(cid, c.group, true);
      return true;
    });
  }

  /** Waits until every job queued so far for the conversation ran (tests, orderly shutdown). */
  idle(receiver: string, kind: MessageKind): Promise<void> {
    return this.queue.run(conversationId(this.c.address, receiver, kind === 0 ? 0 : 1), async () => undefined);
  }

  /** Rejoins a conversation by external commit (resync when this device still has a leaf). */
  async rejoin(cid: string, receiver: string, kind: MessageKind): Promise<void> {
    await this.queue.run(cid, async () => {
      this.rejoinWanted.add(cid);
      await this.ensureGroup(cid, receiver, kind);
    });
  }

  /** The store epoch this device last worked with (docs/e2ee.md section 8), null before the first connection. */
  async storeEpochSeen(): Promise<string | null> {
    return (await this.c.storage.get(this.key('storeEpoch'))) ?? null;
  }

  /**
   * The client calls this with the store epoch of every connection (the `ready` frame). When it differs
   * from the one this device worked with, the proxy was rebuilt from the archive (docs/archive.md): the
   * archive held every message (handshakes included) but not the Delivery Service's directory, so this
   * device uploads again what the archive does not carry: its KeyPackages (a new last-resort one too) and,
   * for every group it is a member of, the GroupInfo of its epoch and its epoch-authenticator report.
   * The new epoch is recorded only once all of it was done, so a failure is retried on the next connection.
   */
  onStoreEpoch(epoch: string | null): Promise<void> {
    // Every connection also notices a session key renewed since the device credential was built.
    if (this.ctx) void this.ensureDevice().catch(() => undefined);
    if (epoch === null) return Promise.resolve();
    this.storeChange ??= (async () => {
      try {
        const seen = await this.storeEpochSeen();
        if (seen === epoch) return;
        if (seen !== null) await this.reupload();
        await this.c.storage.set(this.key('storeEpoch'), epoch);
      } finally {
        this.storeChange = null;
      }
    })();
    return this.storeChange;
  }

  private async reupload(): Promise<void> {
    await this.c.storage.remove(this.key('lastResort'));
    await this.uploadKeyPackages();
    for (const cid of [...(await this.groupIndex())]) {
      await this.queue.run(cid, async () => {
        const g = await this.loadGroup(cid);
        if (!g) return;
        // The rebuilt store ordered the same commits, so its epoch is this device's (unless this device is
        // behind: then the commits it misses arrive in the resync and their committers' GroupInfo is newer).
        const info = await this.c.rest.mlsGroup(cid).catch((err: unknown) => {
          if (isImError(err, 'NOT_MEMBER')) return null;
          throw err;
        });
        if (!info || info.epoch !== Number(g.epoch)) return;
        if (!cid.startsWith('dm:')) {
          // A DAO group names the proxy's external sender (for removals); the rebuilt store's key is new
          // (it is kept in the store, never archived). The group's entry is replaced by a commit, or the
          // rebuilt proxy's Remove proposals would fail every member's signature check.
          const ext = await this.trustExternalSender();
          const e = await this.engine();
          if (!e.externalSenders(g).some((k) => b64(k) === b64(ext.signatureKey))) {
            const c = await e.commit(g, { externalSenders: [ext] });
            const receiver = this.restId(cid);
            if ((await this.sendHandshake(cid, receiver, 1, c.commit)) === 'ok') {
              await this.saveGroup(cid, c.group);
              await this.afterEpochChange(cid, c.group, true);
            } else await this.catchUp(cid, g); // another member replaced it first: its commit is in the history
            return;
          }
        }
        await this.afterEpochChange(cid, g, true);
      });
    }
  }

  /** The signature keys (base64) of the external senders this device's group of a conversation names. */
  async externalSenderKeys(cid: string): Promise<string[] | null> {
    return this.queue.run(cid, async () => {
      const g = await this.loadGroup(cid);
      return g ? (await this.engine()).externalSenders(g).map(b64) : null;
    });
  }

  /** The client calls this when the server's `mls.keyPackagesLow` push arrives. */
  onKeyPackagesLow(deviceId: string | null = null): Promise<void> {
    // The push goes to every connection of the wallet: only the device it names acts (null: every
    // device, none of which had a usable package). Never rejects (the next check retries).
    return (async () => {
      if (deviceId !== null && deviceId !== (await this.ensureDevice()).id) return;
      if (!(await this.renewKeyPackages())) await this.uploadKeyPackages();
    })().catch(() => undefined);
  }
}

function safeB64(s: string): Uint8Array | null {
  try {
    return base64ToBytes(s);
  } catch {
    return null;
  }
}
