// @ts-check
/**
 * Schema of the embedded store; `user_version` records how many migrations ran. Append new migrations,
 * never edit an applied one. Plain JavaScript because the writer thread loads it (Node 20 cannot start
 * a worker from TypeScript). A migration is SQL, or a function given the connection (run in the same
 * transaction as the version bump).
 */
import { storedNotAfter } from '../key-package-lifetime.js';

/** @typedef {string | ((db: import('better-sqlite3').Database) => void)} Migration */

/** @type {readonly Migration[]} */
export const MIGRATIONS = [
  `
  CREATE TABLE events (
    pos         INTEGER PRIMARY KEY,          -- global commit order
    cid         TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    id          TEXT    UNIQUE,
    face        INTEGER NOT NULL,
    kind        INTEGER NOT NULL,
    sender      TEXT    NOT NULL,
    ts          INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    counts      INTEGER NOT NULL,
    only_for    TEXT,
    UNIQUE (cid, seq)
  );
  CREATE TABLE conversations (
    cid          TEXT PRIMARY KEY,
    last_seq     INTEGER NOT NULL,
    last_post_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE chat_members (
    user          TEXT    NOT NULL,
    cid           TEXT    NOT NULL,
    peer          TEXT,
    last_read_seq INTEGER NOT NULL DEFAULT 0,
    muted         INTEGER NOT NULL DEFAULT 0,
    pinned_at     INTEGER,
    PRIMARY KEY (user, cid)
  ) WITHOUT ROWID;
  CREATE TABLE hidden (
    user TEXT    NOT NULL,
    cid  TEXT    NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (user, cid, seq)
  ) WITHOUT ROWID;
  CREATE TABLE tokens (
    hash       TEXT PRIMARY KEY,
    address    TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked    INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE TABLE nonces (
    nonce      TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    used       INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  `,
  `
  CREATE TABLE group_admins (
    cid  TEXT NOT NULL,
    user TEXT NOT NULL,
    PRIMARY KEY (cid, user)
  ) WITHOUT ROWID;
  CREATE INDEX chat_members_muted ON chat_members (cid) WHERE muted = 1;
  `,
  // 2: the MsgPack face. A revoke for everyone marks its target (the row stays); time-range queries by
  // conversation. (Group admins: migration 1's group_admins, shared by both faces.)
  `
  ALTER TABLE events ADD COLUMN revoked_by INTEGER;
  CREATE INDEX events_cid_time ON events (cid, received_at);
  `,
  // 3: the archiver sizes its backlog from this covering index instead of reading every new body
  // (it did, every poll, on the main thread: ~45 MB per 10 s at full load, and a latency spike each time).
  `
  ALTER TABLE events ADD COLUMN body_bytes INTEGER;
  UPDATE events SET body_bytes = length(CAST(body AS BLOB));
  CREATE INDEX events_archive ON events (face, pos, body_bytes, ts);
  `,
  // 4: the store's identity (SPEC section 9): a random epoch, fixed when the store is created (or, for a
  // file made before this migration, when it first opens with it). A store rebuilt from the archive gets
  // a new one, so clients know their cursors mean nothing there.
  `
  CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO store_meta (key, value) VALUES ('epoch', lower(hex(randomblob(16))));
  `,
  // 5: the operator's ban list (addresses that may neither sign in nor send).
  `
  CREATE TABLE IF NOT EXISTS bans (
    address    TEXT PRIMARY KEY,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 6: the MLS Delivery Service (docs/e2ee.md). events.mls_hash: SHA-256 of an MLS message's bytes, unique
  // per conversation (replays). mls_groups: each group's epoch, advanced by the commit transaction
  // (compare-and-set), the latest GroupInfo, and the epoch of a removal the proxy proposed that no member
  // committed yet. The KeyPackage directory: devices, their packages (single use; one last resort kept),
  // and the first epoch-authenticator hash reported per epoch (fork detection).
  `
  ALTER TABLE events ADD COLUMN mls_hash TEXT;
  CREATE UNIQUE INDEX events_mls_hash ON events (cid, mls_hash) WHERE mls_hash IS NOT NULL;
  CREATE TABLE mls_groups (
    cid                   TEXT PRIMARY KEY,
    epoch                 INTEGER NOT NULL,
    pending_removal_epoch INTEGER,
    group_info            TEXT,
    group_info_epoch      INTEGER,
    updated_at            INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE TABLE mls_devices (
    device_id     TEXT PRIMARY KEY,
    address       TEXT    NOT NULL,
    credential    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
  ) WITHOUT ROWID;
  CREATE INDEX mls_devices_address ON mls_devices (address);
  CREATE TABLE mls_key_packages (
    id          INTEGER PRIMARY KEY,
    device_id   TEXT    NOT NULL,
    package     TEXT    NOT NULL,
    last_resort INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX mls_key_packages_device ON mls_key_packages (device_id, last_resort, id);
  CREATE TABLE mls_epoch_auth (
    cid   TEXT    NOT NULL,
    epoch INTEGER NOT NULL,
    hash  TEXT    NOT NULL,
    PRIMARY KEY (cid, epoch)
  ) WITHOUT ROWID;
  `,
  // 7: KeyPackage lifetimes (RFC 9420 section 7.2; docs/e2ee.md section 5): each package's leaf-node
  // not_after, in seconds, so a claim hands out only packages with time left and deletes expired ones.
  // Rows stored before are backfilled from their own bytes; a row whose bytes cannot be read gets 0
  // (expired: never handed out, deleted at its device's next claim or upload).
  (db) => {
    db.exec('ALTER TABLE mls_key_packages ADD COLUMN not_after INTEGER NOT NULL DEFAULT 0');
    const set = db.prepare('UPDATE mls_key_packages SET not_after = ? WHERE id = ?');
    for (const r of /** @type {{ id: number, package: string }[]} */ (db.prepare('SELECT id, package FROM mls_key_packages').all())) {
      set.run(storedNotAfter(r.package), r.id);
    }
  },
];

/**
 * Opens a connection with the store's pragmas and brings the schema up to date.
 * @param {import('better-sqlite3').Database} db
 * @param {'FULL' | 'NORMAL'} synchronous
 */
export function prepareConnection(db, synchronous) {
  // 2 KiB pages for a new database (SQLite's default is 4 KiB; an existing file keeps its own, as
  // page_size only applies before the first table). A durable commit writes every page it touched to
  // the WAL in full, and a small commit touches about eight: per conversation a leaf of the (cid, seq)
  // and (cid, received_at) indexes and of conversations, plus the tails of events, of the id index and
  // of events_archive. Measured with 250 conversations, 2 events per commit: 31.9 -> 19.4 KiB of WAL
  // per event, the writer's CPU unchanged; 1 KiB pages gave 12.5 KiB but 2.5x the writer's CPU.
  db.pragma('page_size = 2048');
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma('busy_timeout = 5000');
  // Up to 16 MiB of pages per connection (SQLite's default is 2 MiB): the message-id and conversation
  // indexes take random inserts, and once they outgrow the cache every commit reads pages back first
  // (measured: 100,000 events, writer alone, 7.3k -> 8.8k events/s against the default). Not more: a
  // commit whose b-tree split swapped page numbers scans the cache's whole hash table at its end
  // (SQLite's balance_nonroot swaps through the locking page's number, docs/benchmarks.md, fourth pass),
  // so a small commit pays for the cache's width. bench-commit at 1,000/s, three runs: the writer's CPU
  // per event 307-354 us at 64 MiB, 220-264 us at 16 MiB; at saturation 20.0k-20.8k against 18.6k-24.0k
  // events/s. Allocated only as used.
  db.pragma('cache_size = -16384');
  const version = /** @type {number} */ (db.pragma('user_version', { simple: true }));
  for (let v = version; v < MIGRATIONS.length; v++) {
    db.transaction(() => {
      const m = /** @type {Migration} */ (MIGRATIONS[v]);
      if (typeof m === 'string') db.exec(m);
      else m(db);
      db.pragma(`user_version = ${v + 1}`);
    })();
  }
}
