// Agent Identity (AID) test helpers: the proofs an agent signs (§6.1 token exchange, §6.2 status
// polls), admin JWTs minted with the server's own signing keys, registration requests (T1) and
// the admin, token and introspection calls, on a real server started on port 0.

import { createHash, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { expect } from 'vitest';
import { mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import type { StartOptions } from '../../src/server.js';
import { call, startTestServer, type Registered, type Reply, type TestServer } from './server.js';

export const AID_GRANT = 'urn:aid:agent-identity';
const WRITE_SCOPES = ['agent_registrations:write'];

export const nowSeconds = () => Math.floor(Date.now() / 1000);

// Ed25519 is deterministic: one key, one timestamp and one issuer always give the same proof, which
// the server refuses as a replay. Every uniqueTs() is its own second, counting down from now; the
// few dozen proofs of a test file stay far inside the 300 s window. (Each test file has its own
// instance of this module, so its own countdown.)
let nextTs = 0;
export const uniqueTs = () => (nextTs = nextTs === 0 ? nowSeconds() - 1 : nextTs - 1);

/** §6.1: base64url(Ed25519(`aid-token-exchange\n{ts}\n{issuer}`) || ts). */
export function tokenProof(key: KeyObject, issuer: string, ts = uniqueTs()): string {
  const sig = sign(null, Buffer.from(`aid-token-exchange\n${ts}\n${issuer}`), key);
  return Buffer.concat([sig, Buffer.from(String(ts))]).toString('base64url');
}

/** §6.2: the Ed25519 signature over `aid-registration-status\n{ts}\n{issuer}`. */
function statusSignature(key: KeyObject, issuer: string, ts: number): Buffer {
  return sign(null, Buffer.from(`aid-registration-status\n${ts}\n${issuer}`), key);
}

/** §6.2, raw form: base64url(signature || ts). */
export function statusProof(key: KeyObject, issuer: string, ts = uniqueTs()): string {
  return Buffer.concat([statusSignature(key, issuer, ts), Buffer.from(String(ts))]).toString('base64url');
}

/** §6.2, the CLI's text form: base64url(base64(signature) || ts). */
export function statusProofText(key: KeyObject, issuer: string, ts = uniqueTs()): string {
  return Buffer.from(statusSignature(key, issuer, ts).toString('base64') + String(ts)).toString('base64url');
}

/** The claims of a JWT, unverified. */
export const jwtPayload = (jwt: string) =>
  JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;

/** `SHA256:` + base64 SHA-256 over the SPKI DER of a public key (a PEM, or a public KeyObject). */
export const fingerprintOf = (key: string | KeyObject) =>
  'SHA256:' +
  createHash('sha256')
    .update((typeof key === 'string' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' }))
    .digest('base64');

export const samePublicKey = (a: string, b: string) =>
  createPublicKey(a)
    .export({ format: 'der', type: 'spki' })
    .equals(createPublicKey(b).export({ format: 'der', type: 'spki' }));

/** The AID issuer of `tenant` (§7): the server's public base (publicUrl, or localhost:<port>) + `/tenant`. */
export const issuerOf = (t: TestServer, tenant = 'acme') => `${t.publicBase}/${tenant}`;

export interface AdminTokenOptions {
  tenant?: string;
  email?: string;
  scopes?: string[];
}

/** An admin JWT (§10) of `tenant`, minted with the server's signing keys as `amp-relay admin-token` does. */
export async function adminToken(
  t: TestServer,
  { tenant = 'acme', email = 'ops@acme.com', scopes = WRITE_SCOPES }: AdminTokenOptions = {},
): Promise<string> {
  const keys = await SigningKeys.load(t.dataDir, 'RS256');
  return mintAdminToken(keys, { issuer: issuerOf(t, tenant), tenant, email, scopes });
}

/** A running server seen from one tenant's AID routes, with an admin of that tenant. */
export interface AidServer {
  t: TestServer;
  tenant: string;
  /** What proofs name and tokens carry: `${publicBase}/${tenant}`. */
  issuer: string;
  /** Where the tenant's AID routes answer: `${t.url}/${tenant}` (the listening address). */
  url: string;
  /** An admin token with `agent_registrations:write` (or the scopes asked for). */
  admin: string;
  /** Another admin of the tenant, by e-mail, with `agent_registrations:write`. */
  mint(email: string): Promise<string>;
}

/** startTestServer(opts) (port 0) and an admin of `tenant`; the issuer is read back from the running server. */
export async function startAidServer(
  opts: StartOptions = {},
  { tenant = 'acme', adminScopes = WRITE_SCOPES }: { tenant?: string; adminScopes?: string[] } = {},
): Promise<AidServer> {
  const t = await startTestServer(opts);
  const mint = (email: string) => adminToken(t, { tenant, email });
  return {
    t,
    tenant,
    issuer: issuerOf(t, tenant),
    url: `${t.url}/${tenant}`,
    admin: await adminToken(t, { tenant, scopes: adminScopes }),
    mint,
  };
}

/** An admin call on `/agent_registrations{path}` (as `s.admin` unless another token is given). */
export const asAdmin = (s: AidServer, method: string, path: string, json?: unknown, token = s.admin) =>
  call(method, `${s.url}/agent_registrations${path}`, { headers: { Authorization: `Bearer ${token}` }, json });

/** The T1 body for an AMP agent's own key. */
export const registrationRequestBody = (a: Registered) => ({
  name: a.name,
  address: a.address,
  fingerprint: a.body.fingerprint,
  public_key: a.keys.publicPem,
});

/** T1 with the agent's own AMP key (X-Api-Key). */
export const requestRegistration = (s: AidServer, a: Registered) =>
  call('POST', `${s.url}/agent_registrations/request`, {
    headers: { 'X-Api-Key': a.api_key },
    json: registrationRequestBody(a),
  });

/** T1, answered 202: the pending registration's id and user code. */
export async function pendingRegistration(s: AidServer, a: Registered): Promise<{ id: string; userCode: string }> {
  const r = await requestRegistration(s, a);
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return { id: r.body.data.id, userCode: r.body.user_code };
}

/** T1 then T3: an active registration bound to the AMP agent; its id. */
export async function activeRegistration(s: AidServer, a: Registered): Promise<string> {
  const { id } = await pendingRegistration(s, a);
  const ok = await asAdmin(s, 'POST', `/${id}/approve`);
  expect(ok.status).toBe(200);
  expect(ok.body.data.attributes).toMatchObject({ status: 'active', amp_agent_id: a.agent_id });
  return id;
}

/** §4.2 status poll by registration id: `json` holds the fingerprint and, optionally, a proof. */
export const pollStatus = (s: AidServer, id: string, json: Record<string, unknown>) =>
  call('POST', `${s.url}/agent_registrations/${id}/status`, { json });

/** POST /oauth/token, form-encoded, grant urn:aid:agent-identity plus `fields`. */
export const tokenRequest = (s: AidServer, fields: Record<string, string>) =>
  call('POST', `${s.url}/oauth/token`, {
    raw: new URLSearchParams({ grant_type: AID_GRANT, ...fields }).toString(),
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });

/** A token request for `a`'s fingerprint with a fresh proof by `key` (a's own key unless told). */
export const tokenFor = (
  s: AidServer,
  a: Registered,
  key: KeyObject = a.keys.privateKey,
  fingerprint: string = a.body.fingerprint,
) => tokenRequest(s, { fingerprint, proof: tokenProof(key, s.issuer) });

/** POST /oauth/introspect (as the admin unless other headers are given). */
export const introspect = (
  s: AidServer,
  token: string,
  headers: Record<string, string> = { Authorization: `Bearer ${s.admin}` },
) => call('POST', `${s.url}/oauth/introspect`, { headers, json: { token } });

/** The audit events of a registration (newest first), their attributes. */
export async function activityLogs(s: AidServer, id: string, query = ''): Promise<Record<string, any>[]> {
  const r = await asAdmin(s, 'GET', `/${id}/activity_logs${query}`);
  expect(r.status).toBe(200);
  return r.body.data.map((e: { attributes: Record<string, unknown> }) => e.attributes);
}

/** §15: an AID error answers in both shapes, the OAuth one and the JSON:API one. */
export function expectAidError(r: Reply, status: number, code: string): void {
  expect(r.status).toBe(status);
  expect(r.body).toMatchObject({
    error: code,
    error_description: expect.any(String),
    errors: [{ status: String(status), code }],
  });
}
