/**
 * Tables of the archive in the embedded store's file. Versioned on their own (`archive_schema`), not in
 * the store's `user_version`: the archive adapter opens the file with its own connection and migrates
 * only what it owns, so store migrations added on other branches never collide with these.
 */
export const ARCHIVE_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE archive_bundles (
    seq          INTEGER PRIMARY KEY,
    status       TEXT    NOT NULL CHECK (status IN ('cut', 'signed', 'uploading', 'accepted')),
    prev_tx      TEXT,
    first_pos    INTEGER NOT NULL,
    last_pos     INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    first_ts     INTEGER NOT NULL,
    last_ts      INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    sha256       TEXT    NOT NULL,
    file         TEXT    NOT NULL,
    cut_at       INTEGER NOT NULL,
    txid         TEXT    UNIQUE,
    tx_json      TEXT,
    upload_state TEXT,
    accepted_at  INTEGER
  );
  CREATE TABLE archive_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT    NOT NULL,
    expires_at INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 2: confirmation states (pending, dropped, confirmed replace accepted), re-sign history, fencing token.
  // SQLite cannot change a CHECK constraint in place: the table is rebuilt. Bundles accepted under
  // version 1 were mined on the embedded gateway or imported from a chain: they become confirmed.
  `
  CREATE TABLE archive_bundles_v2 (
    seq            INTEGER PRIMARY KEY,
    status         TEXT    NOT NULL CHECK (status IN ('cut', 'signed', 'uploading', 'pending', 'dropped', 'confirmed')),
    prev_tx        TEXT,
    first_pos      INTEGER NOT NULL,
    last_pos       INTEGER NOT NULL,
    count          INTEGER NOT NULL,
    first_ts       INTEGER NOT NULL,
    last_ts        INTEGER NOT NULL,
    bytes          INTEGER NOT NULL,
    sha256         TEXT    NOT NULL,
    file           TEXT    NOT NULL,
    cut_at         INTEGER NOT NULL,
    txid           TEXT    UNIQUE,
    tx_json        TEXT,
    upload_state   TEXT,
    accepted_at    INTEGER,
    confirmations  INTEGER NOT NULL DEFAULT 0,
    confirmed_at   INTEGER,
    reposts        INTEGER NOT NULL DEFAULT 0,
    replaced_txids TEXT    NOT NULL DEFAULT '[]'
  );
  INSERT INTO archive_bundles_v2 (seq, status, prev_tx, first_pos, last_pos, count, first_ts, last_ts, bytes, sha256, file,
    cut_at, txid, tx_json, upload_state, accepted_at, confirmed_at)
  SELECT seq, CASE status WHEN 'accepted' THEN 'confirmed' ELSE status END, prev_tx, first_pos, last_pos, count, first_ts,
    last_ts, bytes, sha256, file, cut_at, txid, tx_json, upload_state, accepted_at,
    CASE status WHEN 'accepted' THEN accepted_at END
  FROM archive_bundles;
  DROP TABLE archive_bundles;
  ALTER TABLE archive_bundles_v2 RENAME TO archive_bundles;
  ALTER TABLE archive_lease ADD COLUMN token INTEGER NOT NULL DEFAULT 1;
  `,
];
