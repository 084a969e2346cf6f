import { MlsService } from './roles/mls/mls-service.js';
import { mlsRoutes } from './gateway/http/mls-routes.js';
import { createServer, type Server } from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createArchive, type ArchiveComponent } from './archive/create.js';
import { archiveRoutes } from './archive/routes.js';
import { AuthService } from './roles/auth/auth-service.js';
import { ChatService } from './roles/chat/chat-service.js';
import { GroupCommitter } from './roles/chat/committer.js';
import { MessageService } from './roles/chat/message-service.js';
import { SocialService } from './roles/chat/social-service.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/config.js';
import { backend, keccakBackend } from './roles/identity/recover-core.js';
import { MessageVerifier } from './roles/identity/verifier.js';
import { createJobRunner } from './roles/identity/worker-pool.js';
import type { Logger } from './log/logger.js';
import { createPushHub, type PushHub } from './bus/create.js';
import { readiness } from './gateway/http/ready.js';
import { dmParticipants, isDmCid } from './roles/chat/ids.js';
import { Wallet } from 'ethers';
import { ChainWatcher } from './roles/mls/chain-watcher.js';
import { readPush } from './roles/chat/render.js';
import { groupAudience } from './roles/chat/membership.js';
import { Face } from './store/port.js';
import { NoRelations } from './roles/relations/none.js';
import type { RelationReader } from './roles/relations/port.js';
import type { Store } from './store/port.js';
import { PostgresStore } from './store/postgres/postgres-store.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import { fastSend } from './gateway/http/fast-send.js';
import { buildRoutes } from './gateway/http/routes.js';
import { JsonWsGateway } from './gateway/ws/json-ws.js';
import { devDemo, type DemoInfo } from './gateway/http/dev-demo.js';
import { findWebDist, webStatic } from './gateway/http/web-static.js';
import { LocalObjectStore } from './files/local.js';
import type { ObjectStore } from './files/port.js';
import { S3ObjectStore } from './files/s3.js';
import { AccessCache } from './gateway/im/access-cache.js';
import { ImGateway } from './gateway/im/im-gateway.js';
import { ImKind, ImWire } from './roles/im/events.js';
import { ImHandlers } from './roles/im/handlers.js';
import { ImService } from './roles/im/im-service.js';
import { Relay } from './roles/relay/relay.js';
import { BanList } from './gateway/edge/bans.js';
import { OriginPolicy } from './gateway/edge/origin.js';
import { RateLimits } from './gateway/edge/rate-limits.js';
import { adminRoutes } from './gateway/http/admin.js';
import { HttpEdge, writeRawError } from './gateway/http/edge.js';
import { SeaKing } from './roles/seaking/seaking.js';
import { Metrics } from './metrics/metrics.js';
import { metricsRoute } from './metrics/route.js';
import { requestId } from './log/request-id.js';
import type { AccessEvents } from './roles/access/events.js';
import { HubAccessEvents } from './roles/access/bus-events.js';

export interface AppOverrides {
  clock?: Clock;
  store?: Store;
  /** The relation reader (chain). Whoever creates it closes it; without one, no chain: NoRelations. */
  relations?: RelationReader;
  files?: ObjectStore;
  /** The embedded demo chain's identities: enables the development-only `GET /dev/demo`. */
  demo?: DemoInfo;
  /** The built web client to serve at `/` (default: `web/dist` when it was built; null: none). */
  webDir?: string | null;
  /** Role/membership invalidation hook (default: in-process); a bus adapter makes it reach every process. */
  accessEvents?: AccessEvents;
  /** The metrics registry (main makes one first so the chain reader's RPC calls are counted too). */
  metrics?: Metrics;
  /** The push hub (tests: a ClusterHub on an in-process broker); without one, BUS picks it. */
  hub?: PushHub;
}

export interface App {
  server: Server;
  store: Store;
  relations: RelationReader;
  messages: MessageService;
  chats: ChatService;
  auth: AuthService;
  hub: PushHub;
  metrics: Metrics;
  im: ImService;
  seaking: SeaKing;
  files: ObjectStore;
  /** The operator's ban list (also served at /admin/bans). */
  bans: BanList;
  /** Starts listening on config.port (0: any free port) and resolves with the bound port. */
  listen(): Promise<number>;
  /** Stops accepting, closes connections (1001), waits for pending commits, closes the store. */
  close(): Promise<void>;
}

/** The composition root: builds every component from the config and wires them together. */
export function buildApp(config: Config, log: Logger, overrides: AppOverrides = {}): App {
  const clock = overrides.clock ?? systemClock;
  const storeFile = path.join(config.dataDir, 'relation-im.sqlite');
  const store = overrides.store ?? (config.store === 'postgres'
    ? new PostgresStore({ url: config.databaseUrl, poolMax: config.pgPoolMax, statementTimeoutMs: config.pgStatementTimeoutMs, acquireTimeoutMs: config.pgAcquireTimeoutMs, onIdleError: (err) => log.warn({ err }, 'PostgreSQL connection lost; the pool reconnects') })
    : new SqliteStore({ file: storeFile, synchronous: config.sqliteSynchronous }));
  // Known before the server listens (listen() waits for it), announced to clients from then on.
  let storeEpoch = '';
  const epoch = (): string => storeEpoch;
  // The archiver keeps its state beside the messages (the SQLite file, or PostgreSQL); it starts in the
  // background (the embedded gateway takes a moment) and a failure to start it stops no message: the
  // backlog stays in the store until an archiver runs.
  const archive: Promise<ArchiveComponent> | null = config.archiveEnabled && !overrides.store
    ? createArchive(config, storeFile, log, { clock, ...(store instanceof SqliteStore ? { writer: store.writerClient() } : {}) }) : null;
  archive?.then((a) => a.archiver.start(), (err: unknown) => log.error({ err }, 'archive failed to start'));
  const archiveHttp = archive
    // `gateway` tells archive readers where this proxy's bundles are (the embedded arlocal's port changes each start).
    ? archiveRoutes({ status: async () => { const a = await archive; return Object.assign(await a.archiver.status(), { gateway: a.gatewayUrl }); }, log: log.child({ component: 'archive' }) })
    : null;
  const relations: RelationReader = overrides.relations ?? new NoRelations();
  if (config.chain !== 'none' && !overrides.relations) {
    throw new Error(`CHAIN=${config.chain} needs a relation reader: start it with startChainRelations(config) and pass it in`);
  }
  const metrics = overrides.metrics ?? new Metrics();
  metrics.archiveFrom(archive ? async () => (await archive).archiver.status() : null);
  // The push hub: this process's connections, and with BUS=nats|redis the doorbell to every other
  // process. It fills gaps from the store, so it is told who receives an event and how /im encodes a file.
  const hub = overrides.hub ?? createPushHub(config, log, {
    onFanout: metrics.fanout,
    onFanoutWritten: metrics.fanoutWritten,
    store,
    recipients: async (e) => {
      if (e.onlyFor !== null) return [e.onlyFor];
      const p = dmParticipants(e.cid);
      if (p) return p[0] === p[1] ? [p[0]] : p;
      return relations.available ? groupAudience(relations, e.cid) : [];
    },
    render: async (e) => (e.face === Face.IM && e.kind === ImKind.FILE ? { imFrame: await wire.pushFrameOf(e) } : {}),
    readPush: (user, cid, seq) => readPush(user, cid, seq),
  });
  // Abuse bounds, bans and browser access (docs/protocol.md, "Limits").
  // RATE_LIMIT_STORE: where they count (docs/operations.md, "Rate limits across processes").
  const limitLog = log.child({ component: 'rate-limits', store: config.rateLimitStore });
  let limitWarnedAt = 0;
  const limits = new RateLimits({
    exempt: config.rateLimitExempt, noncePerMin: config.rateNoncePerMin, loginPerMin: config.rateLoginPerMin,
    sendPerSec: config.rateSendPerSec, userSendPerSec: config.rateUserSendPerSec, mlsClaimPerMin: config.rateMlsClaimPerMin,
    store: config.rateLimitStore === 'memory' ? { kind: 'memory' }
      : { kind: config.rateLimitStore, url: config.rateLimitStore === 'redis' ? config.redisUrl : config.databaseUrl, prefix: config.busPrefix },
    storeTimeoutMs: config.rateLimitStoreTimeoutMs,
    onStoreError: (err) => {
      metrics.rateLimitStoreError(config.rateLimitStore);
      const now = Date.now();
      if (now - limitWarnedAt < 10_000) return; // one line per 10 s; the metric counts every one
      limitWarnedAt = now;
      limitLog.warn({ err: err instanceof Error ? err.message : String(err) }, 'shared rate-limit store failed: this process counts the limits on its own until it is back');
    },
  });
  if (config.rateLimitStore === 'memory' && (config.bus !== 'local' || config.workers > 1)) {
    limitLog.warn('RATE_LIMIT_STORE=memory with several processes: each counts its own, so N processes allow N times the rates; use redis or postgres');
  }
  const bans = new BanList(store, hub, clock, (err) => log.error({ err }, 'ban list reload failed'));
  const edge = new HttpEdge({
    headersTimeoutMs: config.httpHeadersTimeoutMs, requestTimeoutMs: config.httpRequestTimeoutMs,
    maxUnauthConnectionsPerAddress: config.maxUnauthConnectionsPerAddress, isExempt: (a) => limits.isExempt(a),
    trustedProxies: config.trustedProxies, origins: new OriginPolicy(config.corsOrigins), log: log.child({ component: 'edge' }),
  });
  const runner = createJobRunner(config.verifyWorkers);
  const verifier = new MessageVerifier(runner, {
    clockSkewMs: config.clockSkewMs, maxDelegationMs: config.maxDelegationMs, delegationCacheSize: config.delegationCacheSize,
  });
  const committer = new GroupCommitter(store, config.commitBatchMax, metrics.commit);
  const proxySenderRef: { get: () => string | null } = { get: () => null };
  const messages = new MessageService({ store, committer, verifier, relations, push: hub, clock, requireName: config.requireName, maxPending: config.maxPendingSends,
    bans, limits, allowDevPlaintext: config.allowDevPlaintext, proxySender: () => proxySenderRef.get(),
  });
  if (config.allowDevPlaintext) log.warn('ALLOW_DEV_PLAINTEXT is on: development plaintext messages are accepted (readable by anyone, the archive included)');
  const chats = new ChatService(store, relations, hub, clock);
  // Every role or membership change, from any face or from the chain, goes through one hook.
  // With a bus the notices reach every process (Hub.invalidate); with BUS=local, this process only.
  const accessEvents = overrides.accessEvents ?? new HubAccessEvents(hub, (err) => log.error({ err }, 'access change listener failed'));
  const unwatchRelations = relations.watchMembership?.((group, user) => accessEvents.changed(group, user));
  const social = new SocialService(store, relations, accessEvents);
  const auth = new AuthService(store, verifier, hub, clock, {
    tokenTtlMs: config.tokenTtlMs, nonceTtlMs: config.nonceTtlMs, maxDelegationMs: config.maxDelegationMs, siweDomains: config.siweDomains,
  }, bans);
  if (config.requireName && !relations.available) {
    log.warn('REQUIRE_NAME is on but no relation reader (chain) is configured: name admission cannot be enforced');
  }
  log.info({ backend, keccak: keccakBackend, verifyThreads: runner.threads }, 'signature recovery ready');

  // The MLS Delivery Service's directory and group records (docs/e2ee.md section 5).
  const mls = new MlsService({
    store, push: hub, clock, recoverText: (t, sig) => verifier.recoverText(t, sig), maxDelegationMs: config.maxDelegationMs,
    maxDevices: config.mlsMaxDevices, lowWater: config.mlsKeyPackagesLow, proxyName: config.mlsExternalSenderName || config.filesPublicUrl || 'relation-im',
    limitClaim: (user, address) => limits.take('mlsClaim', user, address),
    resolveChat: async (user, chatId) => (await chats.resolve(user, chatId)).cid,
    onGroupInfo: (cid) => { if (!isDmCid(cid)) watcher?.poke(cid); },
  });
  // The chain watcher (docs/e2ee.md section 6): the proxy, as each DAO group's external sender, proposes
  // the removal of a holder whose token left; its Relation ONE wrapper is signed by a key of the store's own.
  let proxyWallet: Wallet | null = null;
  const proxyWalletReady = (async () => {
    proxyWallet = new Wallet(await store.metaGetOrSet('mls_proxy_wallet', Wallet.createRandom().privateKey));
    return proxyWallet;
  })();
  proxyWalletReady.catch(() => undefined); // an unreachable store is reported by listen()
  proxySenderRef.get = () => proxyWallet?.address.toLowerCase() ?? null;
  const watcher: ChainWatcher | null = relations.available ? new ChainWatcher({
    store, relations, log: log.child({ component: 'mls-watcher' }), now: () => clock.now(),
    keys: () => mls.externalSenderKeys(), proxyKey: () => proxyWalletReady,
    submit: (m) => messages.submit(m),
    changed: (cid) => { messages.mlsEpochs.forget(cid); hub.invalidate('mls', cid); },
  }) : null;
  hub.onInvalidate((kind, key) => { if (kind === 'mls') messages.mlsEpochs.forget(key); });
  const unwatchMls = watcher ? relations.watchMembership?.((group) => watcher.poke(group)) : undefined;
  const routes = buildRoutes({
    auth, chats, social, log: log.child({ component: 'http' }), maxBodyBytes: config.maxBodyBytes, listMaxLimit: config.listMaxLimit,
    epoch, health: () => ({ ok: true, connections: hub.connections, recovery: backend, keccak: keccakBackend, verifyThreads: runner.threads }),
    limits, bodyTimeoutMs: config.httpBodyTimeoutMs,
    mls: mlsRoutes({ auth, mls, maxBodyBytes: config.maxBodyBytes, bodyTimeoutMs: config.httpBodyTimeoutMs }),
    extra: adminRoutes({ bans, operatorToken: config.operatorToken, maxBodyBytes: config.maxBodyBytes, bodyTimeoutMs: config.httpBodyTimeoutMs, log: log.child({ component: 'admin' }) }),
  });
  // The MsgPack face (SPEC section 6): SeaKing decides, Relay stores, the Gateway connects and fans out.
  let boundPort = config.port;
  const localFiles = overrides.files || config.filesStore !== 'local' ? null : new LocalObjectStore({
    dataDir: config.dataDir, secret: config.filesSecret, urlTtlS: config.filesUrlTtlS,
    baseUrl: () => config.filesPublicUrl || `http://${config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host}:${boundPort}`,
  }, clock);
  const files: ObjectStore = overrides.files ?? localFiles ?? new S3ObjectStore({
    endpoint: config.s3Endpoint, region: config.s3Region, bucket: config.s3Bucket, accessKeyId: config.s3AccessKeyId,
    secretAccessKey: config.s3SecretAccessKey, forcePathStyle: config.s3ForcePathStyle, urlTtlS: config.filesUrlTtlS,
  }, clock);
  const seaking = new SeaKing(auth, relations, store, hub, accessEvents);
  const access = new AccessCache(seaking, config.gatewayCacheMs, accessEvents);
  const relay = new Relay(store, committer);
  const wire = new ImWire(files);
  const im = new ImService({
    relay, store, files, push: hub, wire, clock, access: (u, c) => access.get(u, c), audience: (cid) => seaking.audience(cid),
    revokeWindowMs: config.revokeWindowS * 1000, maxPending: config.maxPendingSends,
  });
  const handlers = new ImHandlers(im, seaking, files, wire, {
    maxTextBytes: config.imMaxTextBytes, filesMaxBytes: config.filesMaxBytes, listMaxLimit: config.listMaxLimit, maxPresence: 1000,
    sends: metrics.sends('im'),
  });
  const onAuthenticated = (socket: import('node:stream').Duplex | undefined): void => edge.cap.authenticated(socket as import('node:net').Socket | undefined);
  const imGateway = new ImGateway({ seaking, access, handlers, im, wire, hub, epoch, log: log.child({ component: 'im' }), limits, bans }, {
    maxFrameBytes: config.imMaxFrameBytes, limits: { maxDepth: config.imMaxDepth, maxElements: config.imMaxElements },
    heartbeatMs: config.wsHeartbeatMs, authTimeoutMs: config.wsAuthTimeoutMs, maxBufferedBytes: config.wsMaxBufferedBytes,
    maxFramesPerSec: config.wsMaxFramesPerSec, resumeMaxPerChat: config.resumeMaxPerChat, maxInflight: 256,
    slowConsumerGraceMs: config.wsSlowConsumerGraceMs, onAuthenticated, meter: metrics.socket('im'),
  });

  const web = overrides.webDir === null ? null : (overrides.webDir ?? findWebDist());
  const webHttp = web ? webStatic(web) : null;
  const demoHttp = overrides.demo ? devDemo(overrides.demo) : null;
  const ready = readiness({ store, bus: () => hub.status() });
  const sendLog = log.child({ component: 'send' });
  const send = fastSend(messages, config.maxBodyBytes, sendLog, limits, config.httpBodyTimeoutMs, metrics.sends('rest'));
  const metricsHttp = config.metricsEnabled ? metricsRoute(metrics, config.metricsToken, log.child({ component: 'metrics' })) : null;
  // Node checks the header and request timeouts on this interval (its default, 30 s, would let a
  // slowloris client hold a connection far past HTTP_HEADERS_TIMEOUT_MS).
  const checkEvery = Math.max(50, Math.min(1000, Math.floor(config.httpHeadersTimeoutMs / 4)));
  const server = createServer({ connectionsCheckingInterval: checkEvery }, edge.request((req, res) => {
    // Every answer carries the request's id, and so does every log line about it (a child logger, made when needed).
    const reqId = requestId(req.headers['x-request-id']);
    res.setHeader('x-request-id', reqId);
    (req as { id?: string }).id = reqId;
    if (req.method === 'POST' && (req.url === '/message/send' || req.url?.startsWith('/message/send?'))) send(req, res, () => sendLog.child({ reqId }));
    else if (req.url === '/ready' && req.method === 'GET') ready(req, res);
    else if (metricsHttp && req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) metricsHttp(req, res);
    else if (archiveHttp && req.url?.startsWith('/archive/')) archiveHttp(req, res);
    else if (localFiles && req.url?.startsWith('/files/') && localFiles.handle(req, res)) return;
    else if (demoHttp?.(req, res) || webHttp?.(req, res)) return;
    else routes(req, res);
  }));
  server.keepAliveTimeout = 65_000;
  edge.attach(server);
  const ws = new JsonWsGateway({ auth, chats, messages, hub, epoch, log: log.child({ component: 'ws' }), limits, sends: metrics.sends('ws') }, {
    maxFrameBytes: config.maxBodyBytes, heartbeatMs: config.wsHeartbeatMs, authTimeoutMs: config.wsAuthTimeoutMs,
    maxBufferedBytes: config.wsMaxBufferedBytes, maxFramesPerSec: config.wsMaxFramesPerSec, resumeMaxPerChat: config.resumeMaxPerChat,
    slowConsumerGraceMs: config.wsSlowConsumerGraceMs, onAuthenticated, meter: metrics.socket('ws'),
  });
  const count = (conns: Iterable<{ user: string }>): { open: number; authenticated: number } => {
    let open = 0;
    let authenticated = 0;
    for (const c of conns) {
      open++;
      if (c.user !== '') authenticated++;
    }
    return { open, authenticated };
  };
  metrics.connectionsFrom(() => ({ ws: count(ws.connections), im: count(imGateway.connections) }));
  server.on('upgrade', edge.upgrade((pathname, req, socket, head) => {
    if (pathname === '/ws') ws.handleUpgrade(req, socket, head);
    else if (pathname === '/im') imGateway.handleUpgrade(req, socket, head);
    else writeRawError(socket, 'NOT_FOUND');
  }));

  const listenOn = (): Promise<number> => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      boundPort = (server.address() as AddressInfo).port;
      resolve(boundPort);
    });
  });

  let closed = false;
  return {
    server, store, relations, messages, chats, auth, hub, metrics, im, seaking, files, bans,
    // The store opens first: a database that cannot be reached, or a schema newer than this build,
    // rejects here with what is wrong, before any client is accepted. Then the bus: a process that
    // cannot reach it at start says so and does not serve.
    listen: async () => {
      storeEpoch = await store.epoch();
      await hub.start();
      await bans.load();
      await limits.start();
      return listenOn();
    },
    async close() {
      if (closed) return;
      closed = true;
      await messages.stop();
      unwatchRelations?.();
      unwatchMls?.();
      im.stop();
      ws.close();
      imGateway.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        edge.close();
      });
      await committer.drain();
      if (!overrides.hub) await hub.close();
      await (await archive?.catch(() => null))?.close();
      await verifier.close();
      await limits.close();
      if (!overrides.files) await files.close();
      if (!overrides.store) await store.close();
    },
  };
}
