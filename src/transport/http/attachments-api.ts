// Attachment endpoints (spec §22) under both API mounts: upload init, the PUT of the bytes to the
// signed upload URL (streamed to disk as they arrive), confirm, status, the two downloads (API key,
// or the signed `url`), and the operators' approval of held files.

import { AmpError } from '../../../proto/index.js';
import type { AttachmentAdmin } from '../../attachments/admin.js';
import type { FileAnswer } from '../../attachments/download.js';
import { fileAnswer } from '../../attachments/download.js';
import type { Attachments } from '../../attachments/service.js';
import { providerUrls, type RelayContext } from '../../relay/context.js';
import type { AttachmentRecord } from '../../store/types.js';
import { NO_STORE, type RouteTable } from './route-table.js';
import type { HttpReply, HttpRequest } from './router.js';

const AGENT = { auth: 'agent', bucket: 'api' } as const;
const PUBLIC = { auth: 'none' } as const;
const ADMIN = { auth: 'admin' } as const;

export interface AttachmentDeps {
  ctx: RelayContext;
  attachments: Attachments;
  admin: AttachmentAdmin;
}

const ok = (body: unknown, status = 200): HttpReply => ({ status, body, headers: NO_STORE });

export function addAttachmentRoutes(t: RouteTable, { ctx, attachments, admin }: AttachmentDeps): void {
  const endpoint = (req: HttpRequest) =>
    providerUrls(ctx.config, req.headers.host, req.headers.forwardedProto).endpoint;
  const download = (rec: AttachmentRecord, req: HttpRequest): HttpReply =>
    fileReply(fileAnswer(rec, attachments.blobs.pathOf(rec.digest), req.headers));

  t.api('POST', '/attachments/upload', AGENT, async (req, { agent }) =>
    ok(await attachments.init(agent, await req.body.json(), endpoint(req)), 201),
  );
  t.api(
    'PUT',
    '/attachments/:id/content',
    PUBLIC,
    async (req) => ok(await attachments.upload(req.params.id, req.query, req.headers.contentLength, req.body)),
    { streamBody: true },
  );
  t.api('POST', '/attachments/:id/confirm', AGENT, async (req, { agent }) =>
    ok(await attachments.confirm(agent, req.params.id)),
  );
  t.api('GET', '/attachments/:id', AGENT, (req, { agent }) =>
    ok(attachments.status(agent, req.params.id, endpoint(req))),
  );
  t.api('GET', '/attachments/:id/download', AGENT, (req, { agent }) =>
    download(attachments.visible(agent, req.params.id), req),
  );
  t.api('GET', '/attachments/:id/file', PUBLIC, (req) =>
    download(attachments.byFileUrl(req.params.id, req.query), req),
  );

  t.api('GET', '/admin/attachments', ADMIN, (req, { admin: a }) => ok(admin.list(a.tenant, req.query)));
  t.api('GET', '/admin/attachments/audit', ADMIN, (req, { admin: a }) => ok(admin.auditTrail(a.tenant, req.query)));
  t.api('GET', '/admin/attachments/:id/preview', ADMIN, async (req, { admin: a }) =>
    ok(await admin.preview(a.tenant, req.params.id)),
  );
  t.api('POST', '/admin/attachments/:id/approve', ADMIN, async (req, { admin: a }) =>
    ok(await admin.approve({ ...a, ip: req.ip }, req.params.id)),
  );
  t.api('POST', '/admin/attachments/:id/reject', ADMIN, async (req, { admin: a }) => {
    const text = (await req.body.text()).trim();
    const body = text === '' ? {} : await req.body.json();
    if (body.reason !== undefined && body.reason !== null && typeof body.reason !== 'string')
      throw new AmpError('invalid_field', 'reason must be a string', { field: 'reason' });
    const reason = typeof body.reason === 'string' && body.reason.trim() !== '' ? body.reason.slice(0, 500) : null;
    return ok(await admin.reject({ ...a, ip: req.ip }, req.params.id, reason));
  });
}

function fileReply(a: FileAnswer): HttpReply {
  return a.file
    ? { status: a.status, headers: a.headers, file: a.file }
    : { status: a.status, headers: a.headers, body: a.body };
}
