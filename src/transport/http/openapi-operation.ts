// One OpenAPI operation from a registered route: its guard says who may call it and which errors
// the guard itself answers; route-docs.ts adds the summary, schemas and the route's own codes.

import { AID_ERROR_CATALOG, type AidErrorSpec, ERROR_CATALOG, type ErrorSpec } from '../../../proto/index.js';
import type { RouteDoc } from './route-docs.js';
import type { AidGuard, AmpGuard, RouteEntry } from './route-table.js';
import { API_MOUNTS } from './router.js';

type Json = Record<string, unknown>;

/** Where every API route is documented; the other mount (`/v1`) serves the same routes. */
export const DOC_MOUNT = API_MOUNTS[1];

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

const PARAM_DOCS: Record<string, string> = {
  t: 'The tenant (organisation) id',
  tenant: 'The tenant (organisation) id',
  id: 'The message id (AMP) or registration id (AID)',
  address: 'An AMP address (name@tenant.provider)',
  agent_id: 'The AMP agent id',
};

/** The path as served (`:name` parameters), which is also the route's key in route-docs.ts. */
export function docPath(r: RouteEntry): string {
  return r.mount === 'api' ? DOC_MOUNT + r.path : r.path;
}

export function docKey(r: RouteEntry): string {
  return `${r.method} ${docPath(r)}`;
}

/** OpenAPI path templating: `/:t/x` -> `/{t}/x`. */
export function templatePath(path: string): string {
  return path.replace(/:(\w+)/g, '{$1}');
}

/** The codes a route's guard (and the body reader) may answer before or around its handler. */
function guardCodes(r: RouteEntry, doc: RouteDoc | undefined): string[] {
  const codes: string[] = [];
  const body = BODY_METHODS.has(r.method);
  if (r.mount !== 'aid') {
    const g = r.guard as AmpGuard;
    if (g.auth === 'agent') codes.push('unauthorized', 'rate_limited');
    if (g.auth === 'admin') codes.push('unauthorized', 'forbidden');
    if (g.auth === 'none' && g.bucket) codes.push('rate_limited');
    if (body) codes.push('invalid_request', 'request_too_large', 'insufficient_storage');
    return codes;
  }
  const g = r.guard as AidGuard;
  if (g.tenant) codes.push('not_found');
  if (g.tenant && g.admin) codes.push('invalid_token', 'insufficient_scope');
  if (g.tenant && (g.agentKey || g.introspector)) codes.push('invalid_client');
  if (body || doc?.query) codes.push('invalid_request');
  if (body) codes.push('invalid_request@413');
  return codes;
}

/**
 * The error statuses of `entry`, a catalog code (its own status) or `code@status` for one of the
 * other statuses the AID catalog gives the code (`invalid_proof@401`); [] for anything else.
 */
export function errorStatuses(entry: string, aid: boolean): number[] {
  const [code, at] = entry.split('@');
  const spec = aid
    ? (AID_ERROR_CATALOG as Record<string, AidErrorSpec>)[code]
    : (ERROR_CATALOG as Record<string, ErrorSpec>)[code];
  if (!spec) return [];
  if (at === undefined) return spec.status >= 400 ? [spec.status] : [];
  const also = Number(at);
  const allowed = 'alsoStatus' in spec && spec.alsoStatus !== undefined && also in spec.alsoStatus;
  return allowed && also >= 400 ? [also] : [];
}

function codeDoc(code: string, aid: boolean): string {
  const catalog = (aid ? AID_ERROR_CATALOG : ERROR_CATALOG) as Record<string, { doc: string }>;
  return catalog[code]?.doc ?? '';
}

/** Error responses by status, each naming its codes (the `error` member is narrowed to them). */
export function errorResponses(codes: readonly string[], aid: boolean): Record<string, Json> {
  const byStatus = new Map<number, string[]>();
  for (const entry of new Set(codes)) {
    const code = entry.split('@')[0];
    for (const status of errorStatuses(entry, aid)) {
      const list = byStatus.get(status) ?? [];
      if (!list.includes(code)) byStatus.set(status, [...list, code]);
    }
  }
  const out: Record<string, Json> = {};
  const shape = aid ? 'AidError' : 'AmpError';
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: list.map((c) => `\`${c}\`: ${codeDoc(c, aid)}`).join('; '),
      content: {
        'application/json': {
          schema: {
            allOf: [{ $ref: `#/components/schemas/${shape}` }, { properties: { error: { enum: list } } }],
          },
        },
      },
    };
  }
  return out;
}

/** Security requirements: alternatives, any one of which is enough (`{}`: none needed). */
function security(r: RouteEntry, doc: RouteDoc | undefined): Json[] | undefined {
  if (r.mount !== 'aid') {
    const { auth } = r.guard as AmpGuard;
    if (auth === 'agent') return [{ apiKey: [] }, { apiKeyHeader: [] }];
    if (auth === 'admin') return [{ adminJwt: ['amp:admin'] }];
    return doc?.security ? [...doc.security] : undefined;
  }
  const g = r.guard as AidGuard;
  if (!g.tenant) return undefined;
  if (g.admin) return [{ adminJwt: [g.admin] }];
  if (g.agentKey === 'required') return [{ apiKeyHeader: [] }];
  if (g.agentKey === 'if_sent') return [{}, { apiKeyHeader: [] }];
  if (g.introspector)
    return [{ adminJwt: ['agent_registrations:read'] }, { adminJwt: ['aid:introspect'] }, { apiKeyHeader: [] }];
  return undefined;
}

function parameters(path: string, doc: RouteDoc | undefined): Json[] {
  const params: Json[] = [...path.matchAll(/:(\w+)/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: { type: 'string' },
    description: doc?.params?.[name] ?? PARAM_DOCS[name] ?? name,
  }));
  for (const [name, description] of Object.entries(doc?.query ?? {}))
    params.push({ name, in: 'query', required: false, schema: { type: 'string' }, description });
  for (const [name, description] of Object.entries(doc?.headers ?? {}))
    params.push({ name, in: 'header', required: false, schema: { type: 'string' }, description });
  return params;
}

function successContent(doc: RouteDoc | undefined): Json | undefined {
  if (doc?.status === 101) return undefined;
  if (doc?.text) return { [doc.text === true ? 'text/plain' : doc.text]: { schema: { type: 'string' } } };
  const schema = doc?.res
    ? { $ref: `#/components/schemas/${doc.res}` }
    : { type: 'object', additionalProperties: true, description: doc?.summary ?? 'A JSON object' };
  return { 'application/json': { schema } };
}

function requestBody(r: RouteEntry, doc: RouteDoc | undefined): Json | undefined {
  if (!doc?.body) return undefined;
  const schema = { $ref: `#/components/schemas/${doc.body}` };
  const content: Json = { 'application/json': { schema } };
  if (r.mount === 'aid') content['application/x-www-form-urlencoded'] = { schema };
  return { required: !doc.bodyOptional, content };
}

function tagOf(r: RouteEntry): string {
  if (r.mount === 'aid' || r.path.includes('jwks') || r.path.includes('/oauth')) return 'Agent Identity (AID)';
  const first = r.path.split('/')[1];
  if (['register', 'route', 'messages', 'inbox'].includes(first)) return 'Messages';
  if (first === 'agents') return r.path.includes('suspend') ? 'Operators' : 'Agents';
  if (first === 'auth') return 'Keys';
  return 'Discovery and operations';
}

/** A 401 that is not about an API key says what it is about (AMP routes; AID ones name their codes). */
function unauthorizedDoc(r: RouteEntry, doc: RouteDoc | undefined): string | undefined {
  if (r.mount === 'aid') return undefined;
  if ((r.guard as AmpGuard).auth === 'admin')
    return '`unauthorized`: missing, invalid or expired admin JWT (scope amp:admin; `amp-relay admin-token` mints one)';
  return doc?.unauthorized && `\`unauthorized\`: ${doc.unauthorized}`;
}

/** The operation for `r`; `operationId` is left to the caller (it must be unique in the document). */
export function operation(r: RouteEntry, doc: RouteDoc | undefined): Json {
  const aid = r.mount === 'aid';
  const codes = [...guardCodes(r, doc), ...(doc?.errors ?? [])];
  const responses: Record<string, Json> = {
    [String(doc?.status ?? 200)]: { description: doc?.summary ?? 'Success', content: successContent(doc) },
    ...Object.fromEntries(
      Object.entries(doc?.also ?? {}).map(([s, why]) => [s, { description: why, content: successContent(doc) }]),
    ),
    ...errorResponses(codes, aid),
  };
  const unauthorized = unauthorizedDoc(r, doc);
  if (unauthorized && responses['401']) responses['401'] = { ...responses['401'], description: unauthorized };
  // Shutting down: answered before routing, in the AMP shape, on every path.
  responses['503'] ??= errorResponses(['service_unavailable'], false)['503'];
  const op: Json = {
    tags: [tagOf(r)],
    summary: doc?.summary ?? `${r.method} ${docPath(r)} (undocumented)`,
    ...(doc ? {} : { 'x-undocumented': true }),
    ...(doc?.description && { description: doc.description }),
    parameters: parameters(r.path, doc),
    ...(requestBody(r, doc) && { requestBody: requestBody(r, doc) }),
    responses,
  };
  const sec = security(r, doc);
  if (sec) op.security = sec;
  return op;
}
