// The one composition root: startServer(config) wires config, store, relay core and transport,
// and returns a handle whose close() undoes it. The CLI and every test start the server here.

import type { Logger } from 'pino';
import { loadConfig, type Config, type ConfigInput } from './config/schema.js';
import { createVerifier } from './crypto/verifier.js';
import { loadOrCreateProviderKey } from './crypto/provider-key.js';
import { createLogger } from './ops/logger.js';
import { Agents } from './relay/agents.js';
import type { RelayContext } from './relay/context.js';
import { Presence } from './relay/presence.js';
import { AuditTrail } from './identity/audit.js';
import { MAX_PENDING_PER_TENANT, Registrations } from './identity/registrations.js';
import { IdentityRoutes } from './identity/routes.js';
import { Tokens } from './identity/tokens.js';
import { SigningKeys } from './identity/signing-keys.js';
import { Directory } from './relay/directory.js';
import { Inbox } from './relay/inbox.js';
import { Keys } from './relay/keys.js';
import { RateLimits } from './relay/ratelimit.js';
import { Receipts } from './relay/receipts.js';
import { MessageRouter } from './relay/route.js';
import { attachWebSockets } from './transport/ws/attach.js';
import { LmdbStore } from './store/lmdb.js';
import { startTtlSweeper } from './store/sweeper.js';
import { buildApi } from './transport/http/api.js';
import { InFlight, attachHttp } from './transport/http/respond.js';
import { loadUws } from './transport/uws.js';
import { CLOSE } from '../proto/index.js';

const SHUTDOWN_DRAIN_MS = 10_000;
/** How often sockets are checked for idleness, slow consumption and protocol pings. */
const SWEEP_INTERVAL_MS = 1000;

export interface ServerHandle {
  /** e.g. `http://127.0.0.1:23000` */
  readonly url: string;
  /** e.g. `ws://127.0.0.1:23000/v1/ws` */
  readonly wsUrl: string;
  readonly port: number;
  readonly config: Config;
  readonly logger: Logger;
  /** Stop accepting, close sessions with the reconnect code, flush the store. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions extends ConfigInput {
  logger?: Logger;
  /** Environment to read AMP_* variables from; tests pass {} to stay hermetic. Default: none. */
  env?: Record<string, string | undefined>;
}

export async function startServer(options: StartOptions = {}): Promise<ServerHandle> {
  const { logger: givenLogger, env, ...overrides } = options;
  const config = loadConfig({ env, overrides });
  const logger = givenLogger ?? createLogger(config.logLevel);
  const uws = loadUws();
  const verifier = createVerifier(config.ed25519);

  const store = new LmdbStore({ dataDir: config.dataDir });
  const presence = new Presence(store, config);
  const ctx: RelayContext = {
    config,
    store,
    logger,
    presence,
    providerKey: loadOrCreateProviderKey(config.dataDir),
    knownProviders: [config.providerDomain, ...config.providerAliases],
    limits: new RateLimits(config),
    startedAt: Date.now(),
    lifecycle: { agentDeregistered: async () => {}, keypairRotated: async () => {}, keyClaimedByOther: () => false },
  };
  const agents = new Agents(ctx, verifier);
  const router = new MessageRouter(ctx, agents);
  const receipts = new Receipts(ctx);
  const keys = new Keys(ctx, agents);
  const directory = new Directory(ctx, agents);
  const inbox = new Inbox(ctx, receipts);
  presence.onHandOver = (id, method) => receipts.handedOver(id, method);
  presence.onConnected = (session) => receipts.flush(session);
  let shuttingDown = false;
  const isClosing = () => shuttingDown;

  const signingKeys = await SigningKeys.load(config.dataDir, config.aidJwtAlg, {
    rotationDays: config.aidKeyRotationDays,
  });
  let listeningPort = config.port;
  const publicBase = () => config.publicUrl.replace(/\/+$/, '') || `http://localhost:${listeningPort}`;
  const identity = new IdentityRoutes(signingKeys, store, publicBase, config.aidIssuerAliases);
  const audit = new AuditTrail(store);
  const registrations = new Registrations(
    store,
    audit,
    verifier,
    (t) => identity.issuer(t),
    publicBase,
    ctx.limits.enabled ? MAX_PENDING_PER_TENANT : Infinity,
  );
  const tokens = new Tokens(signingKeys, store, registrations, audit, verifier, ctx.limits);
  // The coupling: approval lets a pending AMP agent route; suspension stops its messaging.
  // An approval or reactivation lifts a pending or AID-imposed suspended status; deleting a
  // registration leaves the agent as it is (a suspended one stays so until a new approval).
  registrations.onTransition = async (reg, action) => {
    const agentId = reg.amp_agent_id;
    if (!agentId || !store.getAgent(agentId)) return;
    await agents.serialized(agentId, async () => {
      const a = store.getAgent(agentId);
      if (!a) return; // deregistered meanwhile: nothing to follow
      const lift =
        (action === 'approve' || action === 'reactivate') && (a.status === 'pending' || a.status === 'suspended');
      const next = lift ? 'active' : action === 'suspend' ? 'suspended' : a.status;
      if (next === a.status) return;
      await store.putAgent({ ...a, status: next });
      if (next === 'suspended') presence.closeAgent(a.id, CLOSE.AUTH_FAILED, 'agent_suspended');
      logger.info(
        { event: 'amp_agent_status', agent: a.id, status: next, cause: `aid_${action}` },
        'agent status follows its identity registration',
      );
    });
  };

  ctx.lifecycle.agentDeregistered = (agent) => registrations.followAmpDeregistration(agent);
  ctx.lifecycle.keypairRotated = (before, after) => registrations.followAmpKeyRotation(before, after);
  ctx.lifecycle.keyClaimedByOther = (agent, fingerprint) => registrations.keyClaimedByOther(agent, fingerprint);

  const app = uws.App();
  const inFlight = new InFlight();
  attachWebSockets(app, {
    config,
    logger,
    store,
    agents,
    router,
    inbox,
    presence,
    inFlight,
    isClosing,
    limits: ctx.limits,
  });
  attachHttp(
    app,
    buildApi({
      ctx,
      agents,
      router,
      inbox,
      receipts,
      keys,
      directory,
      identity,
      aid: { identity, registrations, audit, agents, tokens, limits: ctx.limits },
      isShuttingDown: isClosing,
    }),
    {
      corsOrigin: config.corsOrigin,
      logger,
      inFlight,
      isClosing,
    },
  );
  const sweeper = setInterval(() => presence.sweep(), SWEEP_INTERVAL_MS);
  sweeper.unref();
  const ttlSweeper = startTtlSweeper(store, logger);

  const listenSocket = await new Promise<unknown>((resolve, reject) => {
    app.listen(config.host, config.port, (token) => {
      if (token) resolve(token);
      else reject(new Error(`cannot listen on ${config.host}:${config.port} (address in use or not available)`));
    });
  }).catch(async (e) => {
    await store.close();
    throw e;
  });
  const port = uws.us_socket_local_port(listenSocket as never);
  listeningPort = port;
  const shownHost =
    config.host === '0.0.0.0' || config.host === '::'
      ? '127.0.0.1'
      : config.host.includes(':')
        ? `[${config.host}]`
        : config.host;
  const url = `http://${shownHost}:${port}`;
  logger.info({ url, dataDir: config.dataDir, provider: config.providerDomain, ed25519: verifier.name }, 'listening');

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      clearInterval(sweeper);
      ttlSweeper.stop();
      uws.us_listen_socket_close(listenSocket as never);
      // Requests already in the relay finish (their writes commit) before the store closes.
      await inFlight.drain(SHUTDOWN_DRAIN_MS);
      presence.closeAll(CLOSE.SERVER_SHUTDOWN, 'server_shutdown');
      // close() ends the listen socket and every open connection; it is missing from the typings.
      (app as unknown as { close(): void }).close();
      await store.close();
      logger.info('stopped');
    })());

  return { url, wsUrl: `ws://${shownHost}:${port}/v1/ws`, port, config, logger, close };
}
