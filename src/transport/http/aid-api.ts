// The AID HTTP surface under /{tenant}/... (agent-identity §4). AID errors have their own body
// shape (§15), so these handlers answer AidError themselves.

import { aidErrorBody, isAmpError } from '../../../proto/index.js';
import type { Agents } from '../../relay/agents.js';
import type { AgentRecord } from '../../store/types.js';
import { AidError } from '../../identity/errors.js';
import type { AuditTrail } from '../../identity/audit.js';
import type { Registrations } from '../../identity/registrations.js';
import type { IdentityRoutes } from '../../identity/routes.js';
import { rateLimited, type Tokens } from '../../identity/tokens.js';
import type { RateLimits } from '../../relay/ratelimit.js';
import { errorReply } from './respond.js';
import type { Handler, HttpReply, HttpRequest, Router } from './router.js';

export interface AidDeps {
  identity: IdentityRoutes;
  registrations: Registrations;
  tokens: Tokens;
  audit: AuditTrail;
  agents: Agents;
  limits: RateLimits;
}

const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };

export function aid(fn: (req: HttpRequest) => Promise<HttpReply> | HttpReply): Handler {
  return async (req) => {
    try {
      return await fn(req);
    } catch (e) {
      if (e instanceof AidError) return { status: e.status, body: e.body(), headers: { ...NO_STORE, ...e.headers } };
      // Body problems (size, JSON) and rate limits keep their AMP codes and headers but take the AID shape.
      if (isAmpError(e))
        return {
          status: e.status,
          body: aidErrorBody(e.status, e.code === 'request_too_large' ? 'invalid_request' : e.code, e.message),
          headers: { ...NO_STORE, ...errorReply(e).headers },
        };
      throw e;
    }
  };
}

/** §1: AID request bodies are at most 16 KiB. */
const MAX_AID_BODY = 16 * 1024;

/** AID bodies are JSON or form-urlencoded; an empty body is `{}`. */
async function formOrJson(req: HttpRequest): Promise<Record<string, unknown>> {
  const text = await req.body.text();
  if (Buffer.byteLength(text, 'utf8') > MAX_AID_BODY)
    throw new AidError('invalid_request', `The request body exceeds ${MAX_AID_BODY} bytes`, { status: 413 });
  if (/application\/x-www-form-urlencoded/i.test(req.headers.contentType)) {
    return Object.fromEntries(new URLSearchParams(text.trim()));
  }
  if (text.trim() === '') return {};
  return req.body.json();
}

export function addAidRoutes(r: Router, d: AidDeps): void {
  const { identity, registrations, audit, agents, tokens, limits } = d;
  /** §14: failed code lookups per IP or admin; only failures count, so check before and take after. */
  const lookup = async <T>(who: string, fn: () => Promise<T> | T): Promise<T> => {
    rateLimited(limits.peek('aid_lookup_failures', who), 'failed code lookups');
    try {
      return await fn();
    } catch (e) {
      if (e instanceof AidError && e.status === 404) limits.take([['aid_lookup_failures', who]]);
      throw e;
    }
  };
  const admin = (req: HttpRequest, scope: 'agent_registrations:read' | 'agent_registrations:write') =>
    identity.admin(req.headers.authorization, identity.tenant(req.params.t), scope, req.ip, req.headers.userAgent);
  const ok = (body: unknown, status = 200): HttpReply => ({ status, body, headers: NO_STORE });

  // §5: the proof is the credential; an X-API-Key, if sent, must be valid for this tenant.
  r.add(
    'POST',
    '/:t/oauth/token',
    aid(async (req) => {
      const tenant = identity.tenant(req.params.t);
      if (req.headers.xApiKey) {
        let agentTenant: string | undefined;
        try {
          agentTenant = agents.authenticateKey('', req.headers.xApiKey).agent.tenant;
        } catch {
          agentTenant = undefined;
        }
        if (agentTenant !== tenant)
          throw new AidError('invalid_client', 'The X-API-Key is not valid for this organisation');
      }
      return ok(
        await tokens.exchange(
          tenant,
          identity.issuer(tenant),
          await formOrJson(req),
          req.ip,
          req.headers.userAgent || null,
          identity.proofAliases(tenant),
        ),
      );
    }),
  );

  // §8: callers are an admin/service JWT of the tenant (read or aid:introspect) or an AMP key of it.
  r.add(
    'POST',
    '/:t/oauth/introspect',
    aid(async (req) => {
      const tenant = identity.tenant(req.params.t);
      let caller: string | null = null;
      if (req.headers.xApiKey) {
        try {
          const { agent } = agents.authenticateKey('', req.headers.xApiKey);
          if (agent.tenant === tenant) caller = `agent:${agent.id}`;
        } catch {
          caller = null;
        }
      } else if (req.headers.authorization) {
        for (const scope of ['agent_registrations:read', 'aid:introspect']) {
          if (caller) break;
          caller = await identity.admin(req.headers.authorization, tenant, scope, req.ip, '').then(
            (a) => a.id,
            () => null,
          );
        }
      }
      if (!caller)
        throw new AidError(
          'invalid_client',
          'Introspection needs an admin or service token of this organisation, or an agent API key',
        );
      rateLimited(limits.take([['aid_introspect', `${tenant}|${caller}`]]), 'introspection requests');
      const body = await formOrJson(req);
      if (typeof body.token !== 'string' || body.token === '')
        throw new AidError('invalid_request', 'token is required');
      return ok(await tokens.introspect(tenant, identity.issuer(tenant), body.token));
    }),
  );

  // Literal segments first: a pattern route wins for every method once its path matches.
  r.add(
    'POST',
    '/:t/agent_registrations/request',
    aid(async (req) => {
      const tenant = identity.tenant(req.params.t);
      let agent: AgentRecord;
      try {
        agent = agents.authenticateKey('', req.headers.xApiKey).agent;
      } catch {
        throw new AidError('invalid_client', "A valid X-API-Key (the agent's AMP API key) is required");
      }
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
    }),
  );
  // Status polls need no token: the fingerprint (and an optional proof) or the user code is the key.
  r.add(
    'GET',
    '/:t/agent_registrations/status',
    aid(async (req) => {
      const code = req.query.get('code');
      if (!code) throw new AidError('invalid_request', 'code is required');
      const tenant = identity.tenant(req.params.t);
      const out = await lookup(`ip:${req.ip}`, () => registrations.pollStatus(tenant, { code }));
      return ok(out.body, out.status);
    }),
  );
  r.add(
    'POST',
    '/:t/agent_registrations/:id/status',
    aid(async (req) => {
      const tenant = identity.tenant(req.params.t);
      const body = await formOrJson(req);
      const out = await registrations.pollStatus(tenant, {
        id: req.params.id,
        fingerprint: body.fingerprint,
        proof: body.proof,
        aliases: identity.proofAliases(tenant),
      });
      return ok(out.body, out.status);
    }),
  );
  r.add(
    'GET',
    '/:t/agent_registrations/resolve',
    aid(async (req) => {
      const actor = await admin(req, 'agent_registrations:read');
      const code = req.query.get('code');
      if (!code) throw new AidError('invalid_request', 'code is required');
      return ok(
        await lookup(`admin:${actor.id}`, () => registrations.resolve(req.params.t.toLowerCase(), code, actor)),
      );
    }),
  );
  r.add(
    'POST',
    '/:t/agent_registrations',
    aid(async (req) => {
      const actor = await admin(req, 'agent_registrations:write');
      return ok(await registrations.create(req.params.t.toLowerCase(), await formOrJson(req), actor), 201);
    }),
  );
  r.add(
    'GET',
    '/:t/agent_registrations/activity_logs',
    aid(async (req) => {
      await admin(req, 'agent_registrations:read');
      return ok(audit.list(req.params.t.toLowerCase(), req.query));
    }),
  );
  r.add(
    'GET',
    '/:t/agent_registrations',
    aid(async (req) => {
      await admin(req, 'agent_registrations:read');
      return ok(registrations.list(req.params.t.toLowerCase(), req.query));
    }),
  );
  r.add(
    'GET',
    '/:t/agent_registrations/:id',
    aid(async (req) => {
      await admin(req, 'agent_registrations:read');
      return ok({ data: registrations.resource(registrations.get(req.params.t.toLowerCase(), req.params.id)) });
    }),
  );
  r.add(
    'GET',
    '/:t/agent_registrations/:id/activity_logs',
    aid(async (req) => {
      await admin(req, 'agent_registrations:read');
      const tenant = req.params.t.toLowerCase();
      registrations.get(tenant, req.params.id);
      return ok(audit.list(tenant, req.query, req.params.id));
    }),
  );

  const transition = (action: 'approve' | 'reject' | 'suspend' | 'reactivate' | 'delete') =>
    aid(async (req) => {
      const actor = await admin(req, 'agent_registrations:write');
      return ok(
        await registrations.transition(req.params.t.toLowerCase(), req.params.id, action, await formOrJson(req), {
          ...actor,
          userAgent: actor.userAgent || null,
        }),
      );
    });
  r.add('POST', '/:t/agent_registrations/:id/approve', transition('approve'));
  r.add('POST', '/:t/agent_registrations/:id/reject', transition('reject'));
  for (const m of ['POST', 'PUT']) {
    r.add(m, '/:t/agent_registrations/:id/suspend', transition('suspend'));
    r.add(m, '/:t/agent_registrations/:id/reactivate', transition('reactivate'));
  }
  r.add('DELETE', '/:t/agent_registrations/:id', transition('delete'));
  for (const m of ['PUT', 'PATCH']) {
    r.add(
      m,
      '/:t/agent_registrations/:id',
      aid(async (req) => {
        const actor = await admin(req, 'agent_registrations:write');
        return ok(await registrations.update(req.params.t.toLowerCase(), req.params.id, await formOrJson(req), actor));
      }),
    );
  }
  r.add('POST', '/:t/agent_registrations/:id/revoke', transition('delete'));
}
