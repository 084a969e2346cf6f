import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ArweaveClient, Jwk } from './client.js';

/**
 * Loads the archive wallet (JWK JSON). When the file does not exist and `generate` is set (embedded
 * gateway), a new wallet is generated and written there (mode 0600) so that later starts sign with it.
 */
export async function loadWallet(arweave: ArweaveClient, file: string, generate: boolean): Promise<Jwk> {
  if (existsSync(file)) {
    const jwk = JSON.parse(await readFile(file, 'utf8')) as Jwk;
    if (typeof jwk.n !== 'string' || typeof jwk.d !== 'string') throw new Error(`${file} is not an Arweave JWK with a private key`);
    return jwk;
  }
  if (!generate) throw new Error(`archive wallet ${file} does not exist (set ARCHIVE_WALLET_FILE to an Arweave JWK)`);
  const jwk = await arweave.wallets.generate();
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(`${file}.tmp`, JSON.stringify(jwk), { mode: 0o600 });
  await rename(`${file}.tmp`, file);
  return jwk;
}
