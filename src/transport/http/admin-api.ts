// Operators' AMP endpoints under /api/v1/admin (and /v1/admin), beside spec §20's suspend and
// unsuspend: the tenant's agents, their queues, and deregistering one. Each takes an `amp:admin`
// JWT (checked before any body is read); the token's tenant is the only tenant shown.

import type { IdentityRoutes } from '../../identity/routes.js';
import type { AdminView } from '../../relay/admin.js';
import { NO_STORE, type RouteTable } from './route-table.js';
import type { HttpReply } from './router.js';

const PUBLIC = { auth: 'none' } as const;
const ok = (body: unknown): HttpReply => ({ status: 200, body, headers: NO_STORE });

export function addAdminRoutes(t: RouteTable, identity: IdentityRoutes, admin: AdminView): void {
  const tenantOf = async (authorization: string) => (await identity.ampAdmin(authorization)).tenant;
  t.api('GET', '/admin/agents', PUBLIC, async (req) =>
    ok(admin.listAgents(await tenantOf(req.headers.authorization), req.query)),
  );
  t.api('GET', '/admin/agents/:agent_id', PUBLIC, async (req) =>
    ok(admin.agent(await tenantOf(req.headers.authorization), req.params.agent_id)),
  );
  t.api('DELETE', '/admin/agents/:agent_id', PUBLIC, async (req) =>
    ok(await admin.deregister(await tenantOf(req.headers.authorization), req.params.agent_id)),
  );
  t.api('GET', '/admin/queues', PUBLIC, async (req) =>
    ok(admin.queues(await tenantOf(req.headers.authorization), req.query)),
  );
}
