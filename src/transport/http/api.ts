// The REST surface: which path and method call which part of the relay core, and the guard each
// route declares (route-table.ts checks it from headers before any body is read, §12.3 step 1).

import {
  AmpError,
  decodeAgentUpdateBody,
  decodeBatchAckBody,
  decodeRotateKeysBody,
  invalidField,
  isAcceptedMessageId,
} from '../../../proto/index.js';
import type { IdentityRoutes } from '../../identity/routes.js';
import { info, publicCacheHeaders, wellKnown } from '../../ops/discovery.js';
import type { Agents } from '../../relay/agents.js';
import type { RelayContext } from '../../relay/context.js';
import type { Directory } from '../../relay/directory.js';
import { type Inbox, parseLimit } from '../../relay/inbox.js';
import type { Keys } from '../../relay/keys.js';
import type { Receipts } from '../../relay/receipts.js';
import type { MessageRouter } from '../../relay/route.js';
import { decodeSuspendBody, type Suspensions } from '../../relay/suspension.js';
import type { AdminView } from '../../relay/admin.js';
import type { AttachmentAdmin } from '../../attachments/admin.js';
import type { MeshHeaders, MeshInbound } from '../../relay/mesh/index.js';
import type { Attachments } from '../../attachments/service.js';
import { addAdminRoutes } from './admin-api.js';
import { addAttachmentRoutes } from './attachments-api.js';
import { addConsoleRoutes, type ConsoleDeps } from './console-api.js';
import { addConsoleDataRoutes, type ConsoleDataDeps } from './console-data-api.js';
import { addFederationRoutes } from './federation-api.js';
import type { FederationInbound } from '../../relay/federation/index.js';
import { type AidDeps, addAidRoutes } from './aid-api.js';
import { addOpenApiRoutes } from './openapi.js';
import { type AgentCaller, NO_STORE, RouteTable } from './route-table.js';
import { type HttpReply, type HttpRequest, Router } from './router.js';

export interface ApiDeps {
  ctx: RelayContext;
  agents: Agents;
  router: MessageRouter;
  inbox: Inbox;
  receipts: Receipts;
  keys: Keys;
  directory: Directory;
  suspensions: Suspensions;
  /** §22, when the provider has the capability. */
  attachments?: { attachments: Attachments; admin: AttachmentAdmin };
  /** §19.2: requests of mesh peers, when a mesh is configured. */
  mesh?: MeshInbound;
  /** §19.1, when federation is on (else its routes refuse with provider_not_trusted). */
  federation?: FederationInbound;
  /** The admin console: sign-in sessions and its built page. */
  console?: Omit<ConsoleDeps, 'limits'>;
  /** The operators' views under admin/ (amp:admin). */
  admin: AdminView;
  /** The admin console's live feed and merged audit log. */
  consoleData: ConsoleDataDeps;
  identity: IdentityRoutes;
  aid: AidDeps;
  /** The /health document and its status. */
  health: () => { status: number; body: Record<string, unknown> };
  /** The /ready document: 503 while writes fail. */
  ready: () => { status: number; body: Record<string, unknown> };
  /** GET /peers: the mesh hosts' and federated providers' reachability (src/remote-wiring.ts). */
  peers: () => unknown;
  /** GET /metrics: the Prometheus text, and whether a request may read it (AMP_METRICS_TOKEN). */
  metrics: {
    text: () => Promise<string>;
    contentType: string;
    authorized: (authorization: string) => boolean;
  };
}

const ok = (body: unknown, status = 200, headers?: Record<string, string>): HttpReply => ({ status, body, headers });

/** The authenticated agent, its `api` bucket taken: the guard of most agent routes. */
const AGENT = { auth: 'agent', bucket: 'api' } as const;
const PUBLIC = { auth: 'none' } as const;
const ADMIN = { auth: 'admin' } as const;

export function buildApi(deps: ApiDeps): Router {
  const { ctx, agents, router, identity } = deps;
  const sessions = deps.console?.login.sessions;
  const t = new RouteTable(new Router(), { agents, limits: ctx.limits, router, identity, console: sessions });
  addDiscoveryRoutes(t, deps);
  addMessageRoutes(t, deps);
  addAgentRoutes(t, deps);
  addKeyRoutes(t, deps);
  addOperatorRoutes(t, deps);
  addAdminRoutes(t, deps.admin);
  addConsoleDataRoutes(t, deps.consoleData);
  if (deps.attachments) addAttachmentRoutes(t, { ctx, ...deps.attachments });
  addFederationRoutes(t, deps.federation);
  addAidDiscoveryRoutes(t, identity);
  addAidRoutes(t, deps.aid);
  if (deps.console) addConsoleRoutes(t, { ...deps.console, limits: ctx.limits });
  // A plain GET on the WebSocket path (no Upgrade header) says what the path is for.
  t.api('GET', '/ws', PUBLIC, () => {
    throw new AmpError(
      'invalid_request',
      'This is the WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)',
    );
  });
  addOpenApiRoutes(t, ctx.config);
  return t.router;
}

/** Public documents: provider discovery, info, health, metrics. */
function addDiscoveryRoutes(t: RouteTable, { ctx, health, ready, metrics }: ApiDeps): void {
  t.root('GET', '/.well-known/agent-messaging.json', PUBLIC, (req) =>
    ok(wellKnown(ctx, req.headers.host, req.headers.forwardedProto), 200, {
      ...publicCacheHeaders(ctx.config, 3600),
      'Access-Control-Allow-Origin': '*',
    }),
  );
  t.root('GET', '/api/organization', PUBLIC, () => ok({ organization: ctx.config.defaultTenant }));
  t.api('GET', '/info', PUBLIC, (req) =>
    ok(info(ctx, req.headers.host, req.headers.forwardedProto), 200, publicCacheHeaders(ctx.config, 300)),
  );
  t.api('GET', '/health', PUBLIC, () => {
    const h = health();
    return ok(h.body, h.status);
  });
  t.api('GET', '/ready', PUBLIC, () => {
    const r = ready();
    return ok(r.body, r.status);
  });
  t.root('GET', '/metrics', PUBLIC, async (req) => {
    if (!metrics.authorized(req.headers.authorization))
      throw new AmpError('unauthorized', '/metrics needs Authorization: Bearer <AMP_METRICS_TOKEN>', {
        headers: { 'WWW-Authenticate': 'Bearer' },
      });
    return ok(await metrics.text(), 200, { 'Content-Type': metrics.contentType });
  });
}

/** §4 registration, §12 route, §15 the relay queue (and the reference-CLI aliases of §24), §16 reads. */
function addMessageRoutes(t: RouteTable, { agents, router, inbox, receipts, mesh }: ApiDeps): void {
  t.api('POST', '/register', { auth: 'none', bucket: 'register' }, async (req) => {
    const out = await agents.register(
      await req.body.json(),
      req.headers.host,
      req.headers.forwardedProto,
      req.headers.registrationKey,
    );
    return ok(out.body, out.status);
  });

  const routeGuard = { auth: 'agent', bucket: 'route' } as const;
  const sendRoute = async (req: HttpRequest, { agent }: AgentCaller) => {
    const out = await router.route(agent, await req.body.json(), { headerIdempotencyKey: req.headers.idempotencyKey });
    return ok(out.result, 200, out.replayed ? { 'Idempotent-Replayed': 'true' } : undefined);
  };
  if (mesh) addMeshRoutes(t, mesh, routeGuard, sendRoute);
  else t.api('POST', '/route', routeGuard, sendRoute);

  const pending = { auth: 'agent', bucket: 'pending' } as const;
  const list = (req: HttpRequest, { agent }: AgentCaller) => ok(inbox.list(agent, parseLimit(req.query.get('limit'))));
  const ackQuery = async (req: HttpRequest, { agent }: AgentCaller) =>
    ok(await inbox.ackOne(agent, req.query.get('id')));
  const ackParam = async (req: HttpRequest, { agent }: AgentCaller) => ok(await inbox.ackOne(agent, req.params.id));
  const ackBatch = async (req: HttpRequest, { agent }: AgentCaller) =>
    ok(await inbox.ackBatch(agent, decodeBatchAckBody(await req.body.json())));

  t.api('GET', '/messages/pending', pending, list);
  t.api('GET', '/messages', pending, list);
  t.api('GET', '/inbox', pending, list);
  t.api('DELETE', '/messages/pending', AGENT, ackQuery);
  t.api('DELETE', '/messages/pending/:id', AGENT, ackParam);
  t.api('POST', '/inbox/:id/ack', AGENT, ackParam);
  t.api('DELETE', '/inbox/:id', AGENT, ackParam);
  t.api('POST', '/messages/pending', AGENT, ackBatch);
  t.api('POST', '/messages/pending/ack', AGENT, ackBatch);
  t.api('POST', '/inbox/ack', AGENT, ackBatch);

  t.api('POST', '/messages/:id/read', AGENT, (req, { agent }) => {
    if (!isAcceptedMessageId(req.params.id)) throw invalidField('id', 'id is not a valid message id');
    return ok(receipts.read(agent, req.params.id));
  });
}

/**
 * §19.2: a mesh peer's forwarded message comes to POST /route too, told apart by X-AMP-Mesh-Host
 * (or by an X-Forwarded-From without an API key, refused there with 401); peers resolve addresses
 * with POST /mesh/resolve. Both authenticate the peer (src/relay/mesh/inbound.ts).
 */
function addMeshRoutes(
  t: RouteTable,
  mesh: MeshInbound,
  guard: { auth: 'agent'; bucket: 'route' },
  sendRoute: (req: HttpRequest, caller: AgentCaller) => Promise<ReturnType<typeof ok>>,
): void {
  const meshHeaders = (req: HttpRequest): MeshHeaders => ({
    meshHost: req.headers.meshHost,
    timestamp: req.headers.ampTimestamp,
    meshAuth: req.headers.meshAuth,
    meshSignature: req.headers.meshSignature,
    senderKey: req.headers.senderKey,
  });
  t.apiWithPeer('POST', '/route', guard, sendRoute, {
    claims: ({ headers: x }) => x.meshHost !== '' || (x.forwardedFrom !== '' && !x.authorization && !x.xApiKey),
    handler: async (req) => ok(await mesh.route(meshHeaders(req), () => req.body.text())),
  });
  t.api('POST', '/mesh/resolve', PUBLIC, async (req) =>
    ok(await mesh.resolve(meshHeaders(req), () => req.body.text())),
  );
}

/** §7 agents: self, card, listing, resolve. */
function addAgentRoutes(t: RouteTable, { agents, directory, peers }: ApiDeps): void {
  t.api('GET', '/agents/me', AGENT, (_req, { agent }) => ok(agents.self(agent)));
  t.api('GET', '/peers', AGENT, () => ok(peers(), 200, NO_STORE));
  t.api('PATCH', '/agents/me', AGENT, async (req, { agent }) =>
    ok(await directory.update(agent, decodeAgentUpdateBody(await req.body.json()))),
  );
  t.api('DELETE', '/agents/me', AGENT, async (_req, { agent }) => ok(await directory.deregister(agent)));
  t.api('GET', '/agents/me/card', AGENT, (req, { agent }) =>
    ok(directory.card(agent, req.headers.host, req.headers.forwardedProto)),
  );
  t.api('GET', '/agents', AGENT, (req, { agent }) => ok(directory.list(agent, req.query)));
  t.api('GET', '/agents/resolve/:address', AGENT, (req, { agent }) => ok(directory.resolve(agent, req.params.address)));
  // Legacy form: GET agents/{address} when the segment holds an '@'.
  t.api('GET', '/agents/:address', AGENT, (req, { agent }) => {
    if (!req.params.address.includes('@'))
      throw new AmpError('not_found', 'No such endpoint; resolve with agents/resolve/{address}');
    return ok(directory.resolve(agent, req.params.address));
  });
}

/** §20 operators' controls: an `amp:admin` JWT (the admin guard, before the body is read) of the agent's tenant. */
function addOperatorRoutes(t: RouteTable, { suspensions }: ApiDeps): void {
  t.api('POST', '/agents/:agent_id/suspend', ADMIN, async (req, { admin }) => {
    const text = (await req.body.text()).trim();
    const body = text === '' ? {} : await req.body.json();
    return ok(await suspensions.suspend(req.params.agent_id, admin, decodeSuspendBody(body)), 200, NO_STORE);
  });
  t.api('POST', '/agents/:agent_id/unsuspend', ADMIN, async (req, { admin }) => {
    return ok(await suspensions.unsuspend(req.params.agent_id, admin), 200, NO_STORE);
  });
}

/** §6 keys. */
function addKeyRoutes(t: RouteTable, { keys }: ApiDeps): void {
  t.api('POST', '/auth/rotate-key', AGENT, async (_req, { agent, keyHash }) =>
    ok(await keys.rotateApiKey(agent, keyHash)),
  );
  t.api('DELETE', '/auth/revoke-key', AGENT, async (_req, { agent }) => ok(await keys.revokeApiKeys(agent)));
  t.api('POST', '/auth/rotate-keys', AGENT, async (req, { agent }) =>
    ok(await keys.rotateKeypair(agent, decodeRotateKeysBody(await req.body.json()))),
  );
}

/**
 * AID discovery (agent-identity §7, §12), per tenant and in the RFC 8414 suffix form. Public, and
 * answered in the AID error shape (§15); `identity` resolves the tenant itself.
 */
function addAidDiscoveryRoutes(t: RouteTable, identity: IdentityRoutes): void {
  const cachedDoc = (body: Record<string, unknown>) =>
    ok(body, 200, { 'Cache-Control': 'public, max-age=300', 'Access-Control-Allow-Origin': '*' });
  t.aid('GET', '/.well-known/jwks.json', {}, async () => cachedDoc(await identity.jwks()));
  t.aid('GET', '/:tenant/.well-known/jwks.json', {}, async (req) => cachedDoc(await identity.jwks(req.params.tenant)));
  for (const doc of ['oauth-authorization-server', 'openid-configuration', 'oauth-protected-resource'] as const) {
    t.aid('GET', `/:tenant/.well-known/${doc}`, {}, (req) => cachedDoc(identity.discovery(doc, req.params.tenant)));
    t.aid('GET', `/.well-known/${doc}/:tenant`, {}, (req) => cachedDoc(identity.discovery(doc, req.params.tenant)));
  }
}
