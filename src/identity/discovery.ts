// AID discovery documents (spec agent-identity §12) for one tenant's issuer.

import type { JwtAlg } from './signing-keys.js';

export const AGENT_SCOPES = ['agent:identity'];
const ACCESS_TOKEN_CLAIMS = [
  'iss',
  'sub',
  'aud',
  'client_id',
  'iat',
  'nbf',
  'exp',
  'jti',
  'scope',
  'scopes',
  'token_type',
  'agent_id',
  'agent_address',
  'agent_name',
  'agent_role',
  'role_id',
  'agent_fingerprint',
  'company_url_id',
];

/** Origin of the issuer (`http://host:port`), where the tenant-less endpoints live. */
function origin(issuer: string): string {
  return new URL(issuer).origin;
}

export function authorizationServerMetadata(issuer: string): Record<string, unknown> {
  return {
    issuer,
    token_endpoint: `${issuer}/oauth/token`,
    introspection_endpoint: `${issuer}/oauth/introspect`,
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    grant_types_supported: ['urn:aid:agent-identity'],
    response_types_supported: ['none'],
    token_endpoint_auth_methods_supported: ['none'],
    introspection_endpoint_auth_methods_supported: ['api_key', 'bearer'],
    scopes_supported: AGENT_SCOPES,
    aid_grant: {
      aid_version: '1.0',
      registration_endpoint: `${issuer}/agent_registrations`,
      registration_request_endpoint: `${issuer}/agent_registrations/request`,
      code_resolution_endpoint: `${issuer}/agent_registrations/resolve`,
      agent_authorization_uri: `${origin(issuer)}/agents/authorize`,
      key_algorithms_supported: ['Ed25519'],
      credential_types_supported: ['access_token'],
      polling_interval: 5,
      proof_window_seconds: 300,
    },
  };
}

export function openidConfiguration(issuer: string, alg: JwtAlg): Record<string, unknown> {
  return {
    ...authorizationServerMetadata(issuer),
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [alg],
    claims_supported: ACCESS_TOKEN_CLAIMS,
  };
}

export function protectedResourceMetadata(issuer: string, tenant: string): Record<string, unknown> {
  return {
    resource: issuer,
    resource_name: `${tenant} AMP provider`,
    authorization_servers: [issuer],
    scopes_supported: AGENT_SCOPES,
    bearer_methods_supported: ['header'],
  };
}
