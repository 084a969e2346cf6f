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
];
