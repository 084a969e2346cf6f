import type { Migration } from '../../store/postgres/migrate.js';

/**
 * The archive's tables in PostgreSQL, versioned on their own (component `archive` in schema_migrations)
 * beside the store's, in the same database: the archiver reads the store's `events` by `pos` (the
 * `events_archive` index) and owns these. Append migrations, never edit one that may have run.
 */
export const ARCHIVE_COMPONENT = 'archive';

export const ARCHIVE_PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'archive bundles with confirmation states, the fenced archive lease',
    up: `
    CREATE TABLE archive_bundles (
      seq            bigint  PRIMARY KEY,
      status         text    NOT NULL CHECK (status IN ('cut', 'signed', 'uploading', 'pending', 'dropped', 'confirmed')),
      prev_tx        text    COLLATE "C",
      first_pos      bigint  NOT NULL,
      last_pos       bigint  NOT NULL,
      count          integer NOT NULL,
      first_ts       bigint  NOT NULL,
      last_ts        bigint  NOT NULL,
      bytes          bigint  NOT NULL,
      sha256         text    NOT NULL,
      file           text    NOT NULL,
      cut_at         bigint  NOT NULL,
      txid           text    COLLATE "C" UNIQUE,
      tx_json        text,
      upload_state   text,
      accepted_at    bigint,
      confirmations  integer NOT NULL DEFAULT 0,
      confirmed_at   bigint,
      reposts        integer NOT NULL DEFAULT 0,
      replaced_txids text[]  NOT NULL DEFAULT '{}'
    );
    -- One row per lease; never deleted (a release sets expires_at to 0), so the token only grows.
    CREATE TABLE archive_lease (
      name       text   PRIMARY KEY,
      holder     text   NOT NULL,
      expires_at bigint NOT NULL,
      token      bigint NOT NULL
    );
    `,
  },
];
