// The OpenAPI 3.1 document of the REST surface, served at GET /openapi.json (and under the API
// mounts). It is derived from the route table itself: every registered route is an operation,
// its guard gives the security and the guard's errors, route-docs.ts the summary, schemas (TypeBox,
// proto/api-schemas.ts) and the route's own error codes; the AMP and AID error catalogs are
// enumerated in full. Built and serialized once, on the first request (after every route is
// registered); only `servers` depends on the request, and it is spliced into that text.

import { API_SCHEMAS } from '../../../proto/api-schemas.js';
import { AID_ERROR_ALIASES, ERROR_ALIASES } from '../../../proto/index.js';
import { aidErrorsJson, ampErrorsJson } from '../../../proto/artifacts.js';
import type { Config } from '../../config/schema.js';
import { publicCacheHeaders } from '../../ops/discovery.js';
import { providerUrls } from '../../relay/context.js';
import { VERSION } from '../../version.js';
import { DOC_MOUNT, docKey, docPath, operation, templatePath } from './openapi-operation.js';
import { ROUTE_DOCS, type RouteDoc } from './route-docs.js';
import type { RouteEntry, RouteTable } from './route-table.js';

type Json = Record<string, unknown>;

export const OPENAPI_VERSION = '3.1.0';

const DESCRIPTION = `AMP provider with Agent Identity (AID).

Every \`${DOC_MOUNT}/...\` path is served under \`/v1/...\` as well. HEAD is answered for every GET,
OPTIONS with the CORS preflight. AMP errors are \`AmpError\` bodies \`{error, message, field?, details}\`;
AID routes (\`/{t}/...\`) answer \`AidError\` bodies \`{error, error_description, errors[]}\`
(OAuth and JSON:API shapes at once). Both catalogs are in \`x-error-catalogs\` and in the
\`AmpErrorCode\` and \`AidErrorCode\` schemas; each operation lists the codes it may answer, by status.
The WebSocket protocol (\`GET ${DOC_MOUNT}/ws\` with Upgrade) is described in the README.`;

const SECURITY_SCHEMES = {
  apiKey: {
    type: 'http',
    scheme: 'bearer',
    description: "The agent's AMP API key (amp_live_sk_...), from POST /api/v1/register",
  },
  apiKeyHeader: {
    type: 'apiKey',
    in: 'header',
    name: 'X-API-Key',
    description: "The agent's AMP API key, in X-API-Key (the only form AID routes read)",
  },
  adminJwt: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      "An admin or service JWT of the tenant's issuer (agent-identity §10); the requirement names the scope " +
      '(agent_registrations:read, agent_registrations:write, aid:introspect, amp:admin). ' +
      '`npx amp-relay admin-token` mints one from the data dir.',
  },
  metricsToken: {
    type: 'http',
    scheme: 'bearer',
    description: 'GET /metrics: AMP_METRICS_TOKEN, needed only when the server sets one',
  },
  aidAccessToken: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description:
      'An agent access token from POST /{t}/oauth/token, for other services (resource servers); ' +
      'they check it against the JWKS or POST /{t}/oauth/introspect. No route here takes it as a credential.',
  },
};

/** Both catalogs as proto/generated/ publishes them, with their aliases. */
function errorCatalogs(): Json {
  return {
    amp: ampErrorsJson(),
    aid: aidErrorsJson(),
    aliases: { amp: ERROR_ALIASES, aid: AID_ERROR_ALIASES },
  };
}

/** Registered routes without an entry in `docs`, and entries that name no registered route. */
export function routeDocCoverage(
  routes: readonly RouteEntry[],
  docs: Readonly<Record<string, RouteDoc>> = ROUTE_DOCS,
): { undocumented: string[]; stale: string[] } {
  const keys = new Set(routes.map(docKey));
  return {
    undocumented: [...keys].filter((k) => !(k in docs)),
    stale: Object.keys(docs).filter((k) => !keys.has(k)),
  };
}

/** The document without `servers` (which depends on the request). */
export function buildOpenApi(
  routes: readonly RouteEntry[],
  docs: Readonly<Record<string, RouteDoc>> = ROUTE_DOCS,
): Json {
  const paths: Record<string, Record<string, Json>> = {};
  const ids = new Set<string>();
  for (const r of routes) {
    const op = operation(r, docs[docKey(r)]);
    let id = `${r.method.toLowerCase()}${docPath(r).replace(/[^A-Za-z0-9]+/g, '_')}`.replace(/_+$/, '');
    for (let n = 2; ids.has(id); n++) id = `${id}_${n}`;
    ids.add(id);
    const path = templatePath(docPath(r));
    paths[path] ??= {};
    paths[path][r.method.toLowerCase()] = { operationId: id, ...op };
  }
  return {
    openapi: OPENAPI_VERSION,
    info: {
      title: 'amp-relay',
      version: VERSION,
      description: DESCRIPTION,
      license: { name: 'MIT', identifier: 'MIT' },
    },
    paths,
    components: {
      // JSON round trip: TypeBox marks its schemas with symbol keys, which are not part of the schema.
      schemas: JSON.parse(JSON.stringify(API_SCHEMAS)),
      securitySchemes: SECURITY_SCHEMES,
    },
    'x-error-catalogs': errorCatalogs(),
  };
}

/**
 * The document's text with `servers` left out, in two halves: `servers` for a request is spliced in
 * between, so each Host gets its own URL and nothing is kept per Host.
 */
export function openApiText(doc: Json): (base: string) => string {
  const { openapi, info, ...rest } = doc;
  const head = JSON.stringify({ openapi, info }).slice(0, -1);
  const tail = JSON.stringify(rest).slice(1);
  return (base) => `${head},"servers":${JSON.stringify([{ url: base }])},${tail}`;
}

/** GET /openapi.json, /v1/openapi.json and /api/v1/openapi.json: the document of `t`'s routes. */
export function addOpenApiRoutes(t: RouteTable, config: Config): void {
  let text: ((base: string) => string) | undefined;
  const serve = (host: string, forwardedProto: string) => {
    const base = providerUrls(config, host, forwardedProto).endpoint.slice(0, -DOC_MOUNT.length);
    text ??= openApiText(buildOpenApi(t.routes));
    // Access-Control-Allow-Origin: the configured AMP_CORS_ORIGIN, as on every answer (respond.ts).
    const headers = { ...publicCacheHeaders(config, 300), 'Content-Type': 'application/json; charset=utf-8' };
    return { status: 200, body: text(base), headers };
  };
  const handler = (req: { headers: { host: string; forwardedProto: string } }) =>
    serve(req.headers.host, req.headers.forwardedProto);
  t.root('GET', '/openapi.json', { auth: 'none' }, handler);
  t.api('GET', '/openapi.json', { auth: 'none' }, handler);
}
