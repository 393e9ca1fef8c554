// Admin JWTs (spec agent-identity §10): minted by the operator with `amp-relay admin-token`, signed
// with the platform key set, checked on admin endpoints. Agent tokens are never admin tokens.

import { randomUUID } from '../crypto/random.js';
import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import type { SigningKeys } from './signing-keys.js';

export const ADMIN_SCOPES = [
  'agent_registrations:read',
  'agent_registrations:write',
  'aid:introspect',
  'amp:admin',
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

export type AdminCheck =
  | { ok: true; claims: JWTPayload & { email: string; scopes: string[] } }
  | { ok: false; status: 401 | 403; error: 'invalid_token' | 'insufficient_scope'; description: string };

/** Verify an admin bearer token for `tenant` and the needed scope (`write` implies `read`). */
export async function checkAdminToken(
  keys: SigningKeys,
  token: string,
  issuer: string,
  tenant: string,
  scope: string,
): Promise<AdminCheck> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, await keys.verifier(), {
      issuer,
      audience: issuer,
      algorithms: await keys.algorithms(),
      clockTolerance: CLOCK_TOLERANCE_S,
    }));
  } catch {
    return { ok: false, status: 401, error: 'invalid_token', description: 'The access token is invalid or expired' };
  }
  if (payload.company_url_id !== tenant) {
    return {
      ok: false,
      status: 401,
      error: 'invalid_token',
      description: 'The access token is not valid for this organisation',
    };
  }
  // Before the e-mail check: an agent token has none, and must be told it is the wrong kind.
  if (payload.token_type !== 'admin') {
    return {
      ok: false,
      status: 403,
      error: 'insufficient_scope',
      description: 'agent tokens are not accepted on admin endpoints',
    };
  }
  if (typeof payload.email !== 'string') {
    return { ok: false, status: 401, error: 'invalid_token', description: 'The admin token has no email claim' };
  }
  const scopes = Array.isArray(payload.scopes) ? (payload.scopes as string[]) : String(payload.scope ?? '').split(' ');
  const has =
    scopes.includes(scope) || (scope === 'agent_registrations:read' && scopes.includes('agent_registrations:write'));
  if (!has)
    return { ok: false, status: 403, error: 'insufficient_scope', description: `The token lacks the ${scope} scope` };
  return { ok: true, claims: { ...payload, email: payload.email, scopes } };
}
