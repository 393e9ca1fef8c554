// The one composition root: startServer(config) wires config, store, relay core, identity service
// and transport, and returns a handle whose close() undoes it. The CLI and every test start the
// server here. Each service gets its collaborators when it is built; nothing is filled in later.

import type { Logger } from 'pino';
import { CLOSE } from '../proto/index.js';
import { type Config, type ConfigInput, loadConfig } from './config/schema.js';
import { tlsEnabled, tlsExpiryWarning } from './config/tls.js';
import { trustedProxyMatcher } from './config/trusted-proxies.js';
import { createVerifier, type Ed25519Verifier } from './crypto/verifier.js';
import { loadOrCreateProviderKey } from './crypto/provider-key.js';
import { type AttachmentService, openAttachments } from './attachments/index.js';
import { buildConsoleData } from './console/wiring.js';
import { AuditTrail } from './identity/audit.js';
import { MAX_PENDING_PER_TENANT, Registrations } from './identity/registrations.js';
import { IdentityRoutes } from './identity/routes.js';
import { SigningKeys } from './identity/signing-keys.js';
import { StatusPolls } from './identity/status-polls.js';
import { Tokens } from './identity/tokens.js';
import { type DataDirLock, openDataDir, securePrivateFiles } from './ops/data-dir.js';
import { type HealthInputs, health, ready } from './ops/discovery.js';
import { InFlight } from './ops/in-flight.js';
import { createLogger, flushLogs } from './ops/logger.js';
import { metricsEndpoint, registerMetrics } from './ops/metrics.js';
import { Telemetry } from './ops/telemetry.js';
import { AdminView } from './relay/admin.js';
import { AdminActions } from './relay/admin-actions.js';
import { Agents } from './relay/agents.js';
import type { RelayContext } from './relay/context.js';
import { Directory } from './relay/directory.js';
import { IdentityLink } from './relay/identity-link.js';
import { Inbox } from './relay/inbox.js';
import { Keys } from './relay/keys.js';
import { Push } from './relay/push.js';
import { RateLimits } from './relay/ratelimit.js';
import { Receipts } from './relay/receipts.js';
import { type AttachmentChecks, MessageRouter } from './relay/route.js';
import { AbuseCounters } from './relay/abuse.js';
import { Suspensions } from './relay/suspension.js';
import type { ClusterPresence } from './relay/presence.js';
import { Sessions } from './relay/sessions.js';
import { WsGateway } from './relay/ws-gateway.js';
import { Webhooks } from './relay/webhooks.js';
import type { OutboundEngine } from './outbound/index.js';
import { buildOutbound, type OutboundOptions } from './outbound-wiring.js';
import { buildRemote, connectRemote, type PeersDoc, remoteInbound } from './remote-wiring.js';
import { registerPeerMetrics } from './ops/peer-metrics.js';
import { ForeignInbox } from './relay/foreign.js';
import type { MeshInbound } from './relay/mesh/index.js';
import type { FederationInbound } from './relay/federation/index.js';
import { LmdbStore } from './store/lmdb.js';
import { openClusterStore } from './cluster-wiring.js';
import { followCluster } from './relay/cluster-follow.js';
import { type ConsoleFeatures, ConsoleLogin } from './console/login.js';
import { ConsoleSessions } from './console/sessions.js';
import { ConsoleFiles } from './console/static.js';
import { startTtlSweeper } from './store/sweeper.js';
import type { Store } from './store/types.js';
import { buildApi } from './transport/http/api.js';
import { attachHttp } from './transport/http/respond.js';
import { HttpServer, type TlsFiles } from './transport/listen.js';
import { attachWebSockets } from './transport/ws/attach.js';

const SHUTDOWN_DRAIN_MS = 10_000;
/** How often sockets are checked for idleness, slow consumption and protocol pings. */
const SWEEP_INTERVAL_MS = 1000;

export interface ServerHandle {
  /** e.g. `http://127.0.0.1:23000` (`https://` with AMP_TLS_CERT) */
  readonly url: string;
  /** e.g. `ws://127.0.0.1:23000/v1/ws` (`wss://` with AMP_TLS_CERT) */
  readonly wsUrl: string;
  readonly port: number;
  readonly config: Config;
  readonly logger: Logger;
  /** Stop accepting, close sessions with the reconnect code, flush the store. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions extends ConfigInput, OutboundOptions {
  logger?: Logger;
  /** The admin console's built files (index.html, assets/); default `<repo>/dist/console`. */
  consoleDir?: string;
  /** Environment to read AMP_* variables from; tests pass {} to stay hermetic. Default: none. */
  env?: Record<string, string | undefined>;
}

/** The AMP relay core: sessions and push, routing, the inbox, agents. */
function buildRelay(
  ctx: RelayContext,
  store: Store,
  verifier: Ed25519Verifier,
  gate?: AttachmentChecks,
  presence?: ClusterPresence,
) {
  const stores = { queue: store, directory: store, records: store };
  const sessions = new Sessions(ctx.config, presence);
  const receipts = new Receipts(stores, sessions, ctx.logger);
  const push = new Push(ctx.config, store, sessions, receipts, ctx.observer);
  const agents = new Agents(ctx, store, sessions, verifier);
  const abuse = new AbuseCounters();
  const webhookDeps = { ...stores, sessions, receipts, logger: ctx.logger, observer: ctx.observer };
  const webhooks = new Webhooks({ ...webhookDeps, allow: agents.webhookAllow });
  const router = new MessageRouter(ctx, agents, stores, push, receipts, abuse, gate, webhooks);
  const foreign = new ForeignInbox(ctx, agents, stores, push, webhooks);
  const inbox = new Inbox(store, receipts, ctx.observer, webhooks);
  const link = new IdentityLink(agents, store, sessions, ctx.logger, webhooks);
  const actions = new AdminActions(store);
  const suspensions = new Suspensions(ctx, agents, store, sessions, webhooks, actions);
  return { sessions, receipts, push, agents, router, foreign, inbox, link, abuse, suspensions, webhooks, actions };
}

/** The identity service (AID); its registrations tell `link` when the AMP agent must follow. */
async function buildIdentity(
  ctx: RelayContext,
  store: Store,
  verifier: Ed25519Verifier,
  link: IdentityLink,
  publicBase: () => string,
) {
  const { config } = ctx;
  const rotationDays = config.aidKeyRotationDays;
  const signingKeys = await SigningKeys.load(config.dataDir, config.aidJwtAlg, { rotationDays });
  const identity = new IdentityRoutes(signingKeys, store, publicBase, config.aidIssuerAliases, ctx.logger);
  const audit = new AuditTrail(store);
  const maxPending = ctx.limits.enabled ? MAX_PENDING_PER_TENANT : Number.POSITIVE_INFINITY;
  const issuerOf = (t: string) => identity.issuer(t);
  const registrations = new Registrations(store, audit, issuerOf, publicBase, link, maxPending);
  const polls = new StatusPolls(registrations, verifier, issuerOf);
  const tokens = new Tokens(signingKeys, store, registrations, audit, verifier, ctx.limits);
  return { identity, audit, registrations, polls, tokens };
}

/** The socket sweep and the TTL sweep; returns what stops both. */
function startTimers(
  sessions: Sessions,
  store: Store,
  logger: Logger,
  outbound: OutboundEngine,
  admins: ConsoleSessions,
): () => void {
  const sweeper = setInterval(() => sessions.sweep(), SWEEP_INTERVAL_MS);
  sweeper.unref();
  const ttlSweeper = startTtlSweeper(store, logger, () => outbound.sweepExpired());
  admins.start();
  return () => {
    clearInterval(sweeper);
    ttlSweeper.stop();
    admins.stop();
  };
}

type ConsoleParts = ReturnType<typeof buildConsole>;

/**
 * What the console shows: held attachments when the capability is on; outbound queues when a mesh
 * or federation is configured (webhooks are every agent's to set, so they alone do not count).
 */
function consoleFeatures(files: AttachmentService | undefined, inbound: { mesh?: unknown; federation?: unknown }) {
  return { attachments: files !== undefined, outbound: Boolean(inbound.mesh || inbound.federation) };
}

/** The admin console: sign-in links checked by the identity service, sessions, the built page. */
function buildConsole(
  config: Config,
  store: Store,
  identity: IdentityRoutes,
  features: ConsoleFeatures,
  dir: string | undefined,
) {
  const sessions = new ConsoleSessions();
  const login = new ConsoleLogin({ check: (t) => identity.consoleLogin(t), records: store, sessions, features });
  const secure = tlsEnabled(config) || config.publicUrl.startsWith('https:');
  return { login, files: new ConsoleFiles(dir), secure };
}

function tlsFiles(c: Config): TlsFiles | undefined {
  if (!tlsEnabled(c)) return undefined;
  return { certFile: c.tlsCert, keyFile: c.tlsKey, passphrase: c.tlsKeyPassphrase || undefined };
}

/** `0.0.0.0` and `::` listen everywhere; URLs we print point at loopback then. */
function shownHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return '127.0.0.1';
  return host.includes(':') ? `[${host}]` : host;
}

export async function startServer(options: StartOptions = {}): Promise<ServerHandle> {
  const { logger: givenLogger, env, webhookPolicy, consoleDir, ...overrides } = options;
  const config = loadConfig({ env, overrides });
  const logger = givenLogger ?? createLogger(config.logLevel, config.logFormat);
  const expiring = tlsExpiryWarning(config);
  if (expiring) logger.warn({ event: 'tls_cert_expires_soon', cert: config.tlsCert }, expiring);
  // Refuses uWS's pure-JS fallback before anything is opened.
  const http = new HttpServer(tlsFiles(config));
  // Before the store opens: a second server on the same data dir stops here.
  const lock = openDataDir(config.dataDir, logger);
  try {
    return await startOnDataDir(config, logger, http, lock, { webhookPolicy, consoleDir });
  } catch (e) {
    lock.release();
    throw e;
  }
}

/**
 * The verifier, telemetry, the store and the context every relay part shares. Cluster mode: the
 * NATS-backed store, opened (and the shared secrets adopted) before the keys are loaded.
 */
async function openCore(config: Config, logger: Logger) {
  const verifier = createVerifier(config.ed25519);
  const telemetry = new Telemetry(logger);
  const cluster = config.store === 'nats' ? await openClusterStore(config, telemetry, logger) : undefined;
  const store: Store = cluster ?? new LmdbStore({ dataDir: config.dataDir, observer: telemetry });
  const limits = new RateLimits(config);
  const providerKey = loadOrCreateProviderKey(config.dataDir);
  const knownProviders = [config.providerDomain, ...config.providerAliases];
  const ctx: RelayContext = {
    ...{ config, logger, limits, providerKey, knownProviders },
    ...{ startedAt: Date.now(), observer: telemetry },
  };
  return { verifier, telemetry, store, limits, ctx, cluster };
}

type Relay = ReturnType<typeof buildRelay>;
type Identity = Awaited<ReturnType<typeof buildIdentity>>;

/** The REST surface over the relay, the identity service and the attachments; their metrics. */
function buildRest(
  parts: {
    ctx: RelayContext;
    store: Store;
    relay: Relay;
    aid: Identity;
    telemetry: Telemetry;
    files?: AttachmentService;
    peers: () => PeersDoc;
    console: ConsoleParts;
    mesh?: MeshInbound;
    federation?: FederationInbound;
  },
  healthInputs: () => HealthInputs,
) {
  const { ctx, store, relay, aid, telemetry, files, peers, mesh } = parts;
  const consoleData = buildLiveAndAudit(parts, healthInputs);
  const { sessions, agents } = relay;
  const keys = new Keys(ctx, agents, store, sessions, aid.registrations);
  const directory = new Directory(ctx, agents, store, sessions, aid.registrations, relay.webhooks);
  const admin = new AdminView(agents, store, sessions, directory, relay.actions);
  registerMetrics(telemetry.registry, { ...relay, startedAt: ctx.startedAt, store, attachments: files?.attachments });
  registerPeerMetrics(telemetry.registry, peers);
  return buildApi({
    ctx,
    ...relay,
    keys,
    directory,
    admin,
    consoleData,
    identity: aid.identity,
    aid: { ...aid, agents, limits: ctx.limits, tokenEvents: telemetry },
    health: () => health(ctx, healthInputs()),
    ready: () => ready(healthInputs()),
    metrics: metricsEndpoint(telemetry.registry, ctx.config.metricsToken),
    attachments: files,
    peers,
    mesh,
    federation: parts.federation,
    console: parts.console,
  });
}

/** The console's live hub and audit view over the server's parts. */
function buildLiveAndAudit(
  parts: { ctx: RelayContext; store: Store; relay: Relay; aid: Identity; telemetry: Telemetry } & {
    mesh?: unknown;
    federation?: unknown;
  },
  healthInputs: () => HealthInputs,
) {
  const { ctx, store, relay, aid, telemetry } = parts;
  const kinds = [...(parts.mesh ? (['mesh'] as const) : []), ...(parts.federation ? (['federation'] as const) : [])];
  return buildConsoleData({
    ...{ sessions: relay.sessions, telemetry, push: relay.push, store, audit: aid.audit },
    health: () => health(ctx, healthInputs()).body as { status: string },
    ready: () => ready(healthInputs()).status === 200,
    outboundKinds: kinds,
    onError: (err) => ctx.logger.error({ err }, 'console live snapshot failed'),
  });
}

/** What /health and /ready read, at each request. */
function healthInputsOf(
  store: Store,
  sessions: Relay['sessions'],
  remote: { mesh?: { status(): HealthInputs['mesh'] } },
  shuttingDown: () => boolean,
): () => HealthInputs {
  return () => ({
    shuttingDown: shuttingDown(),
    storeHealthy: store.healthy(),
    writes: store.writeState(),
    agentsOnline: sessions.onlineAgents(),
    mesh: remote.mesh?.status(),
  });
}

/** The rest of startServer, once the data dir is ours; close() gives it back. */
async function startOnDataDir(
  config: Config,
  logger: Logger,
  http: HttpServer,
  lock: DataDirLock,
  outboundOpts: OutboundOptions & { consoleDir?: string },
): Promise<ServerHandle> {
  const { verifier, telemetry, store, limits, ctx, cluster } = await openCore(config, logger);
  let listeningPort = config.port;
  const publicBase = () => config.publicUrl.replace(/\/+$/, '') || `${http.scheme}://localhost:${listeningPort}`;
  const files = await openAttachments(ctx, store, () => `${publicBase()}/api/v1`);
  const relay = buildRelay(ctx, store, verifier, files?.gate, cluster?.presence);
  const unfollow = cluster ? followCluster(cluster, relay, store) : () => {};
  const remote = buildRemote(ctx, { verifier, store, relay });
  const outbound = buildOutbound(store, relay.webhooks, { registry: telemetry.registry, logger }, outboundOpts, remote);
  const peers = connectRemote(remote, outbound, relay, verifier);
  const aid = await buildIdentity(ctx, store, verifier, relay.link, publicBase);
  securePrivateFiles(lock.dir, logger); // every file now exists: narrow those left by older versions

  let shuttingDown = false;
  const isClosing = () => shuttingDown;
  const inFlight = new InFlight();
  const sessionDeps = { ...relay, config, logger, limits, inFlight };
  const buffers = { softBytes: config.wsSoftBuffer, hardBytes: config.wsHardBuffer };
  const gateway = new WsGateway(sessionDeps, isClosing);
  attachWebSockets(http.app, { gateway, logger, corsOrigin: config.corsOrigin, buffers });
  const healthInputs = healthInputsOf(store, relay.sessions, remote, () => shuttingDown);
  const admins = buildConsole(config, store, aid.identity, consoleFeatures(files, remote), outboundOpts.consoleDir);
  const rest = { ctx, store, relay, aid, telemetry, files, peers, console: admins, ...remoteInbound(remote) };
  const api = buildRest(rest, healthInputs);
  const httpHandle = attachHttp(http.app, api, {
    corsOrigin: config.corsOrigin,
    logger,
    inFlight,
    isClosing,
    trustsProxy: trustedProxyMatcher(config.trustedProxies),
    observer: telemetry,
  });

  const stopTimers = startTimers(relay.sessions, store, logger, outbound, admins.login.sessions);
  outbound.start();
  try {
    listeningPort = await http.listen(config.host, config.port);
  } catch (e) {
    stopTimers();
    unfollow();
    await outbound.close();
    await files?.close();
    await store.close();
    throw e;
  }
  const url = `${http.scheme}://${shownHost(config.host)}:${listeningPort}`;
  logger.info({ url, dataDir: config.dataDir, provider: config.providerDomain, ed25519: verifier.name }, 'listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      stopTimers();
      httpHandle.streams.closeAll(); // the console's live feeds: not requests to wait for
      remote.mesh?.close();
      http.stopAccepting();
      // Requests already in the relay finish (their writes commit) before the store closes.
      await inFlight.drain(SHUTDOWN_DRAIN_MS);
      unfollow();
      relay.sessions.closeAll(CLOSE.SERVER_SHUTDOWN, 'server_shutdown');
      http.closeAll();
      await outbound.close();
      await files?.close();
      await store.close();
      lock.release();
      logger.info('stopped');
      await flushLogs(logger);
    })());

  const wsUrl = `${http.scheme === 'https' ? 'wss' : 'ws'}://${shownHost(config.host)}:${listeningPort}/v1/ws`;
  return { url, wsUrl, port: listeningPort, config, logger, close };
}
