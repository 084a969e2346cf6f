import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import type { ArchiveStore } from './port.js';

/** Rows read from the store per query while a bundle file is written. */
const PAGE = 500;

export interface WrittenBundle {
  bytes: number;
  sha256: string;
  count: number;
}

/**
 * Writes the bundle holding the face-0 events firstPos..lastPos to `file`, streaming page by page from
 * the store and hashing as it goes: memory stays at one page whatever the bundle's size. The file is
 * written under a temporary name, fsynced and renamed, so a bundle file that exists is complete.
 */
export async function writeBundleFile(store: Pick<ArchiveStore, 'eventsBetween'>, afterPos: number, lastPos: number, file: string): Promise<WrittenBundle> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  const out = createWriteStream(tmp);
  const hash = createHash('sha256');
  let bytes = 0;
  let count = 0;
  const write = async (text: string): Promise<void> => {
    const buf = Buffer.from(text, 'utf8');
    hash.update(buf);
    bytes += buf.length;
    if (!out.write(buf)) await once(out, 'drain');
  };
  out.on('error', () => {}); // surfaced by the awaited 'finish' / 'drain' below
  try {
    await write('[');
    let cursor = afterPos;
    for (;;) {
      const page = await store.eventsBetween(cursor, lastPos, PAGE);
      if (page.length === 0) break;
      for (const e of page) {
        await write(count === 0 ? e.body : `,${e.body}`);
        count += 1;
      }
      cursor = (page[page.length - 1] as { pos: number }).pos;
    }
    await write(']');
    out.end();
    await once(out, 'finish');
  } catch (e) {
    out.destroy();
    throw e;
  }
  const fh = await open(tmp, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  return { bytes, sha256: hash.digest('hex'), count };
}

/** sha256 of a file, streamed. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * The bundle's bytes, once, for signing or uploading (the Arweave client needs the data as one buffer to
 * build its merkle tree and cut chunks). Checked against the recorded hash so a damaged file is never
 * uploaded under a transaction that names other data.
 */
export async function readBundleFile(file: string, sha256: string): Promise<Buffer> {
  const data = await readFile(file);
  const actual = createHash('sha256').update(data).digest('hex');
  if (actual !== sha256) throw new Error(`bundle file ${file} is damaged: sha256 ${actual}, recorded ${sha256}`);
  return data;
}
