// Operators' AMP endpoints under /api/v1/admin (and /v1/admin), beside spec §20's suspend and
// unsuspend: the tenant's agents, their queues, and deregistering one. Each takes an `amp:admin`
// JWT, checked by the route table's admin guard before any body is read; the token's tenant is the only tenant shown.

import type { AdminView } from '../../relay/admin.js';
import { NO_STORE, type RouteTable } from './route-table.js';
import type { HttpReply } from './router.js';

const ADMIN = { auth: 'admin' } as const;
const ok = (body: unknown): HttpReply => ({ status: 200, body, headers: NO_STORE });

export function addAdminRoutes(t: RouteTable, admin: AdminView): void {
  t.api('GET', '/admin/agents', ADMIN, (req, { admin: a }) => ok(admin.listAgents(a.tenant, req.query)));
  t.api('GET', '/admin/agents/:agent_id', ADMIN, (req, { admin: a }) => ok(admin.agent(a.tenant, req.params.agent_id)));
  t.api('DELETE', '/admin/agents/:agent_id', ADMIN, async (req, { admin: a }) =>
    ok(await admin.deregister(a, req.params.agent_id)),
  );
  t.api('GET', '/admin/queues', ADMIN, (req, { admin: a }) => ok(admin.queues(a.tenant, req.query)));
}
