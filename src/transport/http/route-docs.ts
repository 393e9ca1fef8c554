// What the OpenAPI document (openapi.ts) says about each route, keyed `METHOD path` with the path
// as served (`/api/v1/...` for an API route, which /v1 serves too). The route table decides which
// routes exist; this file only describes them. A registered route without an entry here is
// published with a generic description and fails test/integration/openapi.test.ts, which prints
// the missing keys: adding a route means adding one line here, e.g.
//
//   'GET /api/v1/admin/agents': { summary: 'List the agents of a tenant (admin)' },
//
// `errors` lists the codes a route raises itself; those of its guard (authentication, rate limits,
// body reading, unknown tenant, admin token) are added from the guard by openapi.ts.

import type { ApiSchemaName } from '../../../proto/api-schemas.js';

export interface RouteDoc {
  summary: string;
  description?: string;
  /** The request body's schema (AID routes take it as JSON or form-urlencoded). */
  body?: ApiSchemaName;
  /** The body may be left out. */
  bodyOptional?: true;
  /** The success answer's schema; without one it is a JSON object described by `summary`. */
  res?: ApiSchemaName;
  /** The success status (200 by default). */
  status?: number;
  /** Plain text instead of JSON (metrics), or text of this media type (`text/event-stream`). */
  text?: true | string;
  /**
   * Codes the route itself may answer, from the AMP catalog (AMP routes) or the AID one (AID routes),
   * each under its status; `code@status` for another status the AID catalog gives it (`invalid_proof@401`).
   */
  errors?: readonly string[];
  /** Security requirements the handler checks itself (the guard lets everyone in), as OpenAPI gives them. */
  security?: readonly Readonly<Record<string, readonly string[]>>[];
  /** What a 401 means here, when not the catalog's (missing or wrong API key). */
  unauthorized?: string;
  /** Path parameters that mean more here than their usual description. */
  params?: Readonly<Record<string, string>>;
  /** More statuses answered with the success schema, and when. */
  also?: Readonly<Record<number, string>>;
  /** Request headers (other than the credentials) and what they mean. */
  headers?: Readonly<Record<string, string>>;
  /** Query parameters and what they mean. */
  query?: Readonly<Record<string, string>>;
}

const FEDERATION_HEADERS = {
  'X-AMP-Provider': 'The calling provider (its key comes from a pin or discovery, never from the request)',
  'X-AMP-Timestamp': 'Unix seconds, within 300 s of this server',
  'X-AMP-Signature': 'base64 Ed25519 by the provider key over "<timestamp>.<signed bytes>"',
} as const;
const BY_ID_OR_ADDRESS = "The agent's AMP id (agt_...) or its address (name@tenant.provider)";
const ACK_ERRORS = ['missing_field', 'invalid_field', 'not_found', 'agent_suspended'] as const;
const ACK_ONE: RouteDoc = {
  summary: 'Acknowledge one message (removes it from the queue)',
  res: 'AckOne',
  errors: ACK_ERRORS,
};
const ACK_BATCH = {
  summary: 'Acknowledge a batch of messages',
  body: 'BatchAckBody',
  res: 'AckBatch',
  errors: ['missing_field', 'invalid_field', 'agent_suspended'],
} as const;
const PENDING = {
  summary: 'List queued messages, oldest first (peek: they stay until acked)',
  res: 'PendingList',
  errors: ['invalid_field', 'agent_suspended'],
  query: { limit: 'At most this many messages (default 10, at most 100)' },
} as const;
const RESOLVE: RouteDoc = {
  summary: "Resolve an address to its agent's public key",
  res: 'ResolvedAgent',
  errors: ['not_found', 'invalid_field', 'external_provider'],
};
const TRANSITION = {
  res: 'RegistrationResource',
  errors: ['not_found', 'invalid_transition', 'validation_failed'],
} as const;
const DISCOVERY = { errors: ['not_found'], res: 'IssuerMetadata' } as const;
const POLL =
  'A 200 answer carries `error: authorization_pending` while the request waits, and `error: access_denied` ' +
  'once rejected (403 instead under AID_STRICT_RFC8628_POLLING).';
const AUDIT_QUERY = { event_type: 'Only this event type', since: 'ISO time', page: '1-based', records: 'Page size' };

export const ROUTE_DOCS: Readonly<Record<string, RouteDoc>> = {
  // Discovery, health, operations
  'GET /.well-known/agent-messaging.json': { summary: 'Provider discovery document (AMP)', res: 'ProviderDiscovery' },
  'GET /api/organization': { summary: "The provider's default tenant (reference CLI)" },
  'GET /api/v1/info': { summary: 'Provider capabilities and limits' },
  'GET /api/v1/health': {
    summary: 'Health ("degraded" while writes fail)',
    res: 'Health',
    also: { 503: 'unhealthy: the store is down or the server shuts down' },
  },
  'GET /api/v1/ready': { summary: 'Readiness', res: 'Ready', also: { 503: 'writes fail, or the server shuts down' } },
  'GET /metrics': {
    summary: 'Prometheus metrics',
    text: true,
    errors: ['unauthorized'],
    security: [{}, { metricsToken: [] }],
    unauthorized: 'AMP_METRICS_TOKEN is set and `Authorization: Bearer <it>` is missing or wrong',
  },
  'GET /openapi.json': { summary: 'This OpenAPI 3.1 document' },
  'GET /api/v1/openapi.json': { summary: 'This OpenAPI 3.1 document (under the API mount)' },
  'GET /api/v1/ws': {
    summary: 'WebSocket endpoint (Upgrade: websocket); a plain GET is 400',
    description:
      'Send `Upgrade: websocket` to get `101 Switching Protocols`; authenticate with the first frame ' +
      '(spec §17) or `Authorization: Bearer`. Frames and close codes are in the README (WebSocket).',
    status: 101,
    headers: { Upgrade: 'websocket', 'Sec-WebSocket-Protocol': 'amp.v1 (JSON, the default) or amp.v1+msgpack' },
    errors: ['invalid_request'],
  },
  // Federation (§19.1): provider-to-provider, no API key; the calling provider signs each request.
  'POST /api/v1/federation/deliver': {
    summary: 'Deliver a message from another provider (signed by that provider)',
    description:
      'Body {envelope, payload, sender_public_key}. Answers {accepted: true, id, delivered, method} ' +
      '(+ duplicate: true for a repeated id with the same content); refusals are {accepted: false, error, message}.',
    headers: FEDERATION_HEADERS,
    errors: [
      'invalid_request',
      'missing_field',
      'invalid_field',
      'timestamp_future',
      'provider_not_trusted',
      'signature_invalid',
      'key_mismatch',
      'key_revoked',
      'recipient_not_found',
      'recipient_suspended',
      'replay_detected',
      'request_too_large',
      'payload_too_large',
      'rate_limited',
      'queue_full',
      'service_unavailable',
    ],
  },
  'GET /api/v1/federation/keys/:address': {
    summary: "An agent's current key, for its messages' recipients' providers (signed by the asking provider)",
    description:
      'X-AMP-Signature covers "<timestamp>.<address>\\n<fingerprint>". Answers {address, public_key, fingerprint, ' +
      'key_revoked}: key_revoked tells whether the asked fingerprint is a revoked key of this agent.',
    headers: FEDERATION_HEADERS,
    query: { fingerprint: 'The key the message came with (SHA256:…)' },
    params: { address: "The agent's full address" },
    errors: [
      'invalid_request',
      'timestamp_future',
      'provider_not_trusted',
      'signature_invalid',
      'replay_detected',
      'not_found',
      'rate_limited',
    ],
  },
  // Registration and messages
  'POST /api/v1/register': {
    summary: 'Register an agent (201); a signed re-registration of the same key recovers it (200)',
    headers: { 'X-Registration-Key': 'AMP_REGISTRATION_MODE=key: the key (or registration_key in the body)' },
    body: 'RegisterBody',
    res: 'RegisterResponse',
    status: 201,
    also: { 200: 'a signed re-registration of an existing agent: a new API key for it' },
    errors: [
      'missing_field',
      'invalid_field',
      'timestamp_future',
      'name_taken',
      'key_already_registered',
      'key_revoked',
      'tenant_access_denied',
      'signature_invalid',
      'unauthorized',
    ],
  },
  'POST /api/v1/route': {
    summary: 'Send a message (flat body, or {envelope, payload})',
    body: 'RouteRequest',
    headers: { 'Idempotency-Key': 'Makes a retry safe (§12.5); or idempotency_key in the body' },
    res: 'RouteResult',
    errors: [
      'missing_field',
      'invalid_field',
      'timestamp_future',
      'forbidden',
      'agent_suspended',
      'recipient_suspended',
      'key_revoked',
      'signature_invalid',
      'not_found',
      'duplicate_idempotency_key',
      'payload_too_large',
      'external_provider',
      'signature_missing',
      'attachments_not_supported',
      'attachment_not_found',
      'attachment_expired',
      'attachment_pending',
      'attachment_held',
      'attachment_rejected',
      'attachment_already_used',
      'too_many_attachments',
      'attachments_too_large',
      'queue_full',
    ],
  },
  'GET /api/v1/messages/pending': PENDING,
  'GET /api/v1/messages': { ...PENDING, summary: 'List queued messages (alias of GET messages/pending)' },
  'GET /api/v1/inbox': { ...PENDING, summary: 'List queued messages (alias of GET messages/pending)' },
  'DELETE /api/v1/messages/pending': { ...ACK_ONE, query: { id: 'The message id' } },
  'DELETE /api/v1/messages/pending/:id': ACK_ONE,
  'POST /api/v1/inbox/:id/ack': ACK_ONE,
  'DELETE /api/v1/inbox/:id': ACK_ONE,
  'POST /api/v1/messages/pending': ACK_BATCH,
  'POST /api/v1/messages/pending/ack': ACK_BATCH,
  'POST /api/v1/inbox/ack': ACK_BATCH,
  'POST /api/v1/messages/:id/read': {
    summary: 'Send a read receipt to the sender',
    errors: ['invalid_field', 'not_found'],
  },
  // Agents and keys
  'GET /api/v1/agents/me': { summary: "The calling agent's record", res: 'AgentSelf' },
  'PATCH /api/v1/agents/me': {
    summary: 'Update alias, delivery preference, metadata, capabilities',
    body: 'AgentUpdateBody',
    res: 'AgentUpdated',
    errors: ['invalid_field', 'agent_suspended'],
  },
  'DELETE /api/v1/agents/me': {
    summary: 'Deregister the calling agent (its keys are revoked)',
    res: 'AgentDeregistered',
  },
  'GET /api/v1/peers': {
    summary: 'Mesh hosts and federated providers: reachable or not, and what waits for each (§19)',
    res: 'Peers',
  },
  'GET /api/v1/agents/me/card': { summary: "The calling agent's Agent Card (provider-asserted)", res: 'AgentCard' },
  'GET /api/v1/agents': {
    summary: "List the agents of the caller's tenant",
    res: 'AgentList',
    errors: ['invalid_field', 'forbidden', 'agent_suspended'],
    query: {
      search: 'Substring of name or alias',
      q: 'Case-insensitive substring of the address, name, alias or id',
      limit: 'Page size',
      cursor: 'From the previous page',
    },
  },
  'GET /api/v1/agents/resolve/:address': RESOLVE,
  'GET /api/v1/agents/:address': { ...RESOLVE, summary: 'Resolve an address (legacy form: the segment holds an @)' },
  'POST /api/v1/agents/:agent_id/suspend': {
    summary: 'Suspend an agent (operator, amp:admin)',
    body: 'SuspendBody',
    bodyOptional: true,
    errors: ['unauthorized', 'forbidden', 'not_found', 'invalid_field'],
  },
  'POST /api/v1/agents/:agent_id/unsuspend': {
    summary: "Lift an operator's suspension (operator, amp:admin)",
    errors: ['unauthorized', 'forbidden', 'not_found'],
  },
  'GET /api/v1/admin/agents': {
    summary: "List the token tenant's agents with status, suspension, queue depth and last use (amp:admin)",
    errors: ['unauthorized', 'forbidden', 'invalid_field'],
    query: { search: 'Substring of name or alias', limit: 'Page size', cursor: 'From the previous page' },
  },
  'GET /api/v1/admin/agents/:agent_id': {
    summary: 'One agent of the token tenant, by id or address (amp:admin)',
    params: { agent_id: BY_ID_OR_ADDRESS },
    errors: ['unauthorized', 'forbidden', 'not_found'],
  },
  'DELETE /api/v1/admin/agents/:agent_id': {
    summary: 'Deregister an agent of the token tenant, by id or address (amp:admin)',
    params: { agent_id: BY_ID_OR_ADDRESS },
    errors: ['unauthorized', 'forbidden', 'not_found'],
  },
  'GET /api/v1/admin/audit': {
    summary:
      "The token tenant's audit log, newest first: AID activity, attachment decisions and operators' actions on agents (amp:admin:read, or agent_registrations:read)",
    description:
      'Rows {id, at, type, actor, ip, target, reason, source}; `types` lists every type. With format=csv: text/csv, every matching row (at most 50,000), cells quoted, a cell starting with = + - @ TAB or CR prefixed with an apostrophe.',
    errors: ['invalid_field'],
    query: {
      type: 'One of the listed types (exact)',
      actor: "Case-insensitive substring of the actor's e-mail or id",
      since: 'From this time on (ISO 8601 with a zone, or unix seconds)',
      before: 'Before this time (ISO 8601 with a zone, or unix seconds)',
      page: 'Page, from 1',
      records: 'Rows per page (default 25, at most 100)',
      format: 'csv for the CSV export',
    },
  },
  'GET /api/v1/console/live': {
    summary: 'The live overview as Server-Sent Events: a snapshot at once, then one per second (amp:admin)',
    description:
      'Each event is `event: snapshot` with JSON data: sessions and agents online, routed and pushed totals and rates, queue depth and oldest message age, store commit p50/p99 (ms, last 10 s), health, readiness, outbound queues.',
    text: 'text/event-stream',
  },
  'GET /api/v1/admin/queues': {
    summary: "Queue depths of the token tenant's agents, deepest first, with the oldest message (amp:admin)",
    errors: ['unauthorized', 'forbidden', 'invalid_field'],
    query: { limit: 'At most this many queues (default 20)' },
  },
  // The admin console's sign-in (README "Admin console"); its page is served at /admin.
  'POST /api/v1/console/session': {
    summary: 'Sign in to the admin console with a sign-in link token (amp-relay admin login); sets the session cookie',
    description:
      'Body {"token": "<the #login= part of the link>"}. Answers 201 {email, tenant, scopes, csrf_token, expires_at, ' +
      'features} and `Set-Cookie: amp_console=...; HttpOnly; SameSite=Strict`. A bad, expired or foreign link is 401 ' +
      '`invalid_login_link`, a link used before 401 `login_link_used` (each link works once).',
    status: 201,
    errors: ['invalid_request', 'rate_limited'],
  },
  'GET /api/v1/console/session': {
    summary: 'The signed-in console session (its amp_console cookie), with its CSRF token',
    errors: ['unauthorized'],
    unauthorized: 'no live console session (signed out, expired after 8 h, or the server restarted)',
  },
  'DELETE /api/v1/console/session': {
    summary: 'Sign out of the admin console (needs X-CSRF-Token); expires the cookie',
    headers: { 'X-CSRF-Token': "The session's csrf_token" },
    errors: ['unauthorized', 'forbidden'],
    unauthorized: 'no live console session',
  },
  // §22 attachments
  'POST /api/v1/attachments/upload': {
    summary: 'Declare a file (name, type, size, sha256 digest); answers a single-use signed upload URL',
    status: 201,
    errors: ['missing_field', 'invalid_field', 'invalid_digest_algorithm', 'attachment_too_large'],
  },
  'PUT /api/v1/attachments/:id/content': {
    summary: "The file's bytes, to the upload_url (the signed URL is the credential; streamed to disk)",
    description: 'Size and SHA-256 are checked as the bytes arrive; a body longer than declared is refused at once.',
    errors: [
      'upload_url_invalid',
      'upload_url_expired',
      'upload_already_used',
      'upload_size_mismatch',
      'upload_digest_mismatch',
      'attachment_not_found',
    ],
    query: { exp: 'Expiry of the URL (unix seconds)', sig: 'Signature of the URL' },
  },
  'POST /api/v1/attachments/:id/confirm': {
    summary: 'Confirm an upload: the scan starts (scan_status pending)',
    errors: ['attachment_not_found', 'upload_incomplete'],
  },
  'GET /api/v1/attachments/:id': {
    summary: "An attachment's status: scan_status always, url once it may be downloaded (owner or recipient)",
    errors: ['attachment_not_found'],
  },
  'GET /api/v1/attachments/:id/download': {
    summary: "The file's bytes (200, or 206 for a Range), for its owner or recipient",
    text: true,
    errors: [
      'attachment_not_found',
      'attachment_pending',
      'attachment_held',
      'attachment_rejected',
      'attachment_expired',
    ],
    headers: {
      Range: 'bytes=a-b (one range)',
      'If-None-Match': 'The ETag: 304 when unchanged',
      'If-Range': 'The ETag',
    },
  },
  'GET /api/v1/attachments/:id/file': {
    summary: "The file's bytes at its signed url (no API key), while the attachment lives",
    text: true,
    errors: [
      'attachment_not_found',
      'attachment_pending',
      'attachment_held',
      'attachment_rejected',
      'attachment_expired',
    ],
    query: { sig: 'Signature of the URL' },
  },
  'GET /api/v1/admin/attachments': {
    summary: "The token tenant's attachments, newest first; ?approval=pending lists those held (amp:admin)",
    errors: ['invalid_field'],
    query: { approval: 'pending, approved or rejected', limit: 'At most this many (default 100)' },
  },
  'GET /api/v1/admin/attachments/audit': {
    summary: 'Approvals and rejections of held attachments, newest first: who, when, from which IP (amp:admin)',
    query: { limit: 'At most this many (default 100)' },
  },
  'GET /api/v1/admin/attachments/:id/preview': {
    summary:
      'A safe preview of an attachment of the token tenant: the first 4 KiB of a text file, control characters removed (amp:admin)',
    description: 'Answers {previewable, text, truncated, reason}; a binary or non-text file is not previewable.',
    errors: ['attachment_not_found'],
  },
  'POST /api/v1/admin/attachments/:id/approve': {
    summary: 'Approve a held (suspicious) attachment: it may be sent, with a warning (amp:admin)',
    errors: ['attachment_not_found', 'attachment_rejected', 'invalid_request'],
  },
  'POST /api/v1/admin/attachments/:id/reject': {
    summary: 'Reject a held attachment: its file is deleted, routing it is refused (amp:admin)',
    bodyOptional: true,
    errors: ['attachment_not_found', 'invalid_request'],
  },
  'POST /api/v1/auth/rotate-key': {
    summary: 'Rotate the API key (the old one keeps a grace period)',
    res: 'RotateKeyResponse',
    errors: ['forbidden'],
  },
  'DELETE /api/v1/auth/revoke-key': { summary: 'Revoke every API key of the agent' },
  'POST /api/v1/auth/rotate-keys': {
    summary: 'Rotate the Ed25519 keypair (proof signed by the current key)',
    body: 'RotateKeysBody',
    errors: ['missing_field', 'invalid_field', 'signature_invalid', 'key_already_registered', 'key_revoked'],
  },
  // AID discovery
  'GET /.well-known/jwks.json': { summary: 'Signing keys of every tenant issuer (JWKS)', res: 'Jwks' },
  'GET /:tenant/.well-known/jwks.json': {
    ...DISCOVERY,
    res: 'Jwks',
    summary: "The tenant issuer's signing keys (JWKS)",
  },
  'GET /:tenant/.well-known/oauth-authorization-server': { ...DISCOVERY, summary: 'OAuth server metadata (RFC 8414)' },
  'GET /.well-known/oauth-authorization-server/:tenant': {
    ...DISCOVERY,
    summary: 'OAuth server metadata (suffix form)',
  },
  'GET /:tenant/.well-known/openid-configuration': { ...DISCOVERY, summary: 'OpenID Connect discovery' },
  'GET /.well-known/openid-configuration/:tenant': { ...DISCOVERY, summary: 'OpenID Connect discovery (suffix form)' },
  'GET /:tenant/.well-known/oauth-protected-resource': {
    ...DISCOVERY,
    summary: 'Protected resource metadata (RFC 9728)',
  },
  'GET /.well-known/oauth-protected-resource/:tenant': {
    ...DISCOVERY,
    summary: 'Protected resource metadata (suffix form)',
  },
  // AID tokens and registrations
  'POST /:t/oauth/token': {
    summary: 'Exchange a proof of possession for an access token (grant urn:aid:agent-identity)',
    body: 'TokenRequest',
    res: 'TokenResponse',
    errors: [
      'unsupported_grant_type',
      'invalid_grant',
      'invalid_proof',
      'invalid_scope',
      'invalid_target',
      'agent_not_registered',
      'registration_pending',
      'agent_suspended',
      'rate_limited',
    ],
  },
  'POST /:t/oauth/introspect': {
    summary: 'Introspect an access token (RFC 7662)',
    body: 'IntrospectRequest',
    res: 'IntrospectResponse',
    errors: ['rate_limited'],
  },
  'POST /:t/agent_registrations/request': {
    summary: 'Request a registration for the calling AMP agent (202, pending approval)',
    body: 'RegistrationBody',
    res: 'RegistrationResource',
    status: 202,
    errors: ['forbidden', 'validation_failed', 'already_registered', 'rate_limited'],
  },
  'GET /:t/agent_registrations/status': {
    summary: 'Poll a registration by user code',
    description: POLL,
    query: { code: 'The user code (or authorization code)' },
    errors: ['not_found', 'slow_down', 'expired_token', 'access_denied@403', 'rate_limited'],
  },
  'POST /:t/agent_registrations/:id/status': {
    summary: 'Poll a registration by id with its fingerprint (and proof)',
    description: POLL,
    body: 'StatusPollBody',
    errors: ['not_found', 'invalid_proof@401', 'slow_down', 'expired_token', 'access_denied@403'],
  },
  'GET /:t/agent_registrations/resolve': {
    summary: 'Look up a pending request by code (admin)',
    res: 'RegistrationResource',
    query: { code: 'Authorization code or user code' },
    errors: ['not_found', 'rate_limited'],
  },
  'POST /:t/agent_registrations': {
    summary: 'Create an active registration (admin)',
    body: 'RegistrationBody',
    res: 'RegistrationResource',
    status: 201,
    errors: ['validation_failed', 'already_registered'],
  },
  'GET /:t/agent_registrations/activity_logs': {
    summary: "The tenant's audit trail (admin)",
    query: AUDIT_QUERY,
    errors: ['validation_failed'],
  },
  'GET /:t/agent_registrations': {
    summary: 'List registrations (admin)',
    res: 'RegistrationList',
    query: { status: 'Only this status', page: '1-based', records: 'Page size (25, at most 100)' },
    errors: ['validation_failed'],
  },
  'GET /:t/agent_registrations/:id': {
    summary: 'One registration (admin)',
    res: 'RegistrationResource',
    errors: ['not_found'],
  },
  'GET /:t/agent_registrations/:id/activity_logs': {
    summary: "A registration's audit trail (admin)",
    query: AUDIT_QUERY,
    errors: ['not_found', 'validation_failed'],
  },
  'POST /:t/agent_registrations/:id/approve': { summary: 'Approve (admin)', ...TRANSITION, body: 'TransitionBody' },
  'POST /:t/agent_registrations/:id/reject': { summary: 'Reject (admin)', ...TRANSITION, body: 'TransitionBody' },
  'POST /:t/agent_registrations/:id/suspend': { summary: 'Suspend (admin)', ...TRANSITION, body: 'TransitionBody' },
  'PUT /:t/agent_registrations/:id/suspend': { summary: 'Suspend (admin)', ...TRANSITION, body: 'TransitionBody' },
  'POST /:t/agent_registrations/:id/reactivate': { summary: 'Reactivate (admin)', ...TRANSITION },
  'PUT /:t/agent_registrations/:id/reactivate': { summary: 'Reactivate (admin)', ...TRANSITION },
  'DELETE /:t/agent_registrations/:id': { summary: 'Delete (admin); the agent loses its identity', ...TRANSITION },
  'POST /:t/agent_registrations/:id/revoke': { summary: 'Delete (admin; alias of DELETE)', ...TRANSITION },
  'PUT /:t/agent_registrations/:id': {
    summary: 'Update role, token lifetime, name, description (admin)',
    body: 'RegistrationBody',
    res: 'RegistrationResource',
    errors: ['not_found', 'validation_failed'],
  },
  'PATCH /:t/agent_registrations/:id': {
    summary: 'Update role, token lifetime, name, description (admin)',
    body: 'RegistrationBody',
    res: 'RegistrationResource',
    errors: ['not_found', 'validation_failed'],
  },
};
