/**
 * Which PostgreSQL client for the store: node-postgres (`pg`) or Postgres.js (`postgres`), measured on
 * the store's own write workload. Each round is one transaction that appends a batch of small events
 * across several conversations, each conversation's seq taken from its counter row
 * (INSERT … ON CONFLICT DO UPDATE … RETURNING), as the PostgreSQL store does.
 *
 *   npx tsx scripts/bench-pg-clients.ts [--events 20000] [--batch 256] [--convs 64] [--writers 1]
 *
 * Needs a PostgreSQL server (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres); it
 * creates a scratch database and drops it after. Three ways of writing a batch:
 *   - serial:    one statement per event, each awaited before the next (one round trip each)
 *   - pipelined: one statement per event, all sent without waiting (pg: `pipeline: true`; Postgres.js
 *                pipelines by itself inside sql.begin)
 *   - bulk:      two statements per batch: the counters, then every event through unnest() arrays
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import postgres from 'postgres';
import { numericArgs } from './bench-server.js';

const num = numericArgs();
const opts = { events: num('events', 20000), batch: num('batch', 256), convs: num('convs', 64), writers: num('writers', 1) };
const base = process.env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const dbName = `bench_clients_${randomBytes(4).toString('hex')}`;
const url = new URL(base);
url.pathname = `/${dbName}`;

const SCHEMA = `
  CREATE TABLE conversations (cid text PRIMARY KEY, last_seq bigint NOT NULL, last_post_at bigint NOT NULL);
  CREATE TABLE events (pos bigserial PRIMARY KEY, cid text NOT NULL, seq bigint NOT NULL, id text UNIQUE,
    face int NOT NULL, kind int NOT NULL, sender text NOT NULL, ts bigint NOT NULL, received_at bigint NOT NULL,
    body text NOT NULL, counts boolean NOT NULL, only_for text, UNIQUE (cid, seq));`;

const ONE = `WITH c AS (INSERT INTO conversations (cid, last_seq, last_post_at) VALUES ($1, 1, $5)
    ON CONFLICT (cid) DO UPDATE SET last_seq = conversations.last_seq + 1 RETURNING last_seq)
  INSERT INTO events (cid, seq, id, face, kind, sender, ts, received_at, body, counts)
  SELECT $1, c.last_seq, $2, 0, 1, $3, $4, $5, $6, true FROM c RETURNING pos, seq`;
const COUNTERS = `INSERT INTO conversations (cid, last_seq, last_post_at)
  SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[])
  ON CONFLICT (cid) DO UPDATE SET last_seq = conversations.last_seq + excluded.last_seq RETURNING cid, last_seq`;
const BULK = `INSERT INTO events (cid, seq, id, face, kind, sender, ts, received_at, body, counts)
  SELECT cid, seq, id, 0, 1, sender, ts, ts, body, true
  FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[]) AS u(cid, seq, id, sender, ts, body)
  RETURNING pos, seq`;

interface Ev { cid: string; id: string; sender: string; ts: number; body: string }
let counter = 0;
function batch(): Ev[] {
  const out: Ev[] = [];
  for (let i = 0; i < opts.batch; i++) {
    const n = counter++;
    out.push({
      cid: `dm:0x${(n % opts.convs).toString(16).padStart(40, '0')}:0x${'f'.repeat(40)}`,
      id: `0x${n.toString(16).padStart(64, '0')}`, sender: `0x${'a'.repeat(40)}`, ts: Date.now(),
      body: JSON.stringify({ type: 1, content: `message ${n} ${'x'.repeat(120)}` }),
    });
  }
  return out;
}

/** The counters of a batch: per conversation, how many events and the newest time. */
function counts(evs: Ev[]): { cids: string[]; ns: number[]; ats: number[] } {
  const m = new Map<string, { n: number; at: number }>();
  for (const e of evs) {
    const c = m.get(e.cid) ?? { n: 0, at: 0 };
    c.n++;
    c.at = Math.max(c.at, e.ts);
    m.set(e.cid, c);
  }
  return { cids: [...m.keys()], ns: [...m.values()].map((c) => c.n), ats: [...m.values()].map((c) => c.at) };
}

function bulkArgs(evs: Ev[], rows: { cid: string; last_seq: string | number }[]): unknown[] {
  const next = new Map<string, number>();
  const per = counts(evs);
  for (const r of rows) next.set(r.cid, Number(r.last_seq) - (per.ns[per.cids.indexOf(r.cid)] ?? 0));
  const seqs = evs.map((e) => {
    const s = (next.get(e.cid) ?? 0) + 1;
    next.set(e.cid, s);
    return s;
  });
  return [evs.map((e) => e.cid), seqs, evs.map((e) => e.id), evs.map((e) => e.sender), evs.map((e) => e.ts), evs.map((e) => e.body)];
}

type Writer = (evs: Ev[]) => Promise<void>;

function pgWriters(pool: pg.Pool): Record<string, Writer> {
  return {
    serial: async (evs) => {
      const c = await pool.connect();
      try {
        await c.query('BEGIN');
        for (const e of evs) await c.query({ name: 'one', text: ONE, values: [e.cid, e.id, e.sender, e.ts, e.ts, e.body] });
        await c.query('COMMIT');
      } finally { c.release(); }
    },
    pipelined: async (evs) => {
      const c = await pool.connect();
      try {
        const q = [c.query('BEGIN'), ...evs.map((e) => c.query({ name: 'one', text: ONE, values: [e.cid, e.id, e.sender, e.ts, e.ts, e.body] })), c.query('COMMIT')];
        await Promise.all(q);
      } finally { c.release(); }
    },
    bulk: async (evs) => {
      const c = await pool.connect();
      try {
        const per = counts(evs);
        const begin = c.query('BEGIN');
        const rows = (await c.query({ name: 'counters', text: COUNTERS, values: [per.cids, per.ns, per.ats] })).rows as { cid: string; last_seq: string }[];
        await begin;
        await c.query({ name: 'bulk', text: BULK, values: bulkArgs(evs, rows) });
        await c.query('COMMIT');
      } finally { c.release(); }
    },
  };
}

function pjsWriters(sql: postgres.Sql): Record<string, Writer> {
  return {
    serial: async (evs) => {
      await sql.begin(async (tx) => {
        for (const e of evs) await tx.unsafe(ONE, [e.cid, e.id, e.sender, e.ts, e.ts, e.body], { prepare: true });
      });
    },
    pipelined: async (evs) => {
      await sql.begin((tx) => evs.map((e) => tx.unsafe(ONE, [e.cid, e.id, e.sender, e.ts, e.ts, e.body], { prepare: true })));
    },
    bulk: async (evs) => {
      await sql.begin(async (tx) => {
        const per = counts(evs);
        const rows = await tx.unsafe(COUNTERS, [per.cids, per.ns, per.ats] as never[], { prepare: true });
        await tx.unsafe(BULK, bulkArgs(evs, rows as unknown as { cid: string; last_seq: string }[]) as never[], { prepare: true });
      });
    },
  };
}

async function run(label: string, write: Writer, reset: () => Promise<void>): Promise<void> {
  await reset();
  const rounds = Math.ceil(opts.events / opts.batch / opts.writers);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: opts.writers }, async () => {
    for (let r = 0; r < rounds; r++) await write(batch());
  }));
  const s = (performance.now() - t0) / 1000;
  const n = rounds * opts.writers * opts.batch;
  console.log(`${label.padEnd(22)} ${Math.round(n / s).toString().padStart(7)} events/s  (${n} events, ${(s * 1000 / (rounds * opts.writers)).toFixed(1)} ms per ${opts.batch}-event transaction)`);
}

const admin = new pg.Client({ connectionString: base });
await admin.connect();
await admin.query(`CREATE DATABASE ${dbName}`);
try {
  const pool = new pg.Pool({ connectionString: url.toString(), max: opts.writers });
  const pipePool = new pg.Pool({ connectionString: url.toString(), max: opts.writers, pipeline: true });
  const sql = postgres(url.toString(), { max: opts.writers, onnotice: () => {} });
  const reset = async (): Promise<void> => { await pool.query('DROP TABLE IF EXISTS events, conversations'); await pool.query(SCHEMA); };
  console.log(`${opts.events} events, ${opts.batch} per transaction over ${opts.convs} conversations, ${opts.writers} writer(s)`);
  const p = pgWriters(pool);
  const pp = pgWriters(pipePool);
  const j = pjsWriters(sql);
  for (const [label, w] of [
    ['pg serial', p.serial], ['postgres serial', j.serial], ['pg pipelined', pp.pipelined], ['postgres pipelined', j.pipelined],
    ['pg bulk', p.bulk], ['postgres bulk', j.bulk],
  ] as const) await run(label, w as Writer, reset);
  await pool.end();
  await pipePool.end();
  await sql.end();
} finally {
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}
