// JSON Schemas (TypeBox) of what the AMP REST surface answers, and of the bodies whose decoders
// check them by hand (agent update, key rotation, suspension); the AID ones are in
// aid-api-schemas.ts. The OpenAPI document (src/transport/http/openapi.ts) publishes them with the
// decoders' own schemas (schemas.ts). They describe, they do not decide: a decoder's checks and
// messages are the contract, and the OpenAPI test validates real answers against these shapes so
// the two cannot drift apart.

import { type TSchema, Type } from '@sinclair/typebox';
import {
  AidErrorCodeSchema,
  AidErrorSchema,
  IntrospectRequestSchema,
  IntrospectResponseSchema,
  IssuerMetadataSchema,
  JwksSchema,
  RegistrationBodySchema,
  RegistrationListSchema,
  RegistrationResourceSchema,
  StatusPollBodySchema,
  TokenRequestSchema,
  TokenResponseSchema,
  TransitionBodySchema,
} from './aid-api-schemas.js';
import { ERROR_CATALOG } from './errors.js';
import { MAX_ALIAS_CHARS } from './limits.js';
import { BatchAckSchema, PayloadSchema, RegisterBodySchema, RouteBodySchema } from './schemas.js';

const Open = { additionalProperties: true } as const;
const Str = (description?: string) => Type.String(description ? { description } : {});
const OptStr = (description?: string) => Type.Optional(Str(description));
const Nullable = <T extends TSchema>(s: T) => Type.Union([s, Type.Null()]);

export const AmpErrorCodeSchema = Type.Union(
  Object.keys(ERROR_CATALOG).map((c) => Type.Literal(c)),
  { description: 'An AMP error code (spec §21); the catalog with statuses is in the info description' },
);

/** The body of every non-2xx AMP answer (proto/errors.ts `ErrorBody`). */
export const AmpErrorSchema = Type.Object(
  {
    error: AmpErrorCodeSchema,
    message: Str('What went wrong, for humans'),
    field: OptStr('The request field at fault'),
    details: Type.Object({}, Open),
    suggestions: Type.Optional(Type.Array(Type.String())),
    retry_after: Type.Optional(Type.Integer({ description: 'Seconds; also the Retry-After header' })),
  },
  Open,
);

const ProviderSchema = Type.Object({ name: Str(), endpoint: Str(), route_url: Str() }, Open);

export const RegisterResponseSchema = Type.Object(
  {
    address: Str(),
    short_address: Str(),
    local_name: Str(),
    agent_id: Str(),
    tenant_id: Str(),
    tenant: Str(),
    api_key: Str('Shown once (a signed re-registration issues a new one)'),
    provider: ProviderSchema,
    fingerprint: Str(),
    registered_at: Str(),
  },
  Open,
);

/** §12.1: the route body, flat or as `{envelope, payload}` (the envelope's fields win). */
export const RouteRequestSchema = Type.Union(
  [
    RouteBodySchema,
    Type.Object(
      {
        envelope: Type.Object(
          {
            to: OptStr(),
            subject: OptStr(),
            priority: OptStr(),
            in_reply_to: OptStr(),
            thread_id: OptStr(),
            expires_at: OptStr(),
            signature: OptStr(),
            from: OptStr(),
            idempotency_key: OptStr(),
          },
          Open,
        ),
        payload: PayloadSchema,
      },
      Open,
    ),
  ],
  { description: 'Flat (RouteBody), or {envelope, payload}; null fields count as absent' },
);

export const RouteResultSchema = Type.Object(
  {
    id: Str('The message id'),
    status: Type.Union([Type.Literal('delivered'), Type.Literal('queued')]),
    method: Type.Union([Type.Literal('websocket'), Type.Literal('relay')]),
    delivered_at: OptStr(),
    queued_at: OptStr(),
    thread_id: Str(),
    warnings: Type.Optional(Type.Array(Type.String(), { description: 'e.g. attachment_suspicious (§22)' })),
  },
  Open,
);

const EnvelopeSchema = Type.Object(
  {
    version: Str(),
    id: Str(),
    from: Str(),
    to: Str(),
    subject: Str(),
    priority: Str(),
    timestamp: Str(),
    signature: Str(),
    thread_id: Str(),
    in_reply_to: OptStr(),
    expires_at: OptStr(),
    idempotency_key: OptStr(),
  },
  Open,
);

const QueuedMessageSchema = Type.Object(
  {
    id: Str(),
    envelope: EnvelopeSchema,
    payload: Type.Object({}, Open),
    queued_at: Str(),
    expires_at: Str(),
    sender_public_key: Str('64 hex of the sender key when the message was signed, else ""'),
    security: Type.Object(
      {
        trust_level: Type.Union([Type.Literal('verified'), Type.Literal('external'), Type.Literal('untrusted')]),
        signature_verified: Type.Boolean(),
        sender_authenticated: Type.Boolean(),
        injection_flags: Type.Array(Type.String()),
      },
      Open,
    ),
    attachments: Type.Optional(
      Type.Array(
        Type.Object(
          {
            id: Str(),
            filename: Str(),
            content_type: Str(),
            size: Type.Integer(),
            digest: Str(),
            scan_status: Str(),
            url: Str('Signed download URL (no API key needed)'),
            expires_at: Str(),
          },
          Open,
        ),
        { description: "The provider's record of each attachment the payload names (§22)" },
      ),
    ),
    warnings: Type.Optional(Type.Array(Type.String())),
  },
  Open,
);

export const PendingListSchema = Type.Object(
  { messages: Type.Array(QueuedMessageSchema), count: Type.Integer(), remaining: Type.Integer() },
  Open,
);

export const AckOneSchema = Type.Object(
  { acknowledged: Type.Literal(true), already_acked: Type.Optional(Type.Literal(true)) },
  Open,
);
export const AckBatchSchema = Type.Object({ acknowledged: Type.Integer({ description: 'Newly acked' }) }, Open);

export const AgentUpdateBodySchema = Type.Object(
  {
    alias: Type.Optional(Nullable(Str(`At most ${MAX_ALIAS_CHARS} characters; null removes it`))),
    delivery: Type.Optional(
      Type.Object(
        {
          webhook_url: Type.Optional(Nullable(Str('§18: https URL passing the SSRF rules; null removes the webhook'))),
          webhook_secret: Type.Optional(Str('16-256 characters; required with a first webhook_url; never returned')),
          prefer_websocket: Type.Optional(Type.Boolean()),
        },
        Open,
      ),
    ),
    metadata: Type.Optional(Type.Object({}, Open)),
    capabilities: Type.Optional(Type.Array(Type.String())),
  },
  { ...Open, description: 'Identity fields (name, tenant, address, keys) are refused with invalid_field' },
);

export const RotateKeysBodySchema = Type.Object(
  {
    new_public_key: Str('PEM (SPKI) of the new Ed25519 key'),
    key_algorithm: OptStr('Ed25519 (the default)'),
    proof: Str('base64 Ed25519 signature by the current key over new_public_key'),
  },
  Open,
);

export const SuspendBodySchema = Type.Object(
  {
    reason: OptStr('1-200 characters'),
    duration_hours: Type.Optional(Nullable(Type.Number({ description: 'Hours; absent or null: indefinitely' }))),
  },
  { ...Open, description: 'Optional: an empty body suspends indefinitely with a default reason' },
);

export const HealthSchema = Type.Object(
  {
    status: Type.Union([Type.Literal('healthy'), Type.Literal('degraded'), Type.Literal('unhealthy')]),
    version: Str(),
    provider: Str(),
    federation: Type.Boolean(),
    agents_online: Type.Integer(),
    uptime_seconds: Type.Integer(),
    reason: OptStr(),
    since: OptStr(),
  },
  Open,
);

export const ReadySchema = Type.Object(
  { status: Type.Union([Type.Literal('ready'), Type.Literal('not_ready')]), reason: OptStr() },
  Open,
);

const NullableStr = (description?: string) => Nullable(Str(description));

/** §7.1 GET (and PATCH) agents/me. */
export const AgentSelfSchema = Type.Object(
  {
    agent_id: Str(),
    address: Str(),
    short_address: Str(),
    tenant: Str(),
    alias: NullableStr(),
    status: Str(),
    delivery: Type.Object(
      { webhook_url: NullableStr(), webhook_secret_set: Type.Boolean(), prefer_websocket: Type.Boolean() },
      Open,
    ),
    key_algorithm: Str(),
    fingerprint: Str(),
    capabilities: Type.Array(Type.String()),
    metadata: Type.Object({}, Open),
    online: Type.Boolean(),
    registered_at: Str(),
    last_seen_at: NullableStr(),
  },
  Open,
);

export const AgentUpdatedSchema = Type.Object({ updated: Type.Literal(true), address: Str() }, Open);
export const AgentDeregisteredSchema = Type.Object(
  { deregistered: Type.Literal(true), address: Str(), deregistered_at: Str() },
  Open,
);

export const AgentListSchema = Type.Object(
  {
    agents: Type.Array(Type.Object({ address: Str(), alias: NullableStr(), online: Type.Boolean() }, Open)),
    total: Type.Integer(),
    cursor: NullableStr('Pass back for the next page'),
    has_more: Type.Boolean(),
  },
  Open,
);

export const ResolvedAgentSchema = Type.Object(
  {
    address: Str(),
    short_address: Str(),
    alias: NullableStr(),
    public_key: Str('PEM'),
    key_algorithm: Str(),
    fingerprint: Str(),
    online: Type.Boolean(),
    capabilities: Type.Array(Type.String()),
  },
  Open,
);

export const AgentCardSchema = Type.Object(
  {
    amp_agent_card: Str(),
    id: Str(),
    address: Str(),
    public_key: Str(),
    fingerprint: Str(),
    provider_endpoint: Str(),
    issued_at: Str(),
    expires_at: Str(),
    provider_asserted: Type.Boolean(),
  },
  Open,
);

export const RotateKeyResponseSchema = Type.Object(
  {
    api_key: Str('The new API key, shown once'),
    expires_at: NullableStr(),
    previous_key_valid_until: Str('The old key works until then'),
  },
  Open,
);

const PeerStatusSchema = Type.Object(
  {
    id: Str('Mesh host id or provider domain'),
    url: Str('Base URL, "" until discovered'),
    reachable: Type.Union([Type.Boolean(), Type.Null()], { description: 'null: no contact since the start' }),
    last_success_at: NullableStr(),
    last_failure_at: NullableStr(),
    last_error: NullableStr(),
    pending: Type.Integer({ minimum: 0 }),
    parked: Type.Integer({ minimum: 0 }),
    breaker: Str('closed, open or half-open'),
  },
  Open,
);

/** `GET /v1/peers` (§19): mesh hosts and federated providers, reachable or not. */
export const PeersSchema = Type.Object(
  { mesh: Type.Array(PeerStatusSchema), federation: Type.Array(PeerStatusSchema) },
  Open,
);

/** §3 `/.well-known/agent-messaging.json`. */
export const ProviderDiscoverySchema = Type.Object(
  {
    version: Str(),
    endpoint: Str(),
    provider: Str(),
    public_key: Str(),
    fingerprint: Str(),
    capabilities: Type.Array(Type.String()),
  },
  Open,
);

/** Every named schema the OpenAPI document publishes under components.schemas. */
export const API_SCHEMAS = {
  AmpError: AmpErrorSchema,
  AmpErrorCode: AmpErrorCodeSchema,
  AidError: AidErrorSchema,
  AidErrorCode: AidErrorCodeSchema,
  RegisterBody: RegisterBodySchema,
  RegisterResponse: RegisterResponseSchema,
  RouteRequest: RouteRequestSchema,
  RouteBody: RouteBodySchema,
  Payload: PayloadSchema,
  RouteResult: RouteResultSchema,
  PendingList: PendingListSchema,
  BatchAckBody: BatchAckSchema,
  AckOne: AckOneSchema,
  AckBatch: AckBatchSchema,
  AgentUpdateBody: AgentUpdateBodySchema,
  RotateKeysBody: RotateKeysBodySchema,
  SuspendBody: SuspendBodySchema,
  AgentSelf: AgentSelfSchema,
  AgentUpdated: AgentUpdatedSchema,
  AgentDeregistered: AgentDeregisteredSchema,
  AgentList: AgentListSchema,
  ResolvedAgent: ResolvedAgentSchema,
  AgentCard: AgentCardSchema,
  Peers: PeersSchema,
  RotateKeyResponse: RotateKeyResponseSchema,
  ProviderDiscovery: ProviderDiscoverySchema,
  Jwks: JwksSchema,
  IssuerMetadata: IssuerMetadataSchema,
  Health: HealthSchema,
  Ready: ReadySchema,
  TokenRequest: TokenRequestSchema,
  TokenResponse: TokenResponseSchema,
  IntrospectRequest: IntrospectRequestSchema,
  IntrospectResponse: IntrospectResponseSchema,
  RegistrationBody: RegistrationBodySchema,
  StatusPollBody: StatusPollBodySchema,
  TransitionBody: TransitionBodySchema,
  RegistrationResource: RegistrationResourceSchema,
  RegistrationList: RegistrationListSchema,
} as const satisfies Record<string, TSchema>;

export type ApiSchemaName = keyof typeof API_SCHEMAS;
