import type { Migration } from './migrate.js';
import { storedNotAfter } from '../key-package-lifetime.js';

/**
 * The PostgreSQL store's tables: the same content as the embedded store's (src/store/sqlite/schema.js),
 * with PostgreSQL types. Keys and addresses compare bytewise (COLLATE "C"), as in SQLite, whatever the
 * database's locale. Append migrations, never edit one that may have run.
 */
export const STORE_COMPONENT = 'store';

export const STORE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'events, conversations, chats, tokens, nonces, admins, epoch',
    up: `
    CREATE TABLE events (
      pos         bigint   PRIMARY KEY,          -- global commit order (commit_position below)
      cid         text     COLLATE "C" NOT NULL,
      seq         bigint   NOT NULL,
      id          text     COLLATE "C" UNIQUE,
      face        smallint NOT NULL,
      kind        integer  NOT NULL,
      sender      text     COLLATE "C" NOT NULL,
      ts          bigint   NOT NULL,
      received_at bigint   NOT NULL,
      body        text     NOT NULL,
      counts      boolean  NOT NULL,
      only_for    text     COLLATE "C",
      revoked_by  bigint,
      body_bytes  integer  NOT NULL,
      UNIQUE (cid, seq)
    );
    CREATE INDEX events_cid_time ON events (cid, received_at);
    -- the archiver's backlog: face-0 events in pos order, sized without reading bodies
    CREATE INDEX events_archive ON events (face, pos) INCLUDE (body_bytes, ts);

    -- Per-conversation seq counter: raised inside the commit's transaction (a row lock), so seqs are
    -- gap-free whichever process writes; never a sequence (those leave gaps on rollback).
    CREATE TABLE conversations (
      cid          text   COLLATE "C" PRIMARY KEY,
      last_seq     bigint NOT NULL,
      last_post_at bigint NOT NULL
    );
    -- The global commit position: one row, raised by every append transaction and locked by it until its
    -- COMMIT, so positions become visible strictly in order (see docs/architecture.md, "PostgreSQL store").
    CREATE TABLE commit_position (
      singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
      last      bigint  NOT NULL
    );
    INSERT INTO commit_position (last) VALUES (0);

    CREATE TABLE chat_members (
      member        text    COLLATE "C" NOT NULL,
      cid           text    COLLATE "C" NOT NULL,
      peer          text    COLLATE "C",
      last_read_seq bigint  NOT NULL DEFAULT 0,
      muted         boolean NOT NULL DEFAULT false,
      pinned_at     bigint,
      PRIMARY KEY (member, cid)
    );
    CREATE INDEX chat_members_cid ON chat_members (cid);
    CREATE INDEX chat_members_muted ON chat_members (cid) WHERE muted;
    CREATE TABLE hidden (
      member text   COLLATE "C" NOT NULL,
      cid    text   COLLATE "C" NOT NULL,
      seq    bigint NOT NULL,
      PRIMARY KEY (member, cid, seq)
    );
    CREATE TABLE tokens (
      hash       text    COLLATE "C" PRIMARY KEY,
      address    text    COLLATE "C" NOT NULL,
      expires_at bigint  NOT NULL,
      revoked    boolean NOT NULL DEFAULT false
    );
    CREATE TABLE nonces (
      nonce      text    COLLATE "C" PRIMARY KEY,
      expires_at bigint  NOT NULL,
      used       boolean NOT NULL DEFAULT false
    );
    CREATE INDEX nonces_expiry ON nonces (expires_at);
    CREATE TABLE group_admins (
      cid    text COLLATE "C" NOT NULL,
      member text COLLATE "C" NOT NULL,
      PRIMARY KEY (cid, member)
    );
    -- The store's identity (SPEC section 9): random, fixed when the store is created.
    CREATE TABLE store_meta (
      key   text COLLATE "C" PRIMARY KEY,
      value text NOT NULL
    );
    INSERT INTO store_meta (key, value) VALUES ('epoch', replace(gen_random_uuid()::text, '-', ''));
    `,
  },
  {
    version: 2,
    name: 'the operator ban list (addresses that may neither sign in nor send)',
    up: `
    CREATE TABLE bans (
      address    text   COLLATE "C" PRIMARY KEY,
      reason     text   NOT NULL,
      created_at bigint NOT NULL
    );
    `,
  },
  {
    version: 3,
    name: 'the MLS Delivery Service: replay hashes, group epochs (CAS), KeyPackage directory, epoch-authenticator reports',
    up: `
    ALTER TABLE events ADD COLUMN mls_hash text COLLATE "C";
    CREATE UNIQUE INDEX events_mls_hash ON events (cid, mls_hash) WHERE mls_hash IS NOT NULL;
    -- A row appears with a group's first commit (plain INSERT: of two first commits in two processes,
    -- the second meets the unique key, its transaction is retried and then finds epoch 1) and is locked
    -- FOR UPDATE by every transaction that stores a handshake for it.
    CREATE TABLE mls_groups (
      cid                   text   COLLATE "C" PRIMARY KEY,
      epoch                 bigint NOT NULL,
      pending_removal_epoch bigint,
      group_info            text,
      group_info_epoch      bigint,
      updated_at            bigint NOT NULL
    );
    CREATE TABLE mls_devices (
      device_id  text   COLLATE "C" PRIMARY KEY,
      address    text   COLLATE "C" NOT NULL,
      credential text   NOT NULL,
      created_at bigint NOT NULL
    );
    CREATE INDEX mls_devices_address ON mls_devices (address);
    CREATE TABLE mls_key_packages (
      id          bigserial PRIMARY KEY,
      device_id   text      COLLATE "C" NOT NULL REFERENCES mls_devices (device_id) ON DELETE CASCADE,
      package     text      NOT NULL,
      last_resort boolean   NOT NULL DEFAULT false
    );
    CREATE INDEX mls_key_packages_device ON mls_key_packages (device_id, last_resort, id);
    CREATE TABLE mls_epoch_auth (
      cid   text   COLLATE "C" NOT NULL,
      epoch bigint NOT NULL,
      hash  text   NOT NULL,
      PRIMARY KEY (cid, epoch)
    );
    `,
  },
  {
    version: 4,
    name: 'KeyPackage lifetimes: not_after per package (RFC 9420 section 7.2), backfilled from the stored bytes',
    // Rows stored before are backfilled from their own bytes; a row whose bytes cannot be read gets 0
    // (expired: never handed out, deleted at its device's next claim or upload).
    up: async (c) => {
      await c.query('ALTER TABLE mls_key_packages ADD COLUMN not_after bigint NOT NULL DEFAULT 0');
      const rows = (await c.query<{ id: string; package: string }>('SELECT id, package FROM mls_key_packages')).rows;
      for (let i = 0; i < rows.length; i += 1000) {
        const part = rows.slice(i, i + 1000);
        await c.query('UPDATE mls_key_packages k SET not_after = t.n FROM unnest($1::bigint[], $2::bigint[]) AS t(id, n) WHERE k.id = t.id',
          [part.map((r) => r.id), part.map((r) => storedNotAfter(r.package))]);
      }
    },
  },
  {
    version: 5,
    name: 'KeyPackage lifetimes: not_after has no default',
    // The default of version 4 only let the column be added to existing rows. Left in place, an insert
    // that forgot not_after would store a package that is expired at once and never handed out; without
    // it, such an insert fails (SQLite cannot drop a column default without rebuilding the table, and
    // its writer names the column in its one insert).
    up: 'ALTER TABLE mls_key_packages ALTER COLUMN not_after DROP DEFAULT',
  },
];
