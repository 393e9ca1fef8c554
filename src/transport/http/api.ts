// The REST surface: which path and method call which part of the relay core. Credentials are
// checked from headers before any body is read (spec §12.3 step 1).

import type { Agents } from '../../relay/agents.js';
import type { RelayContext } from '../../relay/context.js';
import { parseLimit, type Inbox } from '../../relay/inbox.js';
import type { Receipts } from '../../relay/receipts.js';
import type { Directory } from '../../relay/directory.js';
import type { Keys } from '../../relay/keys.js';
import { enforce } from '../../relay/ratelimit.js';
import type { MessageRouter } from '../../relay/route.js';
import { health, info, wellKnown } from '../../ops/discovery.js';
import { renderMetrics } from '../../ops/metrics.js';
import type { IdentityRoutes } from '../../identity/routes.js';
import { addAidRoutes, aid, type AidDeps } from './aid-api.js';
import { Router, type HttpReply, type HttpRequest } from './router.js';
import {
  AmpError,
  decodeAgentUpdateBody,
  decodeBatchAckBody,
  decodeRotateKeysBody,
  invalidField,
  isAcceptedMessageId,
} from '../../../proto/index.js';

export interface ApiDeps {
  ctx: RelayContext;
  agents: Agents;
  router: MessageRouter;
  inbox: Inbox;
  receipts: Receipts;
  keys: Keys;
  directory: Directory;
  identity: IdentityRoutes;
  aid: AidDeps;
  isShuttingDown: () => boolean;
}

const ok = (body: unknown, status = 200, headers?: Record<string, string>): HttpReply => ({ status, body, headers });

export function buildApi(deps: ApiDeps): Router {
  const { ctx, agents, router, inbox, receipts, keys, directory, identity } = deps;
  const authKey = (req: HttpRequest) => agents.authenticateKey(req.headers.authorization, req.headers.xApiKey);
  const auth = (req: HttpRequest) => authKey(req).agent;
  /** Authenticated, then the agent's bucket for this kind of call (§20); headers for the reply. */
  const limited = (req: HttpRequest, bucket: 'api' | 'pending') => {
    const a = authKey(req);
    return { ...a, headers: enforce(ctx.limits.take([[bucket, a.agent.id]]), bucket === 'api' ? 'agent' : 'pending') };
  };
  const r = new Router();

  r.add('GET', '/.well-known/agent-messaging.json', (req) =>
    ok(wellKnown(ctx, req.headers.host, req.headers.forwardedProto), 200, {
      'Cache-Control': 'public, max-age=3600',
      'Access-Control-Allow-Origin': '*',
    }),
  );
  r.add('GET', '/api/organization', () => ok({ organization: ctx.config.defaultTenant }));
  r.api('GET', '/info', (req) =>
    ok(info(ctx, req.headers.host, req.headers.forwardedProto), 200, { 'Cache-Control': 'public, max-age=300' }),
  );
  r.api('GET', '/health', () => {
    const h = health(ctx, deps.isShuttingDown());
    return ok(h.body, h.status);
  });

  r.add('GET', '/metrics', () =>
    ok(renderMetrics({ presence: ctx.presence, receipts, startedAt: ctx.startedAt }), 200, {
      'Content-Type': 'text/plain; version=0.0.4',
    }),
  );

  r.api('POST', '/register', async (req) => {
    const headers = enforce(ctx.limits.takeForIp('register', req.ip), 'ip');
    const out = await agents.register(
      await req.body.json(),
      req.headers.host,
      req.headers.forwardedProto,
      req.headers.registrationKey,
    );
    return ok(out.body, out.status, headers);
  });

  r.api('POST', '/route', async (req) => {
    const sender = auth(req);
    const headers = router.senderRateLimit(sender);
    const out = await router.route(sender, await req.body.json(), { headerIdempotencyKey: req.headers.idempotencyKey });
    if (out.replayed) headers['Idempotent-Replayed'] = 'true';
    return ok(out.result, 200, headers);
  });

  const list = (req: HttpRequest) => {
    const { agent, headers } = limited(req, 'pending');
    return ok(inbox.list(agent, parseLimit(req.query.get('limit'))), 200, headers);
  };
  const ackQuery = async (req: HttpRequest) => {
    const { agent, headers } = limited(req, 'api');
    return ok(await inbox.ackOne(agent, req.query.get('id')), 200, headers);
  };
  const ackParam = async (req: HttpRequest) => {
    const { agent, headers } = limited(req, 'api');
    return ok(await inbox.ackOne(agent, req.params.id), 200, headers);
  };
  const ackBatch = async (req: HttpRequest) => {
    const { agent, headers } = limited(req, 'api');
    return ok(await inbox.ackBatch(agent, decodeBatchAckBody(await req.body.json())), 200, headers);
  };

  // §15 and the reference-CLI aliases of §24.
  r.api('GET', '/messages/pending', list);
  r.api('GET', '/messages', list);
  r.api('GET', '/inbox', list);
  r.api('DELETE', '/messages/pending', ackQuery);
  r.api('DELETE', '/messages/pending/:id', ackParam);
  r.api('POST', '/inbox/:id/ack', ackParam);
  r.api('DELETE', '/inbox/:id', ackParam);
  r.api('POST', '/messages/pending', ackBatch);
  r.api('POST', '/messages/pending/ack', ackBatch);
  r.api('POST', '/inbox/ack', ackBatch);

  r.api('POST', '/messages/:id/read', (req) => {
    const { agent, headers } = limited(req, 'api');
    if (!isAcceptedMessageId(req.params.id)) throw invalidField('id', 'id is not a valid message id');
    return ok(receipts.read(agent, req.params.id), 200, headers);
  });

  // §7 agents: self, card, listing, resolve.
  r.api('GET', '/agents/me', (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(agents.self(agent), 200, headers);
  });
  r.api('PATCH', '/agents/me', async (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(await directory.update(agent, decodeAgentUpdateBody(await req.body.json())), 200, headers);
  });
  r.api('DELETE', '/agents/me', async (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(await directory.deregister(agent), 200, headers);
  });
  r.api('GET', '/agents/me/card', (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(directory.card(agent, req.headers.host, req.headers.forwardedProto), 200, headers);
  });
  r.api('GET', '/agents', (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(directory.list(agent, req.query), 200, headers);
  });
  r.api('GET', '/agents/resolve/:address', (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(directory.resolve(agent, req.params.address), 200, headers);
  });
  // Legacy form: GET agents/{address} when the segment holds an '@'.
  r.api('GET', '/agents/:address', (req) => {
    const { agent, headers } = limited(req, 'api');
    if (!req.params.address.includes('@'))
      throw new AmpError('not_found', 'No such endpoint; resolve with agents/resolve/{address}');
    return ok(directory.resolve(agent, req.params.address), 200, headers);
  });

  // §6 keys.
  r.api('POST', '/auth/rotate-key', async (req) => {
    const { agent, keyHash } = authKey(req);
    const headers = enforce(ctx.limits.take([['api', agent.id]]), 'agent');
    return ok(await keys.rotateApiKey(agent, keyHash), 200, headers);
  });
  r.api('DELETE', '/auth/revoke-key', async (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(await keys.revokeApiKeys(agent), 200, headers);
  });
  r.api('POST', '/auth/rotate-keys', async (req) => {
    const { agent, headers } = limited(req, 'api');
    return ok(await keys.rotateKeypair(agent, decodeRotateKeysBody(await req.body.json())), 200, headers);
  });

  // AID discovery (agent-identity §7, §12), per tenant and in the RFC 8414 suffix form.
  const cachedDoc = (body: Record<string, unknown>) =>
    ok(body, 200, { 'Cache-Control': 'public, max-age=300', 'Access-Control-Allow-Origin': '*' });
  // AID documents answer errors in the AID shape (agent-identity §15).
  r.add(
    'GET',
    '/.well-known/jwks.json',
    aid(async () => cachedDoc(await identity.jwks())),
  );
  r.add(
    'GET',
    '/:tenant/.well-known/jwks.json',
    aid(async (req) => cachedDoc(await identity.jwks(req.params.tenant))),
  );
  for (const doc of ['oauth-authorization-server', 'openid-configuration', 'oauth-protected-resource'] as const) {
    r.add(
      'GET',
      `/:tenant/.well-known/${doc}`,
      aid((req) => cachedDoc(identity.discovery(doc, req.params.tenant))),
    );
    r.add(
      'GET',
      `/.well-known/${doc}/:tenant`,
      aid((req) => cachedDoc(identity.discovery(doc, req.params.tenant))),
    );
  }

  addAidRoutes(r, deps.aid);

  // A plain GET on the WebSocket path (no Upgrade header) says what the path is for.
  r.api('GET', '/ws', () => {
    throw new AmpError(
      'invalid_request',
      'This is the WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)',
    );
  });
  return r;
}
