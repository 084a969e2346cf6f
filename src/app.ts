import { createServer, type Server } from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { createArchive, type ArchiveComponent } from './archive/create.js';
import { archiveRoutes } from './archive/routes.js';
import { AuthService } from './auth/auth-service.js';
import { ChatService } from './chat/chat-service.js';
import { GroupCommitter } from './chat/committer.js';
import { MessageService } from './chat/message-service.js';
import { SocialService } from './chat/social-service.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/config.js';
import { backend, keccakBackend } from './identity/recover-core.js';
import { MessageVerifier } from './identity/verifier.js';
import { createJobRunner } from './identity/worker-pool.js';
import type { Logger } from './log/logger.js';
import { createPushHub, type PushHub } from './push/create.js';
import { readiness } from './transport/http/ready.js';
import { dmParticipants } from './chat/ids.js';
import { groupAudience } from './chat/membership.js';
import { Face } from './store/port.js';
import { NoRelations } from './relations/none.js';
import type { RelationReader } from './relations/port.js';
import type { Store } from './store/port.js';
import { PostgresStore } from './store/postgres/postgres-store.js';
import { SqliteStore } from './store/sqlite/sqlite-store.js';
import { fastSend } from './transport/http/fast-send.js';
import { buildRoutes } from './transport/http/routes.js';
import { JsonWsGateway } from './transport/ws/json-ws.js';
import { LocalObjectStore } from './files/local.js';
import type { ObjectStore } from './files/port.js';
import { S3ObjectStore } from './files/s3.js';
import { AccessCache } from './gateway/access-cache.js';
import { ImGateway } from './gateway/im-gateway.js';
import { ImKind, ImWire } from './im/events.js';
import { ImHandlers } from './im/handlers.js';
import { ImService } from './im/im-service.js';
import { Relay } from './relay/relay.js';
import { SeaKing } from './seaking/seaking.js';

export interface AppOverrides {
  clock?: Clock;
  store?: Store;
  /** The relation reader (chain). Whoever creates it closes it; without one, no chain: NoRelations. */
  relations?: RelationReader;
  files?: ObjectStore;
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
  im: ImService;
  seaking: SeaKing;
  files: ObjectStore;
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
    ? new PostgresStore({ url: config.databaseUrl, poolMax: config.pgPoolMax, onIdleError: (err) => log.warn({ err }, 'PostgreSQL connection lost; the pool reconnects') })
    : new SqliteStore({ file: storeFile, synchronous: config.sqliteSynchronous }));
  // Known before the server listens (listen() waits for it), announced to clients from then on.
  let storeEpoch = '';
  const epoch = (): string => storeEpoch;
  // The archiver keeps its state beside the messages in the same SQLite file; it starts in the
  // background (the embedded gateway takes a moment) and a failure to start it stops no message: the
  // backlog stays in the store until an archiver runs.
  const archive: Promise<ArchiveComponent> | null = config.archiveEnabled && !overrides.store && config.store === 'sqlite'
    ? createArchive(config, storeFile, log, { clock }) : null;
  archive?.then((a) => a.archiver.start(), (err: unknown) => log.error({ err }, 'archive failed to start'));
  const archiveHttp = archive
    ? archiveRoutes({ status: async () => (await archive).archiver.status(), log: log.child({ component: 'archive' }) })
    : null;
  const relations = overrides.relations ?? new NoRelations();
  if (config.chain !== 'none' && !overrides.relations) {
    throw new Error(`CHAIN=${config.chain} needs a relation reader: start it with startChainRelations(config) and pass it in`);
  }
  // The push hub: this process's connections, and with BUS=nats|redis the doorbell to every other
  // process. It fills gaps from the store, so it is told who receives an event and how /im encodes a file.
  const hub = overrides.hub ?? createPushHub(config, log, {
    store,
    recipients: async (e) => {
      if (e.onlyFor !== null) return [e.onlyFor];
      const p = dmParticipants(e.cid);
      if (p) return p[0] === p[1] ? [p[0]] : p;
      return relations.available ? groupAudience(relations, e.cid) : [];
    },
    render: async (e) => (e.face === Face.IM && e.kind === ImKind.FILE ? { imFrame: await wire.pushFrameOf(e) } : {}),
  });
  const runner = createJobRunner(config.verifyWorkers);
  const verifier = new MessageVerifier(runner, {
    clockSkewMs: config.clockSkewMs, maxDelegationMs: config.maxDelegationMs, delegationCacheSize: config.delegationCacheSize,
  });
  const committer = new GroupCommitter(store, config.commitBatchMax);
  const messages = new MessageService({ store, committer, verifier, relations, push: hub, clock, requireName: config.requireName, maxPending: config.maxPendingSends,
  });
  const chats = new ChatService(store, relations, hub, clock);
  const social = new SocialService(store, relations);
  const auth = new AuthService(store, verifier, hub, clock, {
    tokenTtlMs: config.tokenTtlMs, nonceTtlMs: config.nonceTtlMs, maxDelegationMs: config.maxDelegationMs, siweDomains: config.siweDomains,
  });
  if (config.requireName && !relations.available) {
    log.warn('REQUIRE_NAME is on but no relation reader (chain) is configured: name admission cannot be enforced');
  }
  log.info({ backend, keccak: keccakBackend, verifyThreads: runner.threads }, 'signature recovery ready');

  const routes = buildRoutes({
    auth, chats, social, log: log.child({ component: 'http' }), maxBodyBytes: config.maxBodyBytes, listMaxLimit: config.listMaxLimit,
    epoch, health: () => ({ ok: true, connections: hub.connections, recovery: backend, keccak: keccakBackend, verifyThreads: runner.threads }),
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
  const seaking = new SeaKing(auth, relations, store, hub);
  const access = new AccessCache(seaking, config.gatewayCacheMs);
  const relay = new Relay(store, committer);
  const wire = new ImWire(files);
  const im = new ImService({
    relay, store, files, push: hub, wire, clock, access: (u, c) => access.get(u, c), audience: (cid) => seaking.audience(cid),
    revokeWindowMs: config.revokeWindowS * 1000, maxPending: config.maxPendingSends,
  });
  const handlers = new ImHandlers(im, seaking, files, wire, {
    maxTextBytes: config.imMaxTextBytes, filesMaxBytes: config.filesMaxBytes, listMaxLimit: config.listMaxLimit, maxPresence: 1000,
  }, () => hub.invalidate('access', '*'));
  // Role changes drop the access cache on every process (Hub.invalidate crosses the bus).
  hub.onInvalidate((kind) => { if (kind === 'access' || kind === '*') access.clear(); });
  const imGateway = new ImGateway({ seaking, access, handlers, im, wire, hub, epoch, log: log.child({ component: 'im' }) }, {
    maxFrameBytes: config.imMaxFrameBytes, limits: { maxDepth: config.imMaxDepth, maxElements: config.imMaxElements },
    heartbeatMs: config.wsHeartbeatMs, authTimeoutMs: config.wsAuthTimeoutMs, maxBufferedBytes: config.wsMaxBufferedBytes,
    maxFramesPerSec: config.wsMaxFramesPerSec, resumeMaxPerChat: config.resumeMaxPerChat, maxInflight: 256,
  });

  const ready = readiness({ store, bus: () => hub.status() });
  const send = fastSend(messages, config.maxBodyBytes, log.child({ component: 'send' }));
  const server = createServer((req, res) => {
    if (req.method === 'POST' && (req.url === '/message/send' || req.url?.startsWith('/message/send?'))) send(req, res);
    else if (req.url === '/ready' && req.method === 'GET') ready(req, res);
    else if (archiveHttp && req.url?.startsWith('/archive/')) archiveHttp(req, res);
    else if (localFiles && req.url?.startsWith('/files/') && localFiles.handle(req, res)) return;
    else routes(req, res);
  });
  server.keepAliveTimeout = 65_000;
  const ws = new JsonWsGateway({ auth, chats, messages, hub, epoch, log: log.child({ component: 'ws' }) }, {
    maxFrameBytes: config.maxBodyBytes, heartbeatMs: config.wsHeartbeatMs, authTimeoutMs: config.wsAuthTimeoutMs,
    maxBufferedBytes: config.wsMaxBufferedBytes, maxFramesPerSec: config.wsMaxFramesPerSec, resumeMaxPerChat: config.resumeMaxPerChat,
  });
  server.on('upgrade', (req, socket, head) => {
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname === '/ws') ws.handleUpgrade(req, socket, head);
    else if (pathname === '/im') imGateway.handleUpgrade(req, socket, head);
    else {
      socket.write('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      socket.destroy();
    }
  });

  const listenOn = (): Promise<number> => new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => {
      boundPort = (server.address() as AddressInfo).port;
      resolve(boundPort);
    });
  });

  let closed = false;
  return {
    server, store, relations, messages, chats, auth, hub, im, seaking, files,
    // The store opens first: a database that cannot be reached, or a schema newer than this build,
    // rejects here with what is wrong, before any client is accepted. Then the bus: a process that
    // cannot reach it at start says so and does not serve.
    listen: async () => {
      storeEpoch = await store.epoch();
      await hub.start();
      return listenOn();
    },
    async close() {
      if (closed) return;
      closed = true;
      await messages.stop();
      im.stop();
      ws.close();
      imGateway.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await committer.drain();
      if (!overrides.hub) await hub.close();
      await (await archive?.catch(() => null))?.close();
      await verifier.close();
      if (!overrides.files) await files.close();
      if (!overrides.store) await store.close();
    },
  };
}
