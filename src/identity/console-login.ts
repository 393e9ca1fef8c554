// Sign-in links of the admin console: `amp-relay admin login` mints a short-lived JWT (token_type
// `console_login`, a jti spent on first use) signed with the platform key set; the server checks it
// here and opens a cookie session (src/console/). Admin and agent tokens are never sign-in links,
// and a sign-in link is no admin token (checkAdminToken wants token_type `admin`).

import { SignJWT, decodeJwt, jwtVerify, type JWTPayload } from 'jose';
import { randomUUID } from '../crypto/random.js';
import { ADMIN_SCOPES } from './admin-tokens.js';
import type { SigningKeys } from './signing-keys.js';

export const CONSOLE_LOGIN_TYPE = 'console_login';
/** The audience of sign-in links: never an API's. */
export const CONSOLE_AUDIENCE = 'amp-relay-console';
export const DEFAULT_LOGIN_TTL_S = 600;
export const MAX_LOGIN_TTL_S = 3600;
export const DEFAULT_CONSOLE_SCOPES = ['agent_registrations:write', 'amp:admin'];
const CLOCK_TOLERANCE_S = 5;

export interface ConsoleLoginRequest {
  /** The tenant's issuer (`{public base}/{tenant}`), as admin tokens have. */
  issuer: string;
  tenant: string;
  email: string;
  scopes: string[];
  ttlSeconds?: number;
  /** Tests: the issued-at time (unix s); default now. */
  now?: number;
}

/** What a sign-in link grants, once checked. `exp` in unix seconds. */
export interface ConsoleLogin {
  jti: string;
  exp: number;
  tenant: string;
  email: string;
  scopes: string[];
}

/** Why a sign-in link is refused; `message` is for the person who clicked it. */
export type ConsoleLoginCheck = { ok: true; login: ConsoleLogin } | { ok: false; reason: string; message: string };

/** The problem with a sign-in request's fields, or null (the CLI says it, the mint refuses it). */
export function consoleLoginProblem(r: Omit<ConsoleLoginRequest, 'issuer'>): string | null {
  const ttl = r.ttlSeconds ?? DEFAULT_LOGIN_TTL_S;
  if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_LOGIN_TTL_S) return `--ttl must be 1..${MAX_LOGIN_TTL_S} seconds`;
  if (!/^[^@\s]+@[^@\s]+$/.test(r.email)) return '--email must be an e-mail address';
  if (r.scopes.length === 0) return '--scopes needs at least one scope';
  const unknown = r.scopes.filter((s) => !(ADMIN_SCOPES as readonly string[]).includes(s));
  if (unknown.length) return `unknown scope(s): ${unknown.join(', ')}; known: ${ADMIN_SCOPES.join(', ')}`;
  return null;
}

export async function mintConsoleLogin(keys: SigningKeys, r: ConsoleLoginRequest): Promise<string> {
  const problem = consoleLoginProblem(r);
  if (problem) throw new Error(problem);
  const key = await keys.current();
  const now = r.now ?? Math.floor(Date.now() / 1000);
  return new SignJWT({ token_type: CONSOLE_LOGIN_TYPE, email: r.email, company_url_id: r.tenant, scopes: r.scopes })
    .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
    .setIssuer(r.issuer)
    .setSubject(`admin:${r.email}`)
    .setAudience(CONSOLE_AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + (r.ttlSeconds ?? DEFAULT_LOGIN_TTL_S))
    .setJti(randomUUID())
    .sign(key.privateKey);
}

const AGAIN = 'run amp-relay admin login again';

/** The tenant a token claims, unverified (it picks the issuers to check against). */
export function claimedTenant(token: string): string | undefined {
  try {
    const t = decodeJwt(token).company_url_id;
    return typeof t === 'string' ? t : undefined;
  } catch {
    return undefined;
  }
}

/** Verify a sign-in link: signature, one of `issuers`, audience, expiry, type, claims. */
export async function checkConsoleLogin(
  keys: SigningKeys,
  token: string,
  issuers: string[],
): Promise<ConsoleLoginCheck> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, await keys.verifier(), {
      issuer: issuers,
      audience: CONSOLE_AUDIENCE,
      algorithms: await keys.algorithms(),
      clockTolerance: CLOCK_TOLERANCE_S,
    }));
  } catch (e) {
    return refused(e);
  }
  return checkLoginClaims(payload);
}

function refused(e: unknown): ConsoleLoginCheck {
  const code = (e as { code?: string }).code;
  if (code === 'ERR_JWT_EXPIRED')
    return { ok: false, reason: 'expired', message: `This sign-in link has expired; ${AGAIN}` };
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
    const claim = (e as { claim?: string }).claim;
    if (claim === 'aud')
      return {
        ok: false,
        reason: 'not_login',
        message: `This is not a sign-in link (an admin or agent token?); ${AGAIN}`,
      };
    return {
      ok: false,
      reason: `wrong_${claim ?? 'claims'}`,
      message: `This sign-in link was made for another server address or organisation; ${AGAIN}`,
    };
  }
  return {
    ok: false,
    reason: 'bad_signature',
    message: `This sign-in link is not valid for this server (malformed, or signed with another data dir's keys); ${AGAIN}`,
  };
}

function checkLoginClaims(p: JWTPayload): ConsoleLoginCheck {
  if (p.token_type !== CONSOLE_LOGIN_TYPE)
    return {
      ok: false,
      reason: 'not_login',
      message: `This is not a sign-in link (an admin or agent token?); ${AGAIN}`,
    };
  const scopes = p.scopes;
  const valid =
    typeof p.jti === 'string' &&
    typeof p.exp === 'number' &&
    typeof p.email === 'string' &&
    typeof p.company_url_id === 'string' &&
    Array.isArray(scopes) &&
    scopes.every((s) => typeof s === 'string' && (ADMIN_SCOPES as readonly string[]).includes(s));
  if (!valid) return { ok: false, reason: 'bad_claims', message: `This sign-in link is malformed; ${AGAIN}` };
  const login = {
    jti: p.jti as string,
    exp: p.exp as number,
    tenant: p.company_url_id as string,
    email: p.email as string,
    scopes: scopes as string[],
  };
  return { ok: true, login };
}
