// JSON Schemas (TypeBox) of the Agent Identity surface (agent-identity §4-§12, §15): bodies, answers
// and the error body. Published by the OpenAPI document beside the AMP ones (api-schemas.ts); the
// OpenAPI test checks real answers against them.

import { Type } from '@sinclair/typebox';
import { AID_ERROR_CATALOG } from './aid-errors.js';

const Open = { additionalProperties: true } as const;
const Str = (description?: string) => Type.String(description ? { description } : {});
const OptStr = (description?: string) => Type.Optional(Str(description));

export const AidErrorCodeSchema = Type.Union(
  Object.keys(AID_ERROR_CATALOG).map((c) => Type.Literal(c)),
  { description: 'An AID error code (agent-identity §15)' },
);

/** The body of every AID error answer: the OAuth shape and the JSON:API shape at once (§15). */
export const AidErrorSchema = Type.Object(
  {
    error: AidErrorCodeSchema,
    error_description: Str(),
    errors: Type.Array(Type.Object({ status: Str(), code: Str(), detail: Str() }, Open)),
  },
  Open,
);

export const JwksSchema = Type.Object({ keys: Type.Array(Type.Object({ kty: Str(), kid: Str() }, Open)) }, Open);

/** RFC 8414 / OpenID discovery of a tenant issuer (agent-identity §12). */
export const IssuerMetadataSchema = Type.Object({ issuer: OptStr(), jwks_uri: OptStr() }, Open);

/** AID: token exchange (agent-identity §5), form or JSON. */
export const TokenRequestSchema = Type.Object(
  {
    grant_type: Type.Literal('urn:aid:agent-identity'),
    proof: Str('§6.1 proof of possession, base64url'),
    fingerprint: OptStr('Required unless agent_identity is sent'),
    agent_address: OptStr(),
    agent_identity: OptStr('Identity document (§2), base64url JSON'),
    scope: OptStr('Space-delimited'),
    requested_credential_type: Type.Optional(Type.Literal('access_token')),
    resource: OptStr(),
    audience: OptStr(),
  },
  Open,
);

export const TokenResponseSchema = Type.Object(
  {
    access_token: Str('JWT (typ at+jwt)'),
    token_type: Type.Literal('Bearer'),
    expires_in: Type.Integer(),
    scope: Str(),
    agent_address: Str(),
    agent_id: Str(),
    credential_type: Type.Literal('access_token'),
  },
  Open,
);

export const IntrospectRequestSchema = Type.Object({ token: Str('The access token to check') }, Open);
export const IntrospectResponseSchema = Type.Object(
  { active: Type.Boolean(), reason: OptStr('Why a token is inactive') },
  { ...Open, description: 'RFC 7662: the claims of an active token, or active=false with a reason' },
);

const RegistrationFields = {
  name: OptStr('1-255 characters'),
  address: OptStr('The AMP address (also amp_address)'),
  fingerprint: OptStr('SHA256:... of the key (also amp_fingerprint)'),
  public_key: OptStr('Ed25519 SPKI PEM (also amp_public_key)'),
  key_algorithm: OptStr('Ed25519'),
  description: OptStr('At most 2000 characters'),
};

/** §4.2 T1, §4.3 T2 and T8: the fields, wrapped in `agent_registration` or at the top level. */
export const RegistrationBodySchema = Type.Object(
  {
    agent_registration: Type.Optional(
      Type.Object(
        {
          ...RegistrationFields,
          role_id: Type.Optional(Type.Integer()),
          token_lifetime: Type.Optional(Type.Integer()),
        },
        Open,
      ),
    ),
    ...RegistrationFields,
    role_id: Type.Optional(Type.Integer({ description: 'Admin create (required there) and update' })),
    token_lifetime: Type.Optional(Type.Integer({ description: 'Seconds, clamped to 300-86400' })),
  },
  Open,
);

export const StatusPollBodySchema = Type.Object(
  { fingerprint: Str(), proof: OptStr('§6.2 status proof; required with AID_STATUS_REQUIRE_PROOF') },
  Open,
);

export const TransitionBodySchema = Type.Object(
  {
    role_id: Type.Optional(Type.Integer({ description: 'approve: the role (default role when omitted)' })),
    reason: OptStr('reject, suspend: the reason recorded'),
  },
  { ...Open, description: 'Optional' },
);

/** §4.1: one registration, JSON:API style. */
export const RegistrationResourceSchema = Type.Object(
  {
    data: Type.Object(
      {
        id: Str(),
        type: Type.Literal('agent_registration'),
        attributes: Type.Object({ status: Str(), name: Str(), address: Str(), fingerprint: Str() }, Open),
      },
      Open,
    ),
  },
  Open,
);

export const RegistrationListSchema = Type.Object(
  {
    data: Type.Array(Type.Object({ id: Str(), type: Str(), attributes: Type.Object({}, Open) }, Open)),
    meta: Type.Object(
      { total_count: Type.Integer(), page: Type.Integer(), records: Type.Integer(), total_pages: Type.Integer() },
      Open,
    ),
  },
  Open,
);
