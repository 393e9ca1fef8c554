// The REST surface: which path and method call which part of the relay core. Credentials are
// checked from headers before any body is read (spec §12.3 step 1).

import type { Agents } from '../../relay/agents.js';
import type { RelayContext } from '../../relay/context.js';
import { parseLimit, type Inbox } from '../../relay/inbox.js';
import type { Receipts } from '../../relay/receipts.js';
import type { MessageRouter } from '../../relay/route.js';
import { health, info, wellKnown } from '../../ops/discovery.js';
import { renderMetrics } from '../../ops/metrics.js';
import { Router, type HttpReply, type HttpRequest } from './router.js';
import { AmpError, invalidField, isAcceptedMessageId } from '../../../proto/index.js';

export interface ApiDeps {
  ctx: RelayContext;
  agents: Agents;
  router: MessageRouter;
  inbox: Inbox;
  receipts: Receipts;
  isShuttingDown: () => boolean;
}

const ok = (body: unknown, status = 200, headers?: Record<string, string>): HttpReply => ({ status, body, headers });

export function buildApi(deps: ApiDeps): Router {
  const { ctx, agents, router, inbox, receipts } = deps;
  const auth = (req: HttpRequest) => agents.authenticate(req.headers.authorization, req.headers.xApiKey);
  const r = new Router();

  r.add('GET', '/.well-known/agent-messaging.json', (req) =>
    ok(wellKnown(ctx, req.headers.host, req.headers.forwardedProto), 200, { 'Cache-Control': 'public, max-age=3600', 'Access-Control-Allow-Origin': '*' }),
  );
  r.add('GET', '/api/organization', () => ok({ organization: ctx.config.defaultTenant }));
  r.api('GET', '/info', (req) => ok(info(ctx, req.headers.host, req.headers.forwardedProto), 200, { 'Cache-Control': 'public, max-age=300' }));
  r.api('GET', '/health', () => {
    const h = health(ctx, deps.isShuttingDown());
    return ok(h.body, h.status);
  });

  r.add('GET', '/metrics', () => ok(renderMetrics({ presence: ctx.presence, receipts, startedAt: ctx.startedAt }), 200, { 'Content-Type': 'text/plain; version=0.0.4' }));

  r.api('POST', '/register', async (req) => {
    const out = await agents.register(await req.body.json(), req.headers.host, req.headers.forwardedProto);
    return ok(out.body, out.status);
  });

  r.api('POST', '/route', async (req) => {
    const sender = auth(req);
    return ok(await router.route(sender, await req.body.json(), { headerIdempotencyKey: req.headers.idempotencyKey }));
  });

  const list = (req: HttpRequest) => {
    const agent = auth(req);
    return ok(inbox.list(agent, parseLimit(req.query.get('limit'))));
  };
  const ackQuery = async (req: HttpRequest) => ok(await inbox.ackOne(auth(req), req.query.get('id')));
  const ackParam = async (req: HttpRequest) => ok(await inbox.ackOne(auth(req), req.params.id));
  const ackBatch = async (req: HttpRequest) => {
    const agent = auth(req);
    return ok(await inbox.ackBatch(agent, await req.body.json()));
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
    const agent = auth(req);
    if (!isAcceptedMessageId(req.params.id)) throw invalidField('id', 'id is not a valid message id');
    return ok(receipts.read(agent, req.params.id));
  });

  r.api('GET', '/agents/me', (req) => ok(agents.self(auth(req))));

  // A plain GET on the WebSocket path (no Upgrade header) says what the path is for.
  r.api('GET', '/ws', () => {
    throw new AmpError('invalid_request', 'This is the WebSocket endpoint: connect with a WebSocket client (Upgrade: websocket)');
  });
  return r;
}
