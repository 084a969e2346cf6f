import { existsSync, readFileSync } from 'node:fs';
import { parseEnv } from 'node:util';
import path from 'node:path';
import { validate as cronValid } from 'node-cron';
import { TrustedProxies } from '../gateway/edge/address.js';

/**
 * Every setting the server reads, with its type, default and meaning, in one table. `docs/configuration.md`
 * and `.env.example` document exactly these names (a test keeps them in step).
 */
type Kind = 'int' | 'string' | 'bool' | 'enum' | 'list';
interface Spec<K extends Kind> {
  kind: K;
  default: string;
  doc: string;
  min?: number;
  max?: number;
  values?: readonly string[];
}

export const CONFIG_SPEC = {
  PORT: { kind: 'int', default: '8080', min: 0, max: 65535, doc: 'TCP port for HTTP, /ws and /im (0 picks a free port).' },
  HOST: { kind: 'string', default: '0.0.0.0', doc: 'Interface to listen on.' },
  DATA_DIR: { kind: 'string', default: './data', doc: 'Directory for the embedded store (SQLite file) and other local state.' },
  LOG_LEVEL: { kind: 'enum', default: 'info', values: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], doc: 'Structured log level (pino).' },
  STORE: { kind: 'enum', default: 'sqlite', values: ['sqlite', 'postgres'], doc: 'Message store adapter. `sqlite` is the embedded default (one process, DATA_DIR); `postgres` keeps everything in the PostgreSQL at DATABASE_URL, shared by any number of processes.' },
  DATABASE_URL: { kind: 'string', default: '', doc: 'PostgreSQL connection URL, e.g. postgres://user:password@host:5432/db (required with STORE=postgres). The schema is created and migrated at start.' },
  PG_POOL_MAX: { kind: 'int', default: '10', min: 2, max: 1000, doc: 'Connections each process keeps to PostgreSQL (STORE=postgres); one write transaction at a time, the rest serve reads.' },
  PG_STATEMENT_TIMEOUT_MS: { kind: 'int', default: '5000', min: 100, max: 3600000, doc: 'Longest one store statement may run (STORE=postgres): the server cancels it (statement_timeout) and the client stops waiting a second later, so a database that hangs without refusing answers STORE_UNAVAILABLE (nothing acknowledged) instead of piling requests up. Migrations at start are not limited.' },
  PG_ACQUIRE_TIMEOUT_MS: { kind: 'int', default: '5000', min: 100, max: 600000, doc: 'Longest a store statement waits for a pooled PostgreSQL connection, or for a new connection\'s handshake (STORE=postgres), before it fails as STORE_UNAVAILABLE; also how long the check at start waits for the database.' },
  SQLITE_SYNCHRONOUS: { kind: 'enum', default: 'FULL', values: ['FULL', 'NORMAL'], doc: 'FULL fsyncs every group commit (survives power loss); NORMAL survives a process crash only.' },
  MAX_BODY_BYTES: { kind: 'int', default: '262144', min: 1024, max: 16777216, doc: 'Largest accepted HTTP body and JSON WebSocket frame, in bytes.' },
  CLOCK_SKEW_MS: { kind: 'int', default: '300000', min: 0, doc: 'Allowed distance between a message timestamp and the server clock.' },
  MAX_DELEGATION_MS: { kind: 'int', default: '2678400000', min: 1, doc: 'Longest allowed session-key delegation (createdAt to expiresAt); default 31 days (a calendar month, as SPEC section 2 says).' },
  VERIFY_WORKERS: { kind: 'int', default: '-1', min: -1, max: 64, doc: 'Signature-recovery worker threads; 0 recovers on the main thread, -1 means one per core.' },
  DELEGATION_CACHE_SIZE: { kind: 'int', default: '100000', min: 0, doc: 'Verified delegations remembered, so a message costs one recovery instead of two.' },
  MAX_PENDING_SENDS: { kind: 'int', default: '20000', min: 1, doc: 'Sends being verified or committed at once; beyond it a send is answered 503 OVERLOADED.' },
  COMMIT_BATCH_MAX: { kind: 'int', default: '4096', min: 1, max: 100000, doc: 'Most messages written in one group commit.' },
  REQUIRE_NAME: { kind: 'bool', default: 'true', doc: 'Only senders holding a Relation Name Service name may send (enforced when a relation reader is configured).' },
  TOKEN_TTL_MS: { kind: 'int', default: '604800000', min: 1000, doc: 'Lifetime of a login token (default 7 days; never beyond a session key delegation).' },
  NONCE_TTL_MS: { kind: 'int', default: '300000', min: 1000, doc: 'Lifetime of a sign-in nonce.' },
  SIWE_DOMAINS: { kind: 'list', default: '', doc: 'Comma-separated domains accepted in SIWE messages; empty means the request Host header.' },
  WS_HEARTBEAT_MS: { kind: 'int', default: '30000', min: 100, doc: 'Ping interval; a peer that misses one pong is dropped (close 4009).' },
  WS_AUTH_TIMEOUT_MS: { kind: 'int', default: '10000', min: 100, doc: 'Time a /ws connection has to authenticate (close 4001).' },
  WS_MAX_BUFFERED_BYTES: { kind: 'int', default: '4194304', min: 1024, doc: 'Bytes queued to one connection before it is cut off as a slow consumer (close 4008).' },
  WS_MAX_FRAMES_PER_SEC: { kind: 'int', default: '200', min: 1, doc: 'Frames a client may send per second before close 4029.' },
  RESUME_MAX_PER_CHAT: { kind: 'int', default: '1000', min: 1, max: 100000, doc: 'Most messages replayed per chat by a /ws resume; the rest is paged over REST.' },
  LIST_MAX_LIMIT: { kind: 'int', default: '200', min: 1, max: 10000, doc: 'Largest `limit` accepted by list endpoints.' },
  CHAIN: { kind: 'enum', default: 'embedded', values: ['embedded', 'rpc', 'none'], doc: 'Relation chain: `embedded` starts an in-process chain (EDR) with the contracts deployed and demo identities; `rpc` reads RPC_URL at the configured addresses; `none` runs without relations (no groups).' },
  RPC_URL: { kind: 'string', default: '', doc: 'JSON-RPC endpoint of the chain holding the Relation Protocol contracts (required with CHAIN=rpc).' },
  CHAIN_ID: { kind: 'int', default: '31337', min: 1, doc: 'Chain id of RPC_URL (fixed so a down RPC is not probed for it); the embedded chain uses it too.' },
  NAME_SERVICE_ADDRESS: { kind: 'string', default: '', doc: 'NameService contract address (required with CHAIN=rpc).' },
  FOLLOW_REGISTER_ADDRESS: { kind: 'string', default: '', doc: 'FollowRegister contract address (required with CHAIN=rpc).' },
  DAO_REGISTER_ADDRESS: { kind: 'string', default: '', doc: 'DaoRegister contract address (required with CHAIN=rpc).' },
  RELATIONS_FROM_BLOCK: { kind: 'int', default: '0', min: 0, doc: 'First block whose logs are read (the block the contracts were deployed in).' },
  RELATIONS_LOG_RANGE: { kind: 'int', default: '10000', min: 1, doc: 'Most blocks asked for in one eth_getLogs request.' },
  RELATIONS_REFRESH_MS: { kind: 'int', default: '2000', min: 50, doc: 'Event poll interval: a removed member stops being a member within this plus one poll.' },
  RELATIONS_STATE_TTL_MS: { kind: 'int', default: '30000', min: 0, doc: 'Longest a DAO name/owner/free-join flag (no events) or a name/avatar is served before it is re-read.' },
  RELATIONS_RPC_TIMEOUT_MS: { kind: 'int', default: '5000', min: 50, doc: 'Bound on every RPC call and on every relation read.' },
  RELATIONS_MAX_STALE_MS: { kind: 'int', default: '60000', min: 0, doc: 'While the chain cannot be read, cached relations younger than this are served; older reads fail with RELATIONS_UNAVAILABLE.' },
  CHAIN_CONFIRMATIONS: { kind: 'int', default: '0', min: 0, max: 10000, doc: 'Relations are read this many blocks behind the chain head (0: the head itself). A reorganisation deeper than the cursor block is detected by its hash and the holder sets are rebuilt from the canonical chain either way.' },
  CHAIN_RPC_PORT: { kind: 'int', default: '8545', min: -1, max: 65535, doc: 'CHAIN=embedded only: TCP port of the embedded chain\'s JSON-RPC endpoint, for wallets, the web client and scripts (0 picks a free port, -1 turns it off); `npm start` logs its URL. When the port is taken (a second proxy, a Hardhat node on 8545) a free port is used instead and named in a warn line.' },
  CHAIN_RPC_HOST: { kind: 'string', default: '127.0.0.1', doc: 'Interface of the embedded chain\'s JSON-RPC endpoint (development keys are public: keep it on loopback).' },
  METRICS_ENABLED: { kind: 'bool', default: 'true', doc: 'Serve Prometheus metrics at GET /metrics (docs/operations.md).' },
  METRICS_TOKEN: { kind: 'string', default: '', doc: 'When set, GET /metrics needs `Authorization: Bearer <token>` (401 UNAUTHENTICATED otherwise); empty: /metrics is open (it carries no addresses or content).' },
  ARCHIVE_ENABLED: { kind: 'bool', default: 'true', doc: 'Archive every Relation ONE message to Arweave in chained bundles (docs/archive.md).' },
  ARCHIVE_GATEWAY_URL: { kind: 'string', default: '', doc: 'Arweave gateway to upload to (e.g. https://arweave.net); empty runs the embedded arlocal gateway with its data under DATA_DIR/arlocal.' },
  ARCHIVE_WALLET_FILE: { kind: 'string', default: '', doc: 'Path of the Arweave wallet (JWK JSON) that signs bundles; empty uses DATA_DIR/archive-wallet.json, generated on first start (embedded gateway only).' },
  ARCHIVE_CRON: { kind: 'string', default: '0 */12 * * *', doc: 'node-cron schedule of bundle ticks (default every 12 hours); a tick with nothing pending makes no bundle.' },
  ARCHIVE_SIZE_TRIGGER_BYTES: { kind: 'int', default: '104857600', min: 1024, doc: 'Pending bytes that cut a bundle at once, without waiting for the tick; also the largest bundle (default 100 MB).' },
  ARCHIVE_POLL_MS: { kind: 'int', default: '10000', min: 100, doc: 'How often the archiver checks the pending size against ARCHIVE_SIZE_TRIGGER_BYTES and retries a failed upload.' },
  ARCHIVE_RETRY_BASE_MS: { kind: 'int', default: '5000', min: 1, doc: 'First retry delay after a gateway failure; doubles per failure with jitter, up to ARCHIVE_RETRY_MAX_MS.' },
  ARCHIVE_RETRY_MAX_MS: { kind: 'int', default: '600000', min: 1, doc: 'Longest retry delay after gateway failures.' },
  ARCHIVE_LEASE_MS: { kind: 'int', default: '60000', min: 1000, doc: 'Lease that lets one process archive at a time; renewed while it works, taken over after it lapses.' },
  ARCHIVE_CONFIRMATIONS: { kind: 'int', default: '10', min: 1, doc: 'Confirmations (the block holding a bundle counted) at which a bundle is permanent: the head moves and the next bundle may be cut (docs/archive.md).' },
  ARCHIVE_MINE_MS: { kind: 'int', default: '5000', min: 0, doc: 'Embedded gateway only: mine a block this often (0: only after each upload).' },
  IM_MAX_FRAME_BYTES: { kind: 'int', default: '65536', min: 1024, max: 16777216, doc: 'Largest /im MsgPack frame; bigger frames close the connection with 1009.' },
  IM_MAX_DEPTH: { kind: 'int', default: '8', min: 3, max: 64, doc: 'Deepest nesting of arrays and maps accepted in a /im frame (BAD_MSGPACK beyond).' },
  IM_MAX_ELEMENTS: { kind: 'int', default: '1024', min: 16, max: 1000000, doc: 'Longest array or map accepted in a /im frame, and most elements in one frame overall (BAD_MSGPACK beyond).' },
  IM_MAX_TEXT_BYTES: { kind: 'int', default: '16384', min: 1, doc: 'Longest text (kind 1 data 0) in UTF-8 bytes.' },
  REVOKE_WINDOW_S: { kind: 'int', default: '120', min: 0, doc: 'Seconds after which one may no longer revoke one\'s own message for everyone (scope 1).' },
  GATEWAY_CACHE_MS: { kind: 'int', default: '30000', min: 0, doc: 'How long the /im gateway trusts a cached access decision (participant, member, role) before asking SeaKing again; 0 disables the cache.' },
  FILES_STORE: { kind: 'enum', default: 'local', values: ['local', 's3'], doc: '`local`: objects under DATA_DIR/objects, URLs served by this process with HMAC signatures; `s3`: any S3-compatible store with presigned URLs.' },
  FILES_MAX_BYTES: { kind: 'int', default: '104857600', min: 1, doc: 'Largest file that may be presigned for upload.' },
  FILES_URL_TTL_S: { kind: 'int', default: '900', min: 1, max: 604800, doc: 'Lifetime of upload and download URLs, seconds.' },
  FILES_SECRET: { kind: 'string', default: '', doc: 'HMAC key of local file URLs; empty: a random key generated once under DATA_DIR (files-secret).' },
  FILES_PUBLIC_URL: { kind: 'string', default: '', doc: 'Base URL clients reach this process at, for local file URLs; empty: http://HOST:PORT as listened on (127.0.0.1 when HOST is 0.0.0.0). Set it whenever clients come through another name or a proxy.' },
  S3_ENDPOINT: { kind: 'string', default: '', doc: 'S3-compatible endpoint URL (empty: AWS default for S3_REGION).' },
  S3_REGION: { kind: 'string', default: 'us-east-1', doc: 'S3 region.' },
  S3_BUCKET: { kind: 'string', default: '', doc: 'Bucket for files (required with FILES_STORE=s3).' },
  S3_ACCESS_KEY_ID: { kind: 'string', default: '', doc: 'S3 access key id (empty: the SDK default credential chain).' },
  S3_SECRET_ACCESS_KEY: { kind: 'string', default: '', doc: 'S3 secret access key.' },
  S3_FORCE_PATH_STYLE: { kind: 'bool', default: 'true', doc: 'Path-style bucket URLs (needed by most self-hosted S3 servers).' },
  // --- edges: abuse bounds, bans, browser access (docs/protocol.md section "Limits")
  HTTP_HEADERS_TIMEOUT_MS: { kind: 'int', default: '10000', min: 100, doc: 'Time a client has to send the complete request headers (also of a WebSocket upgrade); later: 408 REQUEST_TIMEOUT and the connection closes (slowloris).' },
  HTTP_REQUEST_TIMEOUT_MS: { kind: 'int', default: '300000', min: 100, doc: 'Time a client has to send a whole request, headers and body, file uploads to /files included; later: 408 REQUEST_TIMEOUT and the connection closes.' },
  HTTP_BODY_TIMEOUT_MS: { kind: 'int', default: '10000', min: 100, doc: 'Time a client has to send a JSON body (at most MAX_BODY_BYTES) once its headers arrived; later: 408 REQUEST_TIMEOUT and the connection closes (a body sent byte by byte).' },
  MAX_UNAUTH_CONNECTIONS_PER_ADDRESS: { kind: 'int', default: '64', min: 0, doc: 'Open connections one client address may hold that are not authenticated WebSockets (HTTP keep-alive, WebSockets before auth); more: refused with 429 TOO_MANY_CONNECTIONS. 0: no cap.' },
  RATE_LIMIT_EXEMPT: { kind: 'list', default: '', doc: 'Comma-separated client addresses exempt from every rate limit and the connection cap (not from bans). Default: none, loopback included; a local benchmark or load test sets `127.0.0.1,::1` itself. An empty value is an empty list.' },
  TRUSTED_PROXIES: { kind: 'list', default: '', doc: 'Comma-separated addresses or CIDR ranges of the reverse proxies in front of this process (`127.0.0.1`, `10.0.0.0/8`). Only a connection from one of them may start with a PROXY protocol v2 header (HAProxy `send-proxy-v2`), and only for its requests is `X-Forwarded-For` read (the right-most hop that is not a trusted proxy is the client); for everyone else the TCP peer is the client. Empty: no proxy is trusted.' },
  RATE_LIMIT_STORE: { kind: 'enum', default: 'memory', values: ['memory', 'redis', 'postgres'], doc: 'Where the rate limits count: `memory` (this process only; N processes allow N times the rates), `redis` (REDIS_URL) or `postgres` (DATABASE_URL, table rim_rate_limits), shared by every process of the deployment. While the shared store fails, each process counts on its own (warn log, metric rim_rate_limit_store_errors_total); docs/operations.md.' },
  RATE_LIMIT_STORE_TIMEOUT_MS: { kind: 'int', default: '200', min: 10, max: 10000, doc: 'Longest a shared rate-limit store (RATE_LIMIT_STORE redis or postgres) may take to count a request before this process counts it on its own.' },
  RATE_NONCE_PER_MIN: { kind: 'int', default: '60', min: 0, doc: 'GET /auth/nonce per client address per minute (429 RATE_LIMITED beyond; 0: no limit).' },
  RATE_LOGIN_PER_MIN: { kind: 'int', default: '30', min: 0, doc: 'POST /auth/login per client address per minute (0: no limit).' },
  RATE_SEND_PER_SEC: { kind: 'int', default: '100', min: 0, doc: 'Sends per client address per second, summed over POST /message/send, /ws send and /im SEND (0: no limit).' },
  RATE_USER_SEND_PER_SEC: { kind: 'int', default: '20', min: 0, doc: 'Sends per user (verified sender, or the /im session) per second, on both faces (0: no limit).' },
  WS_SLOW_CONSUMER_GRACE_MS: { kind: 'int', default: '30000', min: 100, doc: 'After a slow-consumer cut (4008) nothing more is queued; the connection is kept this long so a client that reads again gets what was queued and then the 4008 close, before TCP is dropped.' },
  OPERATOR_TOKEN: { kind: 'string', default: '', doc: 'Bearer token of the operator endpoints (/admin/bans); empty: they answer 501 NOT_SUPPORTED. Use a long random value.' },
  CORS_ORIGINS: { kind: 'list', default: '', doc: 'Web origins allowed cross-origin on REST and on the /ws and /im upgrade, comma-separated (`https://app.example`, `chrome-extension://<id>`; `*` allows any, without credentials). Empty: same-origin pages and clients without an Origin header only.' },
  BUS: { kind: 'enum', default: 'local', values: ['local', 'nats', 'redis'], doc: 'Push bus between processes: `local` (one process, the default), `nats` (core NATS at NATS_URL) or `redis` (Redis pub/sub at REDIS_URL). Needed whenever more than one process serves one store.' },
  NATS_URL: { kind: 'string', default: 'nats://127.0.0.1:4222', doc: 'NATS server(s) for BUS=nats, comma-separated.' },
  REDIS_URL: { kind: 'string', default: 'redis://127.0.0.1:6379', doc: 'Redis server for BUS=redis.' },
  BUS_PREFIX: { kind: 'string', default: 'relation-im', doc: 'NATS subject / Redis channel the processes of one deployment share (`<prefix>.push`); give each deployment its own.' },
  BUS_PING_MS: { kind: 'int', default: '1000', min: 20, max: 60000, doc: 'Each process pings itself (and its peers) over the bus this often; a ping that does not come back in BUS_DOWN_AFTER_MS turns readiness red.' },
  BUS_DOWN_AFTER_MS: { kind: 'int', default: '3000', min: 50, max: 600000, doc: 'Silence after which the bus counts as down (own pings not back) and a peer process as gone (its users offline).' },
  ALLOW_DEV_PLAINTEXT: { kind: 'bool', default: 'false', doc: 'DEVELOPMENT ONLY: accept messages with encryptedBy `dev-plaintext-NOT-end-to-end-encrypted` (readable by anyone, the proxy and the public archive included); otherwise they are refused with PLAINTEXT_REFUSED (docs/e2ee.md section 4).' },
  MLS_MAX_DEVICES: { kind: 'int', default: '10', min: 1, max: 1000, doc: 'Most MLS devices (KeyPackage signature keys) one wallet may have in the directory (MLS_TOO_MANY_DEVICES beyond).' },
  MLS_KEY_PACKAGES_LOW: { kind: 'int', default: '10', min: 0, max: 200, doc: 'When a claim leaves a device with fewer KeyPackages than this, its owner\'s /ws connections get `mls.keyPackagesLow`.' },
  RATE_MLS_CLAIM_PER_MIN: { kind: 'int', default: '60', min: 0, doc: 'POST /mls/key-packages/claim per caller (wallet) per minute (429 RATE_LIMITED beyond; 0: no limit).' },
  MLS_EXTERNAL_SENDER_NAME: { kind: 'string', default: '', doc: 'The `proxy` field of the proxy\'s MLS external-sender credential (`{"v":1,"proxy":"…"}`); empty: FILES_PUBLIC_URL, else `relation-im`.' },
  BUS_CATCHUP_MS: { kind: 'int', default: '1000', min: 0, max: 600000, doc: 'A conversation with a recipient connected here is compared with the store this long after its last event, so a burst whose last doorbell was lost is still pushed live (one indexed read per quiet conversation); 0 turns it off.' },
  WORKERS: { kind: 'int', default: '1', min: 1, max: 64, doc: 'Server processes started by `npm start` (node:cluster, sharing PORT); more than 1 needs BUS=nats or redis and a store that several processes can share.' },
} as const satisfies Record<string, Spec<Kind>>;

export type ConfigKey = keyof typeof CONFIG_SPEC;

export interface Config {
  port: number;
  host: string;
  dataDir: string;
  logLevel: string;
  store: 'sqlite' | 'postgres';
  databaseUrl: string;
  pgPoolMax: number;
  pgStatementTimeoutMs: number;
  pgAcquireTimeoutMs: number;
  sqliteSynchronous: 'FULL' | 'NORMAL';
  maxBodyBytes: number;
  clockSkewMs: number;
  maxDelegationMs: number;
  verifyWorkers: number;
  delegationCacheSize: number;
  commitBatchMax: number;
  maxPendingSends: number;
  requireName: boolean;
  tokenTtlMs: number;
  nonceTtlMs: number;
  siweDomains: string[];
  wsHeartbeatMs: number;
  wsAuthTimeoutMs: number;
  wsMaxBufferedBytes: number;
  wsMaxFramesPerSec: number;
  resumeMaxPerChat: number;
  listMaxLimit: number;
  chain: 'embedded' | 'rpc' | 'none';
  rpcUrl: string;
  chainId: number;
  nameServiceAddress: string;
  followRegisterAddress: string;
  daoRegisterAddress: string;
  relationsFromBlock: number;
  relationsLogRange: number;
  relationsRefreshMs: number;
  relationsStateTtlMs: number;
  relationsRpcTimeoutMs: number;
  relationsMaxStaleMs: number;
  chainConfirmations: number;
  chainRpcPort: number;
  chainRpcHost: string;
  metricsEnabled: boolean;
  metricsToken: string;
  archiveEnabled: boolean;
  /** Empty: the embedded arlocal gateway. */
  archiveGatewayUrl: string;
  /** Empty: DATA_DIR/archive-wallet.json. */
  archiveWalletFile: string;
  archiveCron: string;
  archiveSizeTriggerBytes: number;
  archivePollMs: number;
  archiveRetryBaseMs: number;
  archiveRetryMaxMs: number;
  archiveLeaseMs: number;
  archiveMineMs: number;
  archiveConfirmations: number;
  imMaxFrameBytes: number;
  imMaxDepth: number;
  imMaxElements: number;
  imMaxTextBytes: number;
  revokeWindowS: number;
  gatewayCacheMs: number;
  filesStore: 'local' | 's3';
  filesMaxBytes: number;
  filesUrlTtlS: number;
  filesSecret: string;
  filesPublicUrl: string;
  s3Endpoint: string;
  s3Region: string;
  s3Bucket: string;
  s3AccessKeyId: string;
  s3SecretAccessKey: string;
  s3ForcePathStyle: boolean;
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  httpBodyTimeoutMs: number;
  maxUnauthConnectionsPerAddress: number;
  rateLimitExempt: string[];
  trustedProxies: string[];
  rateLimitStore: 'memory' | 'redis' | 'postgres';
  rateLimitStoreTimeoutMs: number;
  rateNoncePerMin: number;
  rateLoginPerMin: number;
  rateSendPerSec: number;
  rateUserSendPerSec: number;
  allowDevPlaintext: boolean;
  mlsMaxDevices: number;
  mlsKeyPackagesLow: number;
  rateMlsClaimPerMin: number;
  mlsExternalSenderName: string;
  wsSlowConsumerGraceMs: number;
  operatorToken: string;
  corsOrigins: string[];
  bus: 'local' | 'nats' | 'redis';
  natsUrl: string;
  redisUrl: string;
  busPrefix: string;
  busPingMs: number;
  busDownAfterMs: number;
  busCatchupMs: number;
  workers: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads `.env` (if present) under the process environment; the environment wins. */
export function readEnv(env: Env = process.env, dotenvPath = path.resolve('.env')): Env {
  if (!existsSync(dotenvPath)) return { ...env };
  const fromFile = parseEnv(readFileSync(dotenvPath, 'utf8'));
  return { ...fromFile, ...env };
}

/** Validates every variable at once and fails with all problems listed; unknown values never fall back silently. */
export function loadConfig(env: Env = {}): Config {
  const problems: string[] = [];
  // A variable that is not set takes its default. A variable set to an empty value (`KEY=`, or only
  // spaces) means empty: an empty list for a list, an empty string for a string whose default is empty.
  // Where empty is no value at all (a number, a switch, a choice, or a string with a non-empty default
  // such as HOST) it is refused, never read as "unset": `RATE_LIMIT_EXEMPT=` once kept its loopback default.
  const raw = (key: ConfigKey): string => {
    const v = env[key];
    if (v === undefined) return CONFIG_SPEC[key].default;
    const text = v.trim();
    const spec: Spec<Kind> = CONFIG_SPEC[key];
    if (text === '' && spec.kind !== 'list' && spec.default !== '' && !emptyReported.has(key)) {
      emptyReported.add(key);
      problems.push(`${key} is set but empty: give it a value, or unset it for the default (${spec.default})`);
    }
    return text === '' && spec.kind !== 'list' && spec.default !== '' ? spec.default : text;
  };
  const emptyReported = new Set<ConfigKey>();
  const int = (key: ConfigKey): number => {
    const spec: Spec<Kind> = CONFIG_SPEC[key];
    const text = raw(key);
    if (!/^-?\d+$/.test(text)) {
      problems.push(`${key} must be an integer, got "${text}"`);
      return Number(spec.default);
    }
    const n = Number(text);
    if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
      problems.push(`${key} must be between ${spec.min ?? '-inf'} and ${spec.max ?? 'inf'}, got ${n}`);
    }
    return n;
  };
  const bool = (key: ConfigKey): boolean => {
    const text = raw(key).toLowerCase();
    if (['true', '1', 'yes', 'on'].includes(text)) return true;
    if (['false', '0', 'no', 'off'].includes(text)) return false;
    problems.push(`${key} must be true or false, got "${text}"`);
    return false;
  };
  const oneOf = <T extends string>(key: ConfigKey): T => {
    const spec: Spec<Kind> = CONFIG_SPEC[key];
    const text = raw(key);
    if (!spec.values?.includes(text)) problems.push(`${key} must be one of ${spec.values?.join(', ')}, got "${text}"`);
    return text as T;
  };
  const list = (key: ConfigKey): string[] =>
    raw(key)
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0);

  const config: Config = {
    port: int('PORT'),
    host: raw('HOST'),
    dataDir: path.resolve(raw('DATA_DIR')),
    logLevel: oneOf('LOG_LEVEL'),
    store: oneOf('STORE'),
    databaseUrl: raw('DATABASE_URL'),
    pgPoolMax: int('PG_POOL_MAX'),
    pgStatementTimeoutMs: int('PG_STATEMENT_TIMEOUT_MS'),
    pgAcquireTimeoutMs: int('PG_ACQUIRE_TIMEOUT_MS'),
    sqliteSynchronous: oneOf('SQLITE_SYNCHRONOUS'),
    maxBodyBytes: int('MAX_BODY_BYTES'),
    clockSkewMs: int('CLOCK_SKEW_MS'),
    maxDelegationMs: int('MAX_DELEGATION_MS'),
    verifyWorkers: int('VERIFY_WORKERS'),
    delegationCacheSize: int('DELEGATION_CACHE_SIZE'),
    commitBatchMax: int('COMMIT_BATCH_MAX'),
    maxPendingSends: int('MAX_PENDING_SENDS'),
    requireName: bool('REQUIRE_NAME'),
    tokenTtlMs: int('TOKEN_TTL_MS'),
    nonceTtlMs: int('NONCE_TTL_MS'),
    siweDomains: list('SIWE_DOMAINS'),
    wsHeartbeatMs: int('WS_HEARTBEAT_MS'),
    wsAuthTimeoutMs: int('WS_AUTH_TIMEOUT_MS'),
    wsMaxBufferedBytes: int('WS_MAX_BUFFERED_BYTES'),
    wsMaxFramesPerSec: int('WS_MAX_FRAMES_PER_SEC'),
    resumeMaxPerChat: int('RESUME_MAX_PER_CHAT'),
    listMaxLimit: int('LIST_MAX_LIMIT'),
    chain: oneOf('CHAIN'),
    rpcUrl: raw('RPC_URL'),
    chainId: int('CHAIN_ID'),
    nameServiceAddress: raw('NAME_SERVICE_ADDRESS').toLowerCase(),
    followRegisterAddress: raw('FOLLOW_REGISTER_ADDRESS').toLowerCase(),
    daoRegisterAddress: raw('DAO_REGISTER_ADDRESS').toLowerCase(),
    relationsFromBlock: int('RELATIONS_FROM_BLOCK'),
    relationsLogRange: int('RELATIONS_LOG_RANGE'),
    relationsRefreshMs: int('RELATIONS_REFRESH_MS'),
    relationsStateTtlMs: int('RELATIONS_STATE_TTL_MS'),
    relationsRpcTimeoutMs: int('RELATIONS_RPC_TIMEOUT_MS'),
    relationsMaxStaleMs: int('RELATIONS_MAX_STALE_MS'),
    chainConfirmations: int('CHAIN_CONFIRMATIONS'),
    chainRpcPort: int('CHAIN_RPC_PORT'),
    chainRpcHost: raw('CHAIN_RPC_HOST'),
    metricsEnabled: bool('METRICS_ENABLED'),
    metricsToken: raw('METRICS_TOKEN'),
    archiveEnabled: bool('ARCHIVE_ENABLED'),
    archiveGatewayUrl: raw('ARCHIVE_GATEWAY_URL'),
    archiveWalletFile: raw('ARCHIVE_WALLET_FILE') === '' ? '' : path.resolve(raw('ARCHIVE_WALLET_FILE')),
    archiveCron: raw('ARCHIVE_CRON'),
    archiveSizeTriggerBytes: int('ARCHIVE_SIZE_TRIGGER_BYTES'),
    archivePollMs: int('ARCHIVE_POLL_MS'),
    archiveRetryBaseMs: int('ARCHIVE_RETRY_BASE_MS'),
    archiveRetryMaxMs: int('ARCHIVE_RETRY_MAX_MS'),
    archiveLeaseMs: int('ARCHIVE_LEASE_MS'),
    archiveMineMs: int('ARCHIVE_MINE_MS'),
    archiveConfirmations: int('ARCHIVE_CONFIRMATIONS'),
    imMaxFrameBytes: int('IM_MAX_FRAME_BYTES'),
    imMaxDepth: int('IM_MAX_DEPTH'),
    imMaxElements: int('IM_MAX_ELEMENTS'),
    imMaxTextBytes: int('IM_MAX_TEXT_BYTES'),
    revokeWindowS: int('REVOKE_WINDOW_S'),
    gatewayCacheMs: int('GATEWAY_CACHE_MS'),
    filesStore: oneOf('FILES_STORE'),
    filesMaxBytes: int('FILES_MAX_BYTES'),
    filesUrlTtlS: int('FILES_URL_TTL_S'),
    filesSecret: raw('FILES_SECRET'),
    filesPublicUrl: raw('FILES_PUBLIC_URL').replace(/\/+$/, ''),
    s3Endpoint: raw('S3_ENDPOINT'),
    s3Region: raw('S3_REGION'),
    s3Bucket: raw('S3_BUCKET'),
    s3AccessKeyId: raw('S3_ACCESS_KEY_ID'),
    s3SecretAccessKey: raw('S3_SECRET_ACCESS_KEY'),
    s3ForcePathStyle: bool('S3_FORCE_PATH_STYLE'),
    httpHeadersTimeoutMs: int('HTTP_HEADERS_TIMEOUT_MS'),
    httpRequestTimeoutMs: int('HTTP_REQUEST_TIMEOUT_MS'),
    httpBodyTimeoutMs: int('HTTP_BODY_TIMEOUT_MS'),
    maxUnauthConnectionsPerAddress: int('MAX_UNAUTH_CONNECTIONS_PER_ADDRESS'),
    rateLimitExempt: list('RATE_LIMIT_EXEMPT'),
    trustedProxies: list('TRUSTED_PROXIES'),
    rateLimitStore: oneOf('RATE_LIMIT_STORE'),
    rateLimitStoreTimeoutMs: int('RATE_LIMIT_STORE_TIMEOUT_MS'),
    rateNoncePerMin: int('RATE_NONCE_PER_MIN'),
    rateLoginPerMin: int('RATE_LOGIN_PER_MIN'),
    rateSendPerSec: int('RATE_SEND_PER_SEC'),
    rateUserSendPerSec: int('RATE_USER_SEND_PER_SEC'),
    allowDevPlaintext: bool('ALLOW_DEV_PLAINTEXT'),
    mlsMaxDevices: int('MLS_MAX_DEVICES'),
    mlsKeyPackagesLow: int('MLS_KEY_PACKAGES_LOW'),
    rateMlsClaimPerMin: int('RATE_MLS_CLAIM_PER_MIN'),
    mlsExternalSenderName: raw('MLS_EXTERNAL_SENDER_NAME'),
    wsSlowConsumerGraceMs: int('WS_SLOW_CONSUMER_GRACE_MS'),
    operatorToken: raw('OPERATOR_TOKEN'),
    corsOrigins: list('CORS_ORIGINS'),
    bus: oneOf('BUS'),
    natsUrl: raw('NATS_URL'),
    redisUrl: raw('REDIS_URL'),
    busPrefix: raw('BUS_PREFIX'),
    busPingMs: int('BUS_PING_MS'),
    busDownAfterMs: int('BUS_DOWN_AFTER_MS'),
    busCatchupMs: int('BUS_CATCHUP_MS'),
    workers: int('WORKERS'),
  };
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(config.busPrefix)) problems.push(`BUS_PREFIX must be dot-separated tokens of letters, digits, _ and -, got "${config.busPrefix}"`);
  if (config.busDownAfterMs <= config.busPingMs) problems.push(`BUS_DOWN_AFTER_MS (${config.busDownAfterMs}) must be longer than BUS_PING_MS (${config.busPingMs})`);
  if (config.workers > 1 && config.bus === 'local') problems.push('WORKERS above 1 needs BUS=nats or BUS=redis: pushes must reach connections on every process');
  if (config.workers > 1 && config.store === 'sqlite') problems.push('WORKERS above 1 needs STORE=postgres: the processes must share one store');
  if (config.workers > 1 && config.chain === 'embedded') problems.push('WORKERS above 1 needs CHAIN=rpc or CHAIN=none: an embedded chain would be a different chain in every process');
  if (config.store === 'postgres') {
    if (!/^postgres(ql)?:\/\/\S+$/.test(config.databaseUrl)) problems.push('DATABASE_URL must be a postgres:// URL when STORE=postgres');
  }
  if (config.httpRequestTimeoutMs < config.httpHeadersTimeoutMs) problems.push('HTTP_REQUEST_TIMEOUT_MS must not be below HTTP_HEADERS_TIMEOUT_MS');
  if (config.operatorToken !== '' && config.operatorToken.length < 16) problems.push('OPERATOR_TOKEN must be at least 16 characters (or empty to turn the operator endpoints off)');
  for (const o of config.corsOrigins) {
    if (o !== '*' && !/^(https?:\/\/[^/\s]+|chrome-extension:\/\/[a-p]{32})$/.test(o)) problems.push(`CORS_ORIGINS entries are "*", http(s)://host[:port] or chrome-extension://<32-letter id>, got "${o}"`);
  }
  for (const p of config.trustedProxies) {
    const problem = TrustedProxies.problem(p);
    if (problem) problems.push(problem);
  }
  if (config.rateLimitStore === 'postgres' && !/^postgres(ql)?:\/\/\S+$/.test(config.databaseUrl)) problems.push('RATE_LIMIT_STORE=postgres needs DATABASE_URL (a postgres:// URL)');
  if (config.filesStore === 's3' && config.s3Bucket === '') problems.push('S3_BUCKET is required when FILES_STORE=s3');
  if (config.chain === 'rpc') {
    if (!/^https?:\/\/\S+$/.test(config.rpcUrl)) problems.push(`RPC_URL must be an http(s) URL when CHAIN=rpc, got "${config.rpcUrl}"`);
    for (const key of ['NAME_SERVICE_ADDRESS', 'FOLLOW_REGISTER_ADDRESS', 'DAO_REGISTER_ADDRESS'] as const) {
      if (!/^0x[0-9a-f]{40}$/.test(raw(key).toLowerCase())) problems.push(`${key} must be a 0x-prefixed 20-byte address when CHAIN=rpc, got "${raw(key)}"`);
    }
  }
  if (!cronValid(config.archiveCron)) problems.push(`ARCHIVE_CRON is not a valid cron expression, got "${config.archiveCron}"`);
  if (config.archiveGatewayUrl !== '' && !/^https?:\/\/[^\s]+$/.test(config.archiveGatewayUrl)) {
    problems.push(`ARCHIVE_GATEWAY_URL must be an http(s) URL, got "${config.archiveGatewayUrl}"`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** Defaults for tests and embedding: the table's defaults with overrides applied. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  // Tests run side by side: none binds the embedded chain's fixed JSON-RPC port unless it asks for one.
  return { ...loadConfig({}), chainRpcPort: -1, ...overrides };
}
