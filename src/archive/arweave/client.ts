import Arweave from 'arweave';

export type ArweaveClient = Arweave;
/** The JWK of an Arweave RSA wallet, as the client reads it. */
export type Jwk = Awaited<ReturnType<Arweave['wallets']['generate']>>;

/** An Arweave client for a gateway base URL (`http(s)://host[:port]`). */
export function arweaveFor(url: string): Arweave {
  const u = new URL(url);
  const protocol = u.protocol.replace(':', '');
  const port = u.port === '' ? (protocol === 'https' ? 443 : 80) : Number(u.port);
  return Arweave.init({ host: u.hostname, port, protocol, timeout: 60_000, logging: false });
}
