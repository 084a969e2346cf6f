/**
 * The operator's command line for the ban list, over the running server's /admin endpoints.
 *
 *   npm run admin -- bans                         list every ban
 *   npm run admin -- ban 0x… [reason words…]      ban an address (its connections close at once)
 *   npm run admin -- unban 0x…                    lift a ban
 *
 * Options: --url http://host:port (default http://127.0.0.1:$PORT, PORT from the environment or .env,
 * else 8080). The token is OPERATOR_TOKEN from the environment or .env. Exit 0 on success, 1 when the
 * server refused (its error code is printed), 2 on a usage error.
 */
import { readEnv } from '../src/config/config.js';

const argv = process.argv.slice(2);
const env = readEnv();
let url = `http://127.0.0.1:${env['PORT'] || '8080'}`;
const rest: string[] = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--url') url = (argv[++i] ?? '').replace(/\/+$/, '');
  else rest.push(argv[i] as string);
}
const [command, address, ...reason] = rest;
const token = env['OPERATOR_TOKEN'] ?? '';
const usage = (msg: string): never => {
  process.stderr.write(`${msg}\nusage: npm run admin -- [--url http://host:port] bans | ban <address> [reason…] | unban <address>\n`);
  process.exit(2);
};
if (token === '') usage('OPERATOR_TOKEN is not set (environment or .env)');

async function call(method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(url + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const json: unknown = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    process.stderr.write(`refused: ${res.status} ${err?.code ?? ''} ${err?.message ?? text}\n`);
    process.exit(1);
  }
  return json;
}

if (command === 'bans') {
  process.stdout.write(`${JSON.stringify(await call('GET', '/admin/bans'), null, 2)}\n`);
} else if (command === 'ban' || command === 'unban') {
  if (!address) usage(`${command} needs an address`);
  const path = `/admin/bans/${encodeURIComponent(address as string)}`;
  if (command === 'ban') process.stdout.write(`${JSON.stringify(await call('POST', path, { reason: reason.join(' ') }))}\n`);
  else {
    await call('DELETE', path);
    process.stdout.write(`ban on ${(address as string).toLowerCase()} lifted\n`);
  }
} else {
  usage(command ? `unknown command "${command}"` : 'no command');
}
