// @ts-check
/**
 * Every write of the embedded store, on one connection. It runs on the store's writer thread, so the
 * fsync of a durable commit (synchronous=FULL) never blocks the thread that parses, verifies and pushes;
 * reads use their own connection (WAL lets them run beside the writer).
 */

import { createArchiveState } from '../../archive/sqlite/archive-state.js';

/**
 * @typedef {import('../port.js').NewEvent} NewEvent
 * @typedef {import('../port.js').StoredEvent} StoredEvent
 * @typedef {{ status: 'stored', pos: number, seq: number } | { status: 'duplicate', event: StoredEvent }
 *   | { status: 'refused', code: import('../port.js').MlsRefusal, currentEpoch: number }} WriteOutcome
 * @typedef {{ pos: number, cid: string, seq: number, id: string | null, face: number, kind: number, sender: string,
 *   ts: number, received_at: number, body: string, counts: number, only_for: string | null, revoked_by?: number | null }} EventRow
 */

/**
 * @param {EventRow} r
 * @returns {StoredEvent}
 */
export function toEvent(r) {
  /** @type {StoredEvent} */
  const e = {
    pos: r.pos, cid: r.cid, seq: r.seq, id: r.id, face: /** @type {0 | 1} */ (r.face), kind: r.kind, sender: r.sender, ts: r.ts,
    receivedAt: r.received_at, body: r.body, counts: r.counts === 1, onlyFor: r.only_for,
  };
  if (r.revoked_by !== undefined && r.revoked_by !== null) e.revokedBy = r.revoked_by;
  return e;
}

/**
 * @param {import('better-sqlite3').Database} db a connection prepared by schema.js
 */
export function createWriter(db) {
  /** @type {import('../../archive/sqlite/archive-state.js').ArchiveState | null} */
  let archiveState = null;
  const s = {
    byId: db.prepare('SELECT * FROM events WHERE id = ?'),
    conv: db.prepare('SELECT last_seq, last_post_at FROM conversations WHERE cid = ?'),
    insertEvent: db.prepare(`INSERT INTO events (cid, seq, id, face, kind, sender, ts, received_at, body, counts, only_for, body_bytes, mls_hash)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
    mlsHash: db.prepare('SELECT 1 FROM events WHERE cid = ? AND mls_hash = ?'),
    mlsGroup: db.prepare('SELECT epoch FROM mls_groups WHERE cid = ?'),
    mlsAdvance: db.prepare(`INSERT INTO mls_groups (cid, epoch, updated_at) VALUES (?, ?, ?)
      ON CONFLICT (cid) DO UPDATE SET epoch = excluded.epoch, updated_at = excluded.updated_at`),
    upsertConv: db.prepare(`INSERT INTO conversations (cid, last_seq, last_post_at) VALUES (@cid, @lastSeq, @lastPostAt)
      ON CONFLICT (cid) DO UPDATE SET last_seq = excluded.last_seq, last_post_at = excluded.last_post_at`),
    ensureChat: db.prepare('INSERT OR IGNORE INTO chat_members (user, cid, peer) VALUES (?, ?, ?)'),
    hide: db.prepare('INSERT OR IGNORE INTO hidden (user, cid, seq) VALUES (?, ?, ?)'),
    markRead: db.prepare('UPDATE chat_members SET last_read_seq = MAX(last_read_seq, ?) WHERE user = ? AND cid = ?'),
    readMarker: db.prepare('SELECT last_read_seq FROM chat_members WHERE user = ? AND cid = ?'),
    setMuted: db.prepare('UPDATE chat_members SET muted = ? WHERE user = ? AND cid = ?'),
    setPinned: db.prepare('UPDATE chat_members SET pinned_at = ? WHERE user = ? AND cid = ?'),
    removeChat: db.prepare('DELETE FROM chat_members WHERE user = ? AND cid = ?'),
    addAdmin: db.prepare('INSERT OR IGNORE INTO group_admins (cid, user) VALUES (?, ?)'),
    removeAdmin: db.prepare('DELETE FROM group_admins WHERE cid = ? AND user = ?'),
    putToken: db.prepare('INSERT OR REPLACE INTO tokens (hash, address, expires_at, revoked) VALUES (?, ?, ?, ?)'),
    revokeToken: db.prepare('UPDATE tokens SET revoked = 1 WHERE hash = ?'),
    putNonce: db.prepare('INSERT INTO nonces (nonce, expires_at) VALUES (?, ?)'),
    consumeNonce: db.prepare('UPDATE nonces SET used = 1 WHERE nonce = ? AND used = 0 AND expires_at > ?'),
    pruneNonces: db.prepare('DELETE FROM nonces WHERE expires_at < ?'),
    putBan: db.prepare('INSERT OR REPLACE INTO bans (address, reason, created_at) VALUES (?, ?, ?)'),
    deleteBan: db.prepare('DELETE FROM bans WHERE address = ?'),
    revoke: db.prepare('UPDATE events SET revoked_by = ? WHERE cid = ? AND seq = ? AND revoked_by IS NULL'),
    // the MLS directory (docs/e2ee.md section 5)
    devAddress: db.prepare('SELECT address FROM mls_devices WHERE device_id = ?'),
    devCount: db.prepare('SELECT COUNT(*) AS n FROM mls_devices WHERE address = ?'),
    devInsert: db.prepare('INSERT INTO mls_devices (device_id, address, credential, created_at) VALUES (?, ?, ?, ?)'),
    devDelete: db.prepare('DELETE FROM mls_devices WHERE device_id = ? AND address = ?'),
    devList: db.prepare('SELECT device_id, address FROM mls_devices WHERE address = ? ORDER BY created_at, device_id'),
    // Lifetimes (docs/e2ee.md section 5): `not_after` in seconds; usable while not_after > now + minLeft.
    pkgCount: db.prepare('SELECT COUNT(*) AS n FROM mls_key_packages WHERE device_id = ? AND last_resort = 0'),
    pkgUsableCount: db.prepare('SELECT COUNT(*) AS n FROM mls_key_packages WHERE device_id = ? AND last_resort = 0 AND not_after > ?'),
    pkgHasLast: db.prepare('SELECT 1 FROM mls_key_packages WHERE device_id = ? AND last_resort = 1 AND not_after > ?'),
    pkgInsert: db.prepare('INSERT INTO mls_key_packages (device_id, package, last_resort, not_after) VALUES (?, ?, ?, ?)'),
    pkgDropLast: db.prepare('DELETE FROM mls_key_packages WHERE device_id = ? AND last_resort = 1'),
    pkgDropAll: db.prepare('DELETE FROM mls_key_packages WHERE device_id = ?'),
    pkgDropExpired: db.prepare('DELETE FROM mls_key_packages WHERE device_id = ? AND not_after <= ?'),
    pkgFirst: db.prepare('SELECT id, package FROM mls_key_packages WHERE device_id = ? AND last_resort = 0 AND not_after > ? ORDER BY id LIMIT 1'),
    pkgLast: db.prepare('SELECT package FROM mls_key_packages WHERE device_id = ? AND last_resort = 1 AND not_after > ?'),
    pkgDelete: db.prepare('DELETE FROM mls_key_packages WHERE id = ?'),
    groupEpoch: db.prepare('SELECT epoch FROM mls_groups WHERE cid = ?'),
    pendingRemoval: db.prepare('UPDATE mls_groups SET pending_removal_epoch = @epoch, updated_at = @now WHERE cid = @cid AND epoch = @epoch'),
    groupInfo: db.prepare(`INSERT INTO mls_groups (cid, epoch, group_info, group_info_epoch, updated_at) VALUES (@cid, @epoch, @info, @epoch, @now)
      ON CONFLICT (cid) DO UPDATE SET group_info = excluded.group_info, group_info_epoch = excluded.group_info_epoch, updated_at = excluded.updated_at`),
    authInsert: db.prepare('INSERT OR IGNORE INTO mls_epoch_auth (cid, epoch, hash) VALUES (?, ?, ?)'),
    authGet: db.prepare('SELECT hash FROM mls_epoch_auth WHERE cid = ? AND epoch = ?'),
    metaInsert: db.prepare('INSERT OR IGNORE INTO store_meta (key, value) VALUES (?, ?)'),
    metaGet: db.prepare('SELECT value FROM store_meta WHERE key = ?'),
  };

  /** @param {string} deviceId @param {import('../port.js').MlsAt} at */
  const available = (deviceId, at) => /** @type {{ n: number }} */ (s.pkgUsableCount.get(deviceId, at.now + at.minLeft)).n;
  const mlsUploadTx = db.transaction(
    /**
     * @param {{ deviceId: string, address: string, credential: string, createdAt: number }} d
     * @param {readonly import('../port.js').MlsNewPackage[]} packages @param {import('../port.js').MlsNewPackage | null} lastResort
     * @param {{ maxDevices: number, maxPackages: number }} limits
     * @param {import('../port.js').MlsAt} at
     * @returns {import('../port.js').MlsUploadOutcome}
     */
    (d, packages, lastResort, limits, at) => {
      const owner = /** @type {{ address: string } | undefined} */ (s.devAddress.get(d.deviceId));
      if (owner && owner.address !== d.address) return { status: 'refused', code: 'MLS_TOO_MANY_DEVICES' };
      if (owner) s.pkgDropExpired.run(d.deviceId, at.now);
      if ((owner ? /** @type {{ n: number }} */ (s.pkgCount.get(d.deviceId)).n : 0) + packages.length > limits.maxPackages) return { status: 'refused', code: 'TOO_MANY_PACKAGES' };
      if (!owner) {
        if (/** @type {{ n: number }} */ (s.devCount.get(d.address)).n >= limits.maxDevices) return { status: 'refused', code: 'MLS_TOO_MANY_DEVICES' };
        s.devInsert.run(d.deviceId, d.address, d.credential, d.createdAt);
      }
      for (const p of packages) s.pkgInsert.run(d.deviceId, p.keyPackage, 0, p.notAfter);
      if (lastResort !== null) {
        s.pkgDropLast.run(d.deviceId);
        s.pkgInsert.run(d.deviceId, lastResort.keyPackage, 1, lastResort.notAfter);
      }
      return { status: 'ok', available: available(d.deviceId, at), lastResort: s.pkgHasLast.get(d.deviceId, at.now + at.minLeft) !== undefined };
    });
  const mlsClaimTx = db.transaction(
    /** @param {readonly string[]} addresses @param {import('../port.js').MlsAt} at @returns {import('../port.js').MlsClaimed[]} */
    (addresses, at) => {
      /** @type {import('../port.js').MlsClaimed[]} */
      const out = [];
      const usable = at.now + at.minLeft;
      for (const address of addresses) {
        for (const d of /** @type {{ device_id: string, address: string }[]} */ (s.devList.all(address))) {
          s.pkgDropExpired.run(d.device_id, at.now);
          const one = /** @type {{ id: number, package: string } | undefined} */ (s.pkgFirst.get(d.device_id, usable));
          if (one) {
            s.pkgDelete.run(one.id);
            out.push({ address, deviceId: d.device_id, keyPackage: one.package, lastResort: false, available: available(d.device_id, at) });
            continue;
          }
          const last = /** @type {{ package: string } | undefined} */ (s.pkgLast.get(d.device_id, usable));
          if (last) out.push({ address, deviceId: d.device_id, keyPackage: last.package, lastResort: true, available: 0 });
        }
      }
      return out;
    });

  /**
   * @param {readonly NewEvent[]} events
   * @returns {WriteOutcome[]}
   */
  function appendInTx(events) {
    /** @type {WriteOutcome[]} */
    const outcomes = [];
    /** @type {Map<string, { lastSeq: number, lastPostAt: number }>} */
    const convs = new Map();
    /** @type {Map<string, { epoch: number, dirty: boolean, at: number }>} MLS groups touched by this transaction */
    const groups = new Map();
    /** @type {Set<string>} MLS bytes stored by this transaction, `cid\nhash` */
    const hashes = new Set();
    for (const ev of events) {
      if (ev.id !== null) {
        const existing = /** @type {EventRow | undefined} */ (s.byId.get(ev.id));
        if (existing) {
          outcomes.push({ status: 'duplicate', event: toEvent(existing) });
          continue;
        }
      }
      const mls = ev.mls ?? null;
      if (mls) {
        // docs/e2ee.md section 4, inside the transaction: one thread writes, so read-compare-advance is a CAS.
        let g = groups.get(ev.cid);
        if (!g) {
          const row = /** @type {{ epoch: number } | undefined} */ (s.mlsGroup.get(ev.cid));
          g = { epoch: row?.epoch ?? 0, dirty: false, at: 0 };
          groups.set(ev.cid, g);
        }
        const key = `${ev.cid}\n${mls.hash}`;
        if (hashes.has(key) || s.mlsHash.get(ev.cid, mls.hash)) {
          outcomes.push({ status: 'refused', code: 'MLS_REPLAY', currentEpoch: g.epoch });
          continue;
        }
        if (mls.role !== 'application') {
          if (mls.epoch !== g.epoch) {
            outcomes.push({ status: 'refused', code: 'MLS_STALE_EPOCH', currentEpoch: g.epoch });
            continue;
          }
          if (mls.role === 'commit') {
            g.epoch++;
            g.dirty = true;
            g.at = ev.receivedAt;
          }
        }
        hashes.add(key);
      }
      let conv = convs.get(ev.cid);
      if (!conv) {
        const row = /** @type {{ last_seq: number, last_post_at: number } | undefined} */ (s.conv.get(ev.cid));
        conv = { lastSeq: row?.last_seq ?? 0, lastPostAt: row?.last_post_at ?? 0 };
        convs.set(ev.cid, conv);
      }
      const seq = conv.lastSeq + 1;
      conv.lastSeq = seq;
      if (ev.counts) conv.lastPostAt = Math.max(conv.lastPostAt, ev.receivedAt);
      const info = s.insertEvent.run(ev.cid, seq, ev.id, ev.face, ev.kind, ev.sender, ev.ts, ev.receivedAt, ev.body, ev.counts ? 1 : 0,
        ev.onlyFor, Buffer.byteLength(ev.body), mls ? mls.hash : null);
      if (seq === 1 && ev.participants) {
        const [a, b] = ev.participants;
        s.ensureChat.run(a, ev.cid, b);
        if (b !== a) s.ensureChat.run(b, ev.cid, a);
      }
      if (ev.hides && ev.onlyFor !== null) s.hide.run(ev.onlyFor, ev.cid, ev.hides.seq);
      if (ev.revokes) s.revoke.run(seq, ev.cid, ev.revokes.seq);
      // Only what the caller does not have: the event itself stays on the caller's side of the thread
      // boundary (sqlite-store.ts completes it), so the body is not copied back per message.
      outcomes.push({ status: 'stored', pos: Number(info.lastInsertRowid), seq });
    }
    for (const [cid, c] of convs) s.upsertConv.run({ cid, lastSeq: c.lastSeq, lastPostAt: c.lastPostAt });
    for (const [cid, g] of groups) if (g.dirty) s.mlsAdvance.run(cid, g.epoch, g.at);
    return outcomes;
  }
  const appendTx = db.transaction(appendInTx);

  return {
    /** @param {readonly NewEvent[]} events */
    // BEGIN IMMEDIATE: the transaction reads (duplicate check, conversation) before it writes, and a
    // deferred one would then fail with SQLITE_BUSY, beyond any busy timeout, whenever another
    // connection (the archiver's) committed in between. Taking the write lock first waits instead.
    appendEvents: (events) => (events.length === 0 ? [] : appendTx.immediate(events)),
    /**
     * Several appendEvents batches in one transaction (one fsync), each with its own outcomes.
     * @param {readonly (readonly NewEvent[])[]} batches
     * @returns {WriteOutcome[][]}
     */
    appendBatches: (batches) => {
      if (batches.length === 1) return [batches[0]?.length ? appendTx.immediate(/** @type {readonly NewEvent[]} */ (batches[0])) : []];
      const all = appendTx.immediate(batches.flat());
      let at = 0;
      return batches.map((b) => all.slice(at, (at += b.length)));
    },
    /** @param {string} user @param {string} cid @param {string | null} peer */
    ensureChat: (user, cid, peer) => { s.ensureChat.run(user, cid, peer); },
    /** @param {string} user @param {string} cid @param {number} seq @returns {number} */
    markRead: (user, cid, seq) => {
      s.markRead.run(seq, user, cid);
      const row = /** @type {{ last_read_seq: number } | undefined} */ (s.readMarker.get(user, cid));
      return row?.last_read_seq ?? 0;
    },
    /** @param {string} user @param {string} cid @param {boolean} muted */
    setMuted: (user, cid, muted) => { s.setMuted.run(muted ? 1 : 0, user, cid); },
    /** @param {string} user @param {string} cid @param {number | null} pinnedAt */
    setPinned: (user, cid, pinnedAt) => { s.setPinned.run(pinnedAt, user, cid); },
    /** @param {string} user @param {string} cid */
    removeChat: (user, cid) => { s.removeChat.run(user, cid); },
    /** @param {string} cid @param {string} user @param {boolean} admin */
    setAdmin: (cid, user, admin) => { (admin ? s.addAdmin : s.removeAdmin).run(cid, user); },
    /** @param {string} hash @param {{ address: string, expiresAt: number, revoked: boolean }} r */
    putToken: (hash, r) => { s.putToken.run(hash, r.address, r.expiresAt, r.revoked ? 1 : 0); },
    /** @param {string} hash */
    revokeToken: (hash) => { s.revokeToken.run(hash); },
    /** @param {string} nonce @param {number} expiresAt */
    putNonce: (nonce, expiresAt) => { s.putNonce.run(nonce, expiresAt); },
    /** @param {string} nonce @param {number} now @returns {boolean} */
    consumeNonce: (nonce, now) => {
      const ok = s.consumeNonce.run(nonce, now).changes === 1;
      s.pruneNonces.run(now - 86_400_000);
      return ok;
    },
    mlsUpload: /** @type {typeof mlsUploadTx} */ ((d, packages, lastResort, limits, at) => mlsUploadTx.immediate(d, packages, lastResort, limits, at)),
    mlsClaim: /** @param {readonly string[]} addresses @param {import('../port.js').MlsAt} at */ (addresses, at) => mlsClaimTx.immediate(addresses, at),
    /** @param {string} address @param {string} deviceId @returns {boolean} */
    mlsDeleteDevice: (address, deviceId) => db.transaction(() => {
      if (s.devDelete.run(deviceId, address).changes !== 1) return false;
      s.pkgDropAll.run(deviceId);
      return true;
    }).immediate(),
    /** @param {string} cid @param {number} epoch @param {string} info @param {number} now */
    mlsPutGroupInfo: (cid, epoch, info, now) => db.transaction(() => {
      const row = /** @type {{ epoch: number } | undefined} */ (s.groupEpoch.get(cid));
      const currentEpoch = row?.epoch ?? 0;
      if (epoch !== currentEpoch) return { stored: false, currentEpoch };
      s.groupInfo.run({ cid, info, epoch, now });
      return { stored: true, currentEpoch };
    }).immediate(),
    /** @param {string} cid @param {number} epoch @param {number} now @returns {boolean} */
    mlsSetPendingRemoval: (cid, epoch, now) => s.pendingRemoval.run({ cid, epoch, now }).changes === 1,
    /** @param {string} cid @param {number} epoch @param {string} hash @returns {string} */
    mlsEpochAuth: (cid, epoch, hash) => {
      s.authInsert.run(cid, epoch, hash);
      return /** @type {{ hash: string }} */ (s.authGet.get(cid, epoch)).hash;
    },
    /** @param {string} key @param {string} value @returns {string} */
    metaGetOrSet: (key, value) => {
      s.metaInsert.run(key, value);
      return /** @type {{ value: string }} */ (s.metaGet.get(key)).value;
    },
    /** @param {{ address: string, reason: string, createdAt: number }} b */
    putBan: (b) => { s.putBan.run(b.address, b.reason, b.createdAt); },
    /** @param {string} address @returns {boolean} */
    deleteBan: (address) => s.deleteBan.run(address).changes === 1,
    /**
     * The archive's state reads and fenced writes (archive-state.js), queued with the commits on this
     * connection. Its statements are prepared at the first call: the archive creates its tables after
     * the store opened.
     * @param {import('../../archive/sqlite/archive-state.js').ArchiveStateOp} op
     * @param {unknown[]} args
     * @returns {unknown}
     */
    archive: (op, args) => {
      archiveState ??= createArchiveState(db);
      return /** @type {(...a: unknown[]) => unknown} */ (archiveState[op])(...args);
    },
  };
}

/** @typedef {ReturnType<typeof createWriter>} Writer */
/** @typedef {keyof Writer} WriteOp */
