// @ts-check
/**
 * The archive's state in the embedded store's file (the `archive_*` tables): every fenced write and the
 * few reads of bundle records and the lease, on one connection. Plain JavaScript because the store's
 * writer thread runs it (writer-core.js `archive`): there the archive's writes queue with the store's
 * commits on the one connection that writes, instead of contending for SQLite's write lock from a
 * second connection (which, with the writer committing back to back at 10,000 msg/s, found the lock
 * free too rarely and failed with "database is locked"), and the main thread runs no SQLite for the
 * archive at all. The same functions serve a connection of its own where there is no writer thread
 * (SqliteArchiveStore without one).
 *
 * Errors a caller must tell apart carry a `name`: FencedError (the lease's token moved on) and
 * ChainConflictError (the chain rules); the archive store turns them back into its own classes.
 */

const LEASE = 'archiver';

/** @param {string} name @param {string} message */
const named = (name, message) => Object.assign(new Error(message), { name });

/**
 * @typedef {{ seq: number, status: string, prev_tx: string | null, first_pos: number, last_pos: number, count: number,
 *   first_ts: number, last_ts: number, bytes: number, sha256: string, file: string, cut_at: number, txid: string | null,
 *   tx_json: string | null, upload_state: string | null, accepted_at: number | null, confirmations: number,
 *   confirmed_at: number | null, reposts: number, replaced_txids: string }} BundleRow
 * @typedef {{ seq: number, prevTx: string | null, firstPos: number, lastPos: number, count: number, firstTs: number,
 *   lastTs: number, bytes: number, sha256: string, file: string, cutAt: number }} NewBundleRow
 */

/**
 * @param {import('better-sqlite3').Database} db a connection on a file whose archive tables exist
 */
export function createArchiveState(db) {
  const s = {
    latest: db.prepare('SELECT * FROM archive_bundles ORDER BY seq DESC LIMIT 1'),
    get: db.prepare('SELECT * FROM archive_bundles WHERE seq = ?'),
    head: db.prepare(`SELECT * FROM archive_bundles WHERE status = 'confirmed' ORDER BY seq DESC LIMIT 1`),
    countBetween: db.prepare('SELECT COUNT(*) AS n FROM events WHERE face = 0 AND pos > ? AND pos < ?'),
    insert: db.prepare(`INSERT INTO archive_bundles (seq, status, prev_tx, first_pos, last_pos, count, first_ts, last_ts,
      bytes, sha256, file, cut_at) VALUES (@seq, 'cut', @prevTx, @firstPos, @lastPos, @count, @firstTs, @lastTs,
      @bytes, @sha256, @file, @cutAt)`),
    adopt: db.prepare(`UPDATE archive_bundles SET status = 'confirmed', txid = ?, accepted_at = ?, confirmed_at = ? WHERE seq = ?`),
    sign: db.prepare(`UPDATE archive_bundles SET status = 'signed', txid = ?, tx_json = ? WHERE seq = ? AND status = 'cut'`),
    resign: db.prepare(`UPDATE archive_bundles SET status = 'signed', txid = @txid, tx_json = @txJson, upload_state = NULL,
      replaced_txids = json_insert(replaced_txids, '$[#]', @oldTxid)
      WHERE seq = @seq AND txid = @oldTxid AND status IN ('signed', 'uploading', 'dropped')`),
    upload: db.prepare(`UPDATE archive_bundles SET status = 'uploading', upload_state = ?
      WHERE seq = ? AND status IN ('signed', 'uploading', 'dropped')`),
    toPending: db.prepare(`UPDATE archive_bundles SET status = 'pending', accepted_at = coalesce(accepted_at, ?)
      WHERE seq = ? AND status IN ('signed', 'uploading')`),
    confirmations: db.prepare(`UPDATE archive_bundles SET confirmations = ? WHERE seq = ? AND status = 'pending'`),
    drop: db.prepare(`UPDATE archive_bundles SET status = 'dropped', reposts = reposts + 1, upload_state = NULL, confirmations = 0
      WHERE seq = ? AND status = 'pending'`),
    confirm: db.prepare(`UPDATE archive_bundles SET status = 'confirmed', confirmations = ?, confirmed_at = ?
      WHERE seq = ? AND status = 'pending'`),
    takeLease: db.prepare(`INSERT INTO archive_lease
      (name, holder, expires_at, token) VALUES (@name, @holder, @expiresAt, 1)
      ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at,
        token = CASE WHEN archive_lease.holder = excluded.holder AND archive_lease.expires_at > 0 THEN archive_lease.token
                     ELSE archive_lease.token + 1 END
      WHERE (archive_lease.holder = excluded.holder AND archive_lease.expires_at > 0) OR archive_lease.expires_at <= @now
      RETURNING token`),
    dropLease: db.prepare('UPDATE archive_lease SET expires_at = 0 WHERE name = ? AND holder = ?'),
    getLease: db.prepare('SELECT holder, expires_at, token FROM archive_lease WHERE name = ?'),
  };
  const row = (/** @type {unknown} */ r) => /** @type {BundleRow | undefined} */ (r);

  /**
   * Runs `fn` in a write transaction after checking that `token` is the lease's current fencing token.
   * @template T
   * @param {number} token
   * @param {() => T} fn
   * @returns {T}
   */
  const fenced = (token, fn) => db.transaction(() => {
    const lease = /** @type {{ holder: string, expires_at: number, token: number } | undefined} */ (s.getLease.get(LEASE));
    if (!lease || lease.token !== token || lease.expires_at <= 0) {
      throw named('FencedError', `archive write with fencing token ${token} refused: the lease's token is ${lease && lease.expires_at > 0 ? lease.token : 'none (released)'}`);
    }
    return fn();
  }).immediate();

  /** The chain rules of insertBundle; runs inside a write transaction. @param {NewBundleRow} b */
  const insertChecked = (b) => {
    const last = row(s.latest.get());
    const expectSeq = (last?.seq ?? 0) + 1;
    if (b.seq !== expectSeq) throw named('ChainConflictError', `bundle ${b.seq} cannot follow bundle ${last?.seq ?? 0}`);
    if (last && last.status !== 'confirmed') throw named('ChainConflictError', `bundle ${last.seq} is not confirmed yet`);
    if ((last?.txid ?? null) !== b.prevTx) throw named('ChainConflictError', `bundle ${b.seq} must link to ${last?.txid ?? 'nothing'}`);
    if (last && b.firstPos <= last.last_pos) throw named('ChainConflictError', `bundle ${b.seq} overlaps bundle ${last.seq}`);
    const between = /** @type {{ n: number } | undefined} */ (s.countBetween.get(last?.last_pos ?? 0, b.firstPos));
    if ((between?.n ?? 0) > 0) throw named('ChainConflictError', `bundle ${b.seq} would leave events unarchived`);
    s.insert.run(b);
  };

  return {
    /** @returns {BundleRow | null} */
    latestBundle: () => row(s.latest.get()) ?? null,
    /** @param {number} seq @returns {BundleRow | null} */
    getBundle: (seq) => row(s.get.get(seq)) ?? null,
    /** @returns {BundleRow | null} */
    head: () => row(s.head.get()) ?? null,
    /** @returns {{ holder: string, expiresAt: number, token: number } | null} */
    lease: () => {
      const r = /** @type {{ holder: string, expires_at: number, token: number } | undefined} */ (s.getLease.get(LEASE));
      return r && r.expires_at > 0 ? { holder: r.holder, expiresAt: r.expires_at, token: r.token } : null;
    },
    /** @param {NewBundleRow} b @param {number} token @returns {BundleRow} */
    insertBundle: (b, token) => {
      fenced(token, () => insertChecked(b));
      return /** @type {BundleRow} */ (row(s.get.get(b.seq)));
    },
    /** @param {NewBundleRow} b @param {string} txid @param {number} at @param {number} token @returns {BundleRow} */
    adoptBundle: (b, txid, at, token) => {
      fenced(token, () => {
        if (row(s.get.get(b.seq))?.txid === txid) return;
        insertChecked(b);
        s.adopt.run(txid, at, at, b.seq);
      });
      return /** @type {BundleRow} */ (row(s.get.get(b.seq)));
    },
    /** @param {number} seq @param {string} txid @param {string} txJson @param {number} token */
    markSigned: (seq, txid, txJson, token) => fenced(token, () => {
      if (s.sign.run(txid, txJson, seq).changes === 1) return;
      const b = row(s.get.get(seq));
      if (b?.txid === txid) return;
      throw named('ChainConflictError', `bundle ${seq} is not waiting to be signed (status ${b?.status ?? 'missing'})`);
    }),
    /** @param {number} seq @param {string} oldTxid @param {string} txid @param {string} txJson @param {number} token */
    resign: (seq, oldTxid, txid, txJson, token) => fenced(token, () => {
      if (s.resign.run({ seq, oldTxid, txid, txJson }).changes === 1) return;
      const b = row(s.get.get(seq));
      throw named('ChainConflictError', `bundle ${seq} cannot be re-signed: its transaction is ${b?.txid ?? 'none'} (status ${b?.status ?? 'missing'}), not ${oldTxid}`);
    }),
    /** @param {number} seq @param {string} state @param {number} token */
    saveUploadState: (seq, state, token) => fenced(token, () => {
      if (s.upload.run(state, seq).changes !== 1) throw named('ChainConflictError', `bundle ${seq} is not signed, uploading or dropped`);
    }),
    /** @param {number} seq @param {number} at @param {number} token */
    markPending: (seq, at, token) => fenced(token, () => {
      if (s.toPending.run(at, seq).changes === 1) return;
      const status = row(s.get.get(seq))?.status;
      if (status === 'pending' || status === 'confirmed') return;
      throw named('ChainConflictError', `bundle ${seq} is not signed or uploading (status ${status ?? 'missing'})`);
    }),
    /** @param {number} seq @param {number} confirmations @param {number} token */
    saveConfirmations: (seq, confirmations, token) => fenced(token, () => {
      if (s.confirmations.run(confirmations, seq).changes !== 1) throw named('ChainConflictError', `bundle ${seq} is not pending`);
    }),
    /** @param {number} seq @param {number} token */
    markDropped: (seq, token) => fenced(token, () => {
      if (s.drop.run(seq).changes !== 1) throw named('ChainConflictError', `bundle ${seq} is not pending`);
    }),
    /** @param {number} seq @param {number} confirmations @param {number} at @param {number} token */
    markConfirmed: (seq, confirmations, at, token) => fenced(token, () => {
      if (s.confirm.run(confirmations, at, seq).changes === 1) return;
      const status = row(s.get.get(seq))?.status;
      if (status === 'confirmed') return;
      throw named('ChainConflictError', `bundle ${seq} is not pending (status ${status ?? 'missing'})`);
    }),
    /** @param {string} holder @param {number} now @param {number} ttlMs @returns {number | null} */
    acquireLease: (holder, now, ttlMs) => {
      const r = /** @type {{ token: number } | undefined} */ (s.takeLease.get({ name: LEASE, holder, expiresAt: now + ttlMs, now }));
      return r?.token ?? null;
    },
    /** @param {string} holder */
    releaseLease: (holder) => { s.dropLease.run(LEASE, holder); },
  };
}

/** @typedef {ReturnType<typeof createArchiveState>} ArchiveState */
/** @typedef {keyof ArchiveState} ArchiveStateOp */
