// The admin console's data routes (amp:admin guard; GET: a read scope is enough): the live
// overview as Server-Sent Events, and the tenant's merged audit log as JSON pages or CSV.

import type { AuditView } from '../../console/audit-view.js';
import type { LiveHub } from '../../console/live.js';
import { NO_STORE, type RouteTable } from './route-table.js';

const ADMIN = { auth: 'admin' } as const;
/** The merged audit log includes the AID activity log: an AID reader may read it too. */
const AUDIT_READERS = { auth: 'admin', orReadScope: 'agent_registrations:read' } as const;

export interface ConsoleDataDeps {
  live: LiveHub;
  audit: AuditView;
}

export const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-store',
  'X-Accel-Buffering': 'no',
};

export function addConsoleDataRoutes(t: RouteTable, { live, audit }: ConsoleDataDeps): void {
  t.api('GET', '/console/live', ADMIN, (req) => {
    const alive = t.sessionAlive(req);
    return { status: 200, headers: SSE_HEADERS, stream: (sink) => live.add(sink, alive) };
  });
  t.api('GET', '/admin/audit', AUDIT_READERS, (req, { admin: a }) => {
    if (req.query.get('format') === 'csv')
      return {
        status: 200,
        body: audit.csv(a.tenant, req.query),
        headers: {
          ...NO_STORE,
          'Content-Type': 'text/csv; charset=utf-8',
          'Content-Disposition': 'attachment; filename="amp-audit.csv"',
        },
      };
    return { status: 200, body: audit.page(a.tenant, req.query), headers: NO_STORE };
  });
}
