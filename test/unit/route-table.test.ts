// The route table's guards with fake collaborators: checked before the handler and before any body
// is read, in a fixed order (so which error wins is fixed), rate-limit headers on the reply, AID
// errors in the AID shape. The real server paths are covered by the integration tests.
import { describe, expect, it, vi } from 'vitest';
import { AmpError } from '../../proto/index.js';
import type { Actor } from '../../src/identity/audit.js';
import { AidError } from '../../src/identity/errors.js';
import type { Take } from '../../src/relay/ratelimit.js';
import { type GuardDeps, RouteTable } from '../../src/transport/http/route-table.js';
import { type HttpReply, type HttpRequest, Router } from '../../src/transport/http/router.js';

const take = (ok: boolean): Take => ({ ok, limit: 60, remaining: ok ? 59 : 0, resetAt: 100, retryAfter: ok ? 0 : 3 });
const ALICE = { id: 'agt_a', tenant: 'acme', address: 'alice@acme.example' };
const ADMIN: Actor = { type: 'admin', id: 'admin-1', email: null, address: null, ip: '1.2.3.4', userAgent: 'ua' };

function setup(opts: { limited?: boolean } = {}) {
  const calls: string[] = [];
  const deps = {
    agents: {
      authenticateKey: (authorization: string, xApiKey = '') => {
        calls.push('auth');
        if (authorization === 'Bearer good' || xApiKey === 'good') return { agent: ALICE, keyHash: 'h1' };
        throw new AmpError('unauthorized', 'Invalid or expired API key');
      },
    },
    limits: {
      take: (buckets: Array<[string, string]>) => {
        calls.push(`take ${buckets.map((b) => b.join(':')).join(',')}`);
        return take(!opts.limited);
      },
      takeForIp: (name: string, ip: string) => {
        calls.push(`take ${name}:${ip}`);
        return take(!opts.limited);
      },
    },
    router: { senderRateLimit: () => (calls.push('sender'), { 'X-RateLimit-Limit': '10' }) },
    identity: {
      tenant: (raw: string) => {
        calls.push('tenant');
        if (raw.toLowerCase() !== 'acme') throw new AmpError('not_found', `Unknown organisation '${raw}'`);
        return 'acme';
      },
      admin: async (authorization: string, tenant: string, scope: string) => {
        calls.push(`admin ${tenant} ${scope}`);
        if (authorization !== 'Bearer admin') throw new AidError('invalid_token', 'An admin token is required');
        return ADMIN;
      },
    },
  } as unknown as GuardDeps;
  const t = new RouteTable(new Router(), deps);
  const request = (method: string, path: string, headers: Record<string, string> = {}): HttpRequest => {
    const m = t.router.match(method, path);
    if (m.kind !== 'handler') throw new Error(`no handler for ${method} ${path}`);
    const json = vi.fn(async () => (calls.push('body'), {}));
    return {
      method,
      path,
      query: new URLSearchParams(),
      params: m.params,
      headers: { authorization: '', xApiKey: '', userAgent: '', ...headers } as HttpRequest['headers'],
      ip: '1.2.3.4',
      body: { json, text: async () => '', complete: async () => {} } as unknown as HttpRequest['body'],
    };
  };
  const run = async (method: string, path: string, headers?: Record<string, string>): Promise<HttpReply> => {
    const req = request(method, path, headers);
    const m = t.router.match(method, path);
    if (m.kind !== 'handler') throw new Error('unreachable');
    try {
      return await m.handler(req);
    } catch (e) {
      if (e instanceof AmpError) return { status: e.status, body: e.toBody(), headers: e.headers };
      throw e;
    }
  };
  return { t, calls, run };
}

describe('RouteTable: AMP guards', () => {
  it('authenticates, takes the bucket, then runs the handler, which reads the body', async () => {
    const { t, calls, run } = setup();
    t.api('PATCH', '/agents/me', { auth: 'agent', bucket: 'api' }, async (req, { agent, keyHash }) => {
      await req.body.json();
      return { status: 200, body: { id: agent.id, keyHash }, headers: { 'X-Own': '1' } };
    });
    const r = await run('PATCH', '/v1/agents/me', { authorization: 'Bearer good' });
    expect(calls).toEqual(['auth', 'take api:agt_a', 'body']);
    expect(r.body).toEqual({ id: 'agt_a', keyHash: 'h1' });
    expect(r.headers).toEqual({
      'X-RateLimit-Limit': '60',
      'X-RateLimit-Remaining': '59',
      'X-RateLimit-Reset': '100',
      'X-Own': '1',
    });
  });

  it('refuses a bad key before any bucket is taken or any body read', async () => {
    const { t, calls, run } = setup();
    const handler = vi.fn(() => ({ status: 200 }));
    t.api('POST', '/messages/pending/ack', { auth: 'agent', bucket: 'api' }, handler);
    const r = await run('POST', '/api/v1/messages/pending/ack', { authorization: 'Bearer bad' });
    expect(r.status).toBe(401);
    expect(calls).toEqual(['auth']);
    expect(handler).not.toHaveBeenCalled();
  });

  it('refuses an empty bucket (429 with the scope) before the handler', async () => {
    const { t, calls, run } = setup({ limited: true });
    const handler = vi.fn(() => ({ status: 200 }));
    t.api('GET', '/messages/pending', { auth: 'agent', bucket: 'pending' }, handler);
    const r = await run('GET', '/v1/messages/pending', { xApiKey: 'good' });
    expect(r.status).toBe(429);
    expect((r.body as { details: unknown }).details).toMatchObject({ scope: 'pending' });
    expect(calls).toEqual(['auth', 'take pending:agt_a']);
    expect(handler).not.toHaveBeenCalled();
  });

  it('uses the sender buckets for route and the client IP for register; public routes take nothing', async () => {
    const { t, calls, run } = setup();
    t.api('POST', '/route', { auth: 'agent', bucket: 'route' }, () => ({ status: 200 }));
    t.api('POST', '/register', { auth: 'none', bucket: 'register' }, () => ({ status: 201 }));
    t.api('GET', '/info', { auth: 'none' }, () => ({ status: 200 }));
    expect((await run('POST', '/v1/route', { authorization: 'Bearer good' })).headers).toEqual({
      'X-RateLimit-Limit': '10',
    });
    expect((await run('POST', '/v1/register')).status).toBe(201);
    expect(await run('GET', '/v1/info')).toEqual({ status: 200 });
    expect(calls).toEqual(['auth', 'sender', 'take register:1.2.3.4']);
  });

  it('keeps a synchronous handler synchronous', () => {
    const { t } = setup();
    t.root('GET', '/metrics', { auth: 'none' }, () => ({ status: 200, body: 'm' }));
    const m = t.router.match('GET', '/metrics');
    expect(m.kind === 'handler' && m.handler({ method: 'GET' } as HttpRequest)).toEqual({ status: 200, body: 'm' });
  });
});

describe('RouteTable: AID guards', () => {
  const READ = { tenant: true, admin: 'agent_registrations:read' } as const;

  it('resolves the tenant, then the admin, and gives both to the handler', async () => {
    const { t, calls, run } = setup();
    t.aid('GET', '/:t/agent_registrations', READ, (_req, { tenant, actor }) => ({
      status: 200,
      body: { tenant, actor: actor.id },
    }));
    const r = await run('GET', '/ACME/agent_registrations', { authorization: 'Bearer admin' });
    expect(r.body).toEqual({ tenant: 'acme', actor: 'admin-1' });
    expect(calls).toEqual(['tenant', 'admin acme agent_registrations:read']);
  });

  it('an unknown tenant wins over a missing token; both answer in the AID shape', async () => {
    const { t, calls, run } = setup();
    t.aid('GET', '/:t/agent_registrations', READ, () => ({ status: 200 }));
    const unknown = await run('GET', '/nope/agent_registrations');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ error: 'not_found', errors: [{ status: '404', code: 'not_found' }] });
    expect(calls).toEqual(['tenant']);
    const noToken = await run('GET', '/acme/agent_registrations');
    expect(noToken.status).toBe(401);
    expect(noToken.body).toMatchObject({ error: 'invalid_token' });
    expect(noToken.headers).toMatchObject({ 'Cache-Control': 'no-store', Pragma: 'no-cache' });
  });

  it('agentKey: required gives the agent; if_sent refuses only a key that is not of this tenant', async () => {
    const { t, run } = setup();
    t.aid('POST', '/:t/agent_registrations/request', { tenant: true, agentKey: 'required' }, (_req, { agent }) => ({
      status: 202,
      body: { agent: agent.id },
    }));
    t.aid('POST', '/:t/oauth/token', { tenant: true, agentKey: 'if_sent' }, () => ({ status: 200 }));
    expect((await run('POST', '/acme/agent_registrations/request', { xApiKey: 'good' })).body).toEqual({
      agent: 'agt_a',
    });
    const missing = await run('POST', '/acme/agent_registrations/request');
    expect([missing.status, (missing.body as { error: string }).error]).toEqual([401, 'invalid_client']);
    expect((await run('POST', '/acme/oauth/token')).status).toBe(200);
    expect((await run('POST', '/acme/oauth/token', { xApiKey: 'good' })).status).toBe(200);
    expect((await run('POST', '/acme/oauth/token', { xApiKey: 'bad' })).status).toBe(401);
  });

  it('introspector: an agent key of the tenant, or a bearer token with either scope', async () => {
    const { t, calls, run } = setup();
    t.aid('POST', '/:t/oauth/introspect', { tenant: true, introspector: true }, (_req, { caller }) => ({
      status: 200,
      body: { caller },
    }));
    expect((await run('POST', '/acme/oauth/introspect', { xApiKey: 'good' })).body).toEqual({ caller: 'agent:agt_a' });
    expect((await run('POST', '/acme/oauth/introspect', { authorization: 'Bearer admin' })).body).toEqual({
      caller: 'admin-1',
    });
    calls.length = 0;
    const refused = await run('POST', '/acme/oauth/introspect', { authorization: 'Bearer other' });
    expect([refused.status, (refused.body as { error: string }).error]).toEqual([401, 'invalid_client']);
    expect(calls).toEqual(['tenant', 'admin acme agent_registrations:read', 'admin acme aid:introspect']);
  });
});
