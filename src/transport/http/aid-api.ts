// The AID HTTP surface under /{tenant}/... (agent-identity §4). The route table resolves the
// tenant and checks the caller each route declares, and answers errors in the AID shape (§15).

import type { AuditTrail } from '../../identity/audit.js';
import { AidError } from '../../identity/errors.js';
import type { Registrations } from '../../identity/registrations.js';
import type { StatusPolls } from '../../identity/status-polls.js';
import type { IdentityRoutes } from '../../identity/routes.js';
import { rateLimited, type Tokens } from '../../identity/tokens.js';
import type { TokenObserver } from '../../ops/telemetry.js';
import type { Agents } from '../../relay/agents.js';
import type { RateLimits } from '../../relay/ratelimit.js';
import { NO_STORE, type RouteTable } from './route-table.js';
import type { HttpReply, HttpRequest } from './router.js';

export interface AidDeps {
  identity: IdentityRoutes;
  registrations: Registrations;
  polls: StatusPolls;
  tokens: Tokens;
  audit: AuditTrail;
  agents: Agents;
  limits: RateLimits;
  /** Counts tokens issued and refused (metrics). */
  tokenEvents: TokenObserver;
}

/** §1: AID request bodies are at most 16 KiB. */
const MAX_AID_BODY = 16 * 1024;

/**
 * AID bodies are JSON or form-urlencoded; an empty body is `{}`. A body that starts like JSON (`{`,
 * `[`) is JSON whatever its Content-Type says, as on the AMP routes: `curl -d '{...}'` labels it
 * form-urlencoded, and no form a client means (`name=value&...`) starts with a brace.
 */
async function formOrJson(req: HttpRequest): Promise<Record<string, unknown>> {
  const text = await req.body.text();
  if (Buffer.byteLength(text, 'utf8') > MAX_AID_BODY)
    throw new AidError('invalid_request', `The request body exceeds ${MAX_AID_BODY} bytes`, { status: 413 });
  const trimmed = text.trim();
  if (trimmed === '') return {};
  if (!/^[{[]/.test(trimmed) && /application\/x-www-form-urlencoded/i.test(req.headers.contentType)) {
    return Object.fromEntries(new URLSearchParams(trimmed));
  }
  return req.body.json();
}

const ok = (body: unknown, status = 200): HttpReply => ({ status, body, headers: NO_STORE });

const READ = { tenant: true, admin: 'agent_registrations:read' } as const;
const WRITE = { tenant: true, admin: 'agent_registrations:write' } as const;

export function addAidRoutes(t: RouteTable, d: AidDeps): void {
  addTokenRoutes(t, d);
  addRequestRoutes(t, d);
  addAdminRoutes(t, d);
}

/** §5 token exchange and §8 introspection. */
function addTokenRoutes(t: RouteTable, { identity, tokens, limits, tokenEvents }: AidDeps): void {
  // §5: the proof is the credential; an X-API-Key, if sent, must be valid for this tenant.
  t.aid('POST', '/:t/oauth/token', { tenant: true, agentKey: 'if_sent' }, async (req, { tenant }) => {
    try {
      const body = await formOrJson(req);
      const issuer = identity.issuer(tenant);
      const aliases = identity.proofAliases(tenant);
      const token = await tokens.exchange(tenant, issuer, body, req.ip, req.headers.userAgent || null, aliases);
      tokenEvents.tokenIssued();
      return ok(token);
    } catch (e) {
      // The reason is an error code of a catalog (AID or AMP): a bounded label.
      const code = (e as { code?: unknown }).code;
      tokenEvents.tokenDenied(typeof code === 'string' ? code : 'internal_error');
      throw e;
    }
  });

  // §8: callers are an admin/service JWT of the tenant (read or aid:introspect) or an AMP key of it.
  t.aid('POST', '/:t/oauth/introspect', { tenant: true, introspector: true }, async (req, { tenant, caller }) => {
    rateLimited(limits.take([['aid_introspect', `${tenant}|${caller}`]]), 'introspection requests');
    const body = await formOrJson(req);
    if (typeof body.token !== 'string' || body.token === '') throw new AidError('invalid_request', 'token is required');
    return ok(await tokens.introspect(tenant, identity.issuer(tenant), body.token));
  });
}

/** §14: failed code lookups per IP or admin; only failures count, so check before and take after. */
function lookupLimited(limits: RateLimits) {
  return async <T>(who: string, fn: () => Promise<T> | T): Promise<T> => {
    rateLimited(limits.peek('aid_lookup_failures', who), 'failed code lookups');
    try {
      return await fn();
    } catch (e) {
      if (e instanceof AidError && e.status === 404) limits.take([['aid_lookup_failures', who]]);
      throw e;
    }
  };
}

/** The agent's side: its registration request (§5.1) and the status polls (§6). */
function addRequestRoutes(t: RouteTable, { identity, registrations, polls, limits }: AidDeps): void {
  const lookup = lookupLimited(limits);
  t.aid(
    'POST',
    '/:t/agent_registrations/request',
    { tenant: true, agentKey: 'required' },
    async (req, { tenant, agent }) => {
      // §14: 10/h per client IP (loopback exempt in the local profile), 100/day per API key.
      rateLimited(limits.takeForIp('aid_request', req.ip), 'registration requests from this address');
      rateLimited(limits.take([['aid_request_key', agent.id]]), 'registration requests for this agent');
      const actor = {
        type: 'agent' as const,
        id: `agent:${agent.id}`,
        email: null,
        address: agent.address,
        ip: req.ip,
        userAgent: req.headers.userAgent || null,
      };
      return ok(await registrations.request(tenant, agent, await formOrJson(req), actor), 202);
    },
  );
  // Status polls need no token: the fingerprint (and an optional proof) or the user code is the key.
  // The user-code poll checks its query before the tenant, so it resolves the tenant itself.
  t.aid('GET', '/:t/agent_registrations/status', {}, async (req) => {
    const code = req.query.get('code');
    if (!code) throw new AidError('invalid_request', 'code is required');
    const tenant = identity.tenant(req.params.t);
    const out = await lookup(`ip:${req.ip}`, () => polls.pollStatus(tenant, { code }));
    return ok(out.body, out.status);
  });
  t.aid('POST', '/:t/agent_registrations/:id/status', { tenant: true }, async (req, { tenant }) => {
    const body = await formOrJson(req);
    const out = await polls.pollStatus(tenant, {
      id: req.params.id,
      fingerprint: body.fingerprint,
      proof: body.proof,
      aliases: identity.proofAliases(tenant),
    });
    return ok(out.body, out.status);
  });
}

/** The admin's side (§9, §10): look up, create, list, read, change, and the activity logs. */
function addAdminRoutes(t: RouteTable, { registrations, audit, limits }: AidDeps): void {
  const lookup = lookupLimited(limits);
  t.aid('GET', '/:t/agent_registrations/resolve', READ, async (req, { tenant, actor }) => {
    const code = req.query.get('code');
    if (!code) throw new AidError('invalid_request', 'code is required');
    return ok(await lookup(`admin:${actor.id}`, () => registrations.resolve(tenant, code, actor)));
  });
  t.aid('POST', '/:t/agent_registrations', WRITE, async (req, { tenant, actor }) =>
    ok(await registrations.create(tenant, await formOrJson(req), actor), 201),
  );
  t.aid('GET', '/:t/agent_registrations/activity_logs', READ, (req, { tenant }) => ok(audit.list(tenant, req.query)));
  t.aid('GET', '/:t/agent_registrations', READ, (req, { tenant }) => ok(registrations.list(tenant, req.query)));
  t.aid('GET', '/:t/agent_registrations/:id', READ, (req, { tenant }) =>
    ok({ data: registrations.resource(registrations.get(tenant, req.params.id)) }),
  );
  t.aid('GET', '/:t/agent_registrations/:id/activity_logs', READ, (req, { tenant }) => {
    registrations.get(tenant, req.params.id);
    return ok(audit.list(tenant, req.query, req.params.id));
  });

  type Action = 'approve' | 'reject' | 'suspend' | 'reactivate' | 'delete';
  const transition = (method: string, path: string, action: Action) =>
    t.aid(method, `/:t/agent_registrations/:id${path}`, WRITE, async (req, { tenant, actor }) =>
      ok(
        await registrations.transition(tenant, req.params.id, action, await formOrJson(req), {
          ...actor,
          userAgent: actor.userAgent || null,
        }),
      ),
    );
  transition('POST', '/approve', 'approve');
  transition('POST', '/reject', 'reject');
  for (const m of ['POST', 'PUT']) {
    transition(m, '/suspend', 'suspend');
    transition(m, '/reactivate', 'reactivate');
  }
  transition('DELETE', '', 'delete');
  for (const m of ['PUT', 'PATCH']) {
    t.aid(m, '/:t/agent_registrations/:id', WRITE, async (req, { tenant, actor }) =>
      ok(await registrations.update(tenant, req.params.id, await formOrJson(req), actor)),
    );
  }
  transition('POST', '/revoke', 'delete');
}
