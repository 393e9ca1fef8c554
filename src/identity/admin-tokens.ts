// Admin JWTs (spec agent-identity §10): minted by the operator with `amp-relay admin-token`, signed
// with the platform key set, checked on admin endpoints. Agent tokens are never admin tokens.

import { randomUUID } from '../crypto/random.js';
import { SignJWT, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import type { SigningKeys } from './signing-keys.js';

export const ADMIN_SCOPES = [
  'agent_registrations:read',
  'agent_registrations:write',
  'aid:introspect',
  'amp:admin',
  'amp:admin:read',
] as const;
export const DEFAULT_ADMIN_TTL_S = 3600;
export const MAX_ADMIN_TTL_S = 30 * 24 * 3600;
const CLOCK_TOLERANCE_S = 60;

/** Issuer of tenant `t`: `{public base}/{t}`, never derived from a request's Host. */
export function issuerOf(publicBase: string, tenant: string): string {
  return `${publicBase.replace(/\/+$/, '')}/${tenant}`;
}

export interface AdminTokenRequest {
  issuer: string;
  tenant: string;
  email: string;
  scopes: string[];
  ttlSeconds?: number;
}

export async function mintAdminToken(keys: SigningKeys, r: AdminTokenRequest): Promise<string> {
  const ttl = r.ttlSeconds ?? DEFAULT_ADMIN_TTL_S;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_ADMIN_TTL_S)
    throw new Error(`--ttl must be 1..${MAX_ADMIN_TTL_S} seconds`);
  if (!/^[^@\s]+@[^@\s]+$/.test(r.email)) throw new Error('--email must be an e-mail address');
  const unknown = r.scopes.filter((s) => !(ADMIN_SCOPES as readonly string[]).includes(s));
  if (unknown.length) throw new Error(`unknown scope(s): ${unknown.join(', ')}; known: ${ADMIN_SCOPES.join(', ')}`);
  const key = await keys.current();
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    scope: r.scopes.join(' '),
    scopes: r.scopes,
    token_type: 'admin',
    email: r.email,
    company_url_id: r.tenant,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(r.issuer)
    .setSubject(`admin:${r.email}`)
    .setAudience(r.issuer)
    .setIssuedAt(now)
    .setExpirationTime(now + ttl)
    .setJti(randomUUID())
    .sign(key.privateKey);
}

/**
 * Why an admin token was refused, for the server's debug log (never the token): the operator's
 * hint when `amp-relay admin-token` minted for another port, another data dir, or another tenant.
 */
export interface RefusalReason {
  reason:
    | 'malformed'
    | 'unknown_key'
    | 'bad_signature'
    | 'algorithm_not_allowed'
    | 'expired'
    | 'wrong_issuer'
    | 'wrong_audience'
    | 'bad_claims'
    | 'wrong_tenant'
    | 'not_admin_token'
    | 'no_email'
    | 'missing_scope';
  expected?: string | string[];
  got?: unknown;
  kid?: string;
}

export type AdminCheck =
  | { ok: true; claims: JWTPayload & { email: string; scopes: string[] } }
  | {
      ok: false;
      status: 401 | 403;
      error: 'invalid_token' | 'insufficient_scope';
      description: string;
      why: RefusalReason;
    };

const INVALID = 'The access token is invalid or expired';

/** The header's kid and the claims of a JWT, unverified (for the refusal log only). */
function peek(token: string): { kid?: string; claims: JWTPayload } {
  let kid: string | undefined;
  let claims: JWTPayload = {};
  try {
    kid = decodeProtectedHeader(token).kid;
    claims = decodeJwt(token);
  } catch {
    // malformed: reported from the verification error
  }
  return { kid, claims };
}

/** A jose verification error as a refusal reason. */
function refusal(e: unknown, token: string, issuers: string[], tenant: string): RefusalReason {
  const code = (e as { code?: string }).code;
  const { kid, claims } = peek(token);
  if (code === 'ERR_JWKS_NO_MATCHING_KEY') return { reason: 'unknown_key', kid };
  if (code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') return { reason: 'bad_signature', kid };
  if (code === 'ERR_JOSE_ALG_NOT_ALLOWED') return { reason: 'algorithm_not_allowed', kid };
  if (code === 'ERR_JWT_EXPIRED')
    return {
      reason: 'expired',
      got: typeof claims.exp === 'number' ? new Date(claims.exp * 1000).toISOString() : null,
    };
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
    const claim = (e as { claim?: string }).claim;
    // Each tenant is its own issuer: another tenant's token fails here first, and is named as such.
    if (claim === 'iss' && typeof claims.company_url_id === 'string' && claims.company_url_id !== tenant)
      return { reason: 'wrong_tenant', expected: tenant, got: claims.company_url_id };
    if (claim === 'iss') return { reason: 'wrong_issuer', expected: issuers, got: claims.iss };
    if (claim === 'aud') return { reason: 'wrong_audience', expected: issuers, got: claims.aud };
    return { reason: 'bad_claims', got: claim };
  }
  return { reason: 'malformed' };
}

/**
 * Verify an admin bearer token for `tenant` and the needed scope (`write` implies `read`).
 * `issuers`: the tenant's issuer first, then the same under each AID_ISSUER_ALIASES base.
 */
export async function checkAdminToken(
  keys: SigningKeys,
  token: string,
  issuer: string | string[],
  tenant: string,
  scope: string,
): Promise<AdminCheck> {
  const issuers = typeof issuer === 'string' ? [issuer] : issuer;
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, await keys.verifier(), {
      issuer: issuers,
      audience: issuers,
      algorithms: await keys.algorithms(),
      clockTolerance: CLOCK_TOLERANCE_S,
    }));
  } catch (e) {
    return {
      ok: false,
      status: 401,
      error: 'invalid_token',
      description: INVALID,
      why: refusal(e, token, issuers, tenant),
    };
  }
  return checkClaims(payload, tenant, scope);
}

/** Whether `scopes` grant `scope`: a write scope implies its read scope. */
export function hasScope(scopes: readonly string[], scope: string): boolean {
  if (scopes.includes(scope)) return true;
  if (scope === 'agent_registrations:read') return scopes.includes('agent_registrations:write');
  if (scope === 'amp:admin:read') return scopes.includes('amp:admin');
  return false;
}

/** The checks after the signature, issuer and expiry: tenant, kind, e-mail, scope. */
function checkClaims(payload: JWTPayload, tenant: string, scope: string): AdminCheck {
  if (payload.company_url_id !== tenant) {
    return {
      ok: false,
      status: 401,
      error: 'invalid_token',
      description: 'The access token is not valid for this organisation',
      why: { reason: 'wrong_tenant', expected: tenant, got: payload.company_url_id },
    };
  }
  // Before the e-mail check: an agent token has none, and must be told it is the wrong kind.
  if (payload.token_type !== 'admin') {
    return {
      ok: false,
      status: 403,
      error: 'insufficient_scope',
      description: 'agent tokens are not accepted on admin endpoints',
      why: { reason: 'not_admin_token', got: payload.token_type },
    };
  }
  if (typeof payload.email !== 'string') {
    const why = { reason: 'no_email' } as const;
    return { ok: false, status: 401, error: 'invalid_token', description: 'The admin token has no email claim', why };
  }
  const scopes = Array.isArray(payload.scopes) ? (payload.scopes as string[]) : String(payload.scope ?? '').split(' ');
  if (!hasScope(scopes, scope))
    return {
      ok: false,
      status: 403,
      error: 'insufficient_scope',
      description: `The token lacks the ${scope} scope`,
      why: { reason: 'missing_scope', expected: scope, got: scopes },
    };
  return { ok: true, claims: { ...payload, email: payload.email, scopes } };
}
