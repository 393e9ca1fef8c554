// The OpenAPI generator on a small route table: a route without an entry in route-docs.ts is
// still published (generically, marked x-undocumented) and the coverage check names it; the
// document stays valid OpenAPI 3.1. The served document is checked in test/integration/openapi.test.ts.
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { buildOpenApi, routeDocCoverage } from '../../src/transport/http/openapi.js';
import { type GuardDeps, RouteTable } from '../../src/transport/http/route-table.js';
import { Router } from '../../src/transport/http/router.js';

// Registration does not call the guards' collaborators; no request is made here.
const table = () => new RouteTable(new Router(), {} as GuardDeps);
const nothing = () => ({ status: 200, body: {} });

describe('buildOpenApi', () => {
  it('publishes a route without docs generically, and the coverage check names it', async () => {
    const t = table()
      .api('POST', '/route', { auth: 'agent', bucket: 'route' }, nothing)
      .api('POST', '/brand-new/:thing', { auth: 'agent', bucket: 'api' }, nothing)
      .aid('GET', '/:t/agent_registrations', { tenant: true, admin: 'agent_registrations:read' }, nothing);
    const doc = buildOpenApi(t.routes) as any;
    const op = doc.paths['/api/v1/brand-new/{thing}'].post;
    expect(op).toMatchObject({ summary: 'POST /api/v1/brand-new/:thing (undocumented)', 'x-undocumented': true });
    expect(op.parameters).toEqual([expect.objectContaining({ name: 'thing', in: 'path', required: true })]);
    expect(Object.keys(op.responses)).toEqual(['200', '400', '401', '413', '429', '503', '507']);
    expect(op.security).toEqual([{ apiKey: [] }, { apiKeyHeader: [] }]);
    expect(doc.paths['/api/v1/route'].post['x-undocumented']).toBeUndefined();

    const coverage = routeDocCoverage(t.routes);
    expect(coverage.undocumented).toEqual(['POST /api/v1/brand-new/:thing']);
    expect(coverage.stale).toContain('GET /api/v1/agents/me');
    expect(coverage.stale).not.toContain('POST /api/v1/route');

    const result = await new Validator().validate({ ...doc, servers: [{ url: 'http://localhost:23000' }] });
    expect(result.errors ?? []).toEqual([]);
  });

  it('lists AID codes under the status the route gives them (invalid_proof is 401 only where named so)', () => {
    const t = table()
      .aid('POST', '/:t/oauth/token', { tenant: true, agentKey: 'if_sent' }, nothing)
      .aid('POST', '/:t/agent_registrations/:id/status', { tenant: true }, nothing);
    const doc = buildOpenApi(t.routes) as any;
    const codes = (path: string, status: number) =>
      doc.paths[path].post.responses[status]?.content['application/json'].schema.allOf[1].properties.error.enum ?? [];
    expect(codes('/{t}/oauth/token', 400)).toContain('invalid_proof');
    expect(codes('/{t}/oauth/token', 401)).toEqual(['invalid_client']);
    expect(codes('/{t}/agent_registrations/{id}/status', 401)).toEqual(['invalid_proof']);
    expect(codes('/{t}/agent_registrations/{id}/status', 413)).toEqual(['invalid_request']);
    expect(doc.paths['/{t}/oauth/token'].post.security).toEqual([{}, { apiKeyHeader: [] }]);
  });
});
