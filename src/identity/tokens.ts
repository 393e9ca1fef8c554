// The token exchange (agent-identity §5, §6.1, §7, §9) and introspection (§8). An active agent
// proves possession of its registered Ed25519 key and gets a short-lived JWT; a suspension moves
// the cutoff so that earlier tokens stay invalid for good.

import { SignJWT, jwtVerify, type JWTPayload } from 'jose';
import { canonicalJson, PROOF_WINDOW_S } from '../../proto/index.js';
import { randomUUID } from '../crypto/random.js';
import type { Ed25519Verifier } from '../crypto/verifier.js';
import type { RecordsStore } from '../store/types.js';
import type { Actor, AuditTrail } from './audit.js';
import { AidError } from './errors.js';
import type { Registration, Registrations, Role } from './registrations.js';
import type { SigningKeys } from './signing-keys.js';
import { rateLimitedError, type RateLimits, type Take } from '../relay/ratelimit.js';

export const GRANT_TYPE = 'urn:aid:agent-identity';
const MAX_IDENTITY_DOC_BYTES = 8192;
const MAX_PROOF_BYTES = 256;
const LIFETIME_MIN_S = 300;
const LIFETIME_MAX_S = 86_400;

export function tokenProofInput(ts: string, issuer: string): string {
  return `aid-token-exchange\n${ts}\n${issuer}`;
}

/** base64url (or base64) without caring for padding. */
function decodeB64(s: string): Buffer | null {
  if (!/^[A-Za-z0-9+/_-]+=*$/.test(s)) return null;
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

/** §14: a refused take is 429 `rate_limited` with Retry-After (AID-shaped by the AID surface). */
export function rateLimited(take: Take | undefined, what: string): void {
  if (take && !take.ok) throw rateLimitedError(take, `Too many ${what}; retry in ${take.retryAfter} s`);
}

export class Tokens {
  constructor(
    private readonly keys: SigningKeys,
    private readonly store: RecordsStore,
    private readonly registrations: Registrations,
    private readonly audit: AuditTrail,
    private readonly verifier: Ed25519Verifier,
    private readonly limits?: RateLimits,
  ) {}

  /**
   * §5 token exchange. `issuer` signs the token; a proof may name it or one of `aliases` (§16:
   * the URLs agents reach us by, AID_ISSUER_ALIASES).
   */
  async exchange(
    tenant: string,
    issuer: string,
    p: Record<string, unknown>,
    ip: string,
    userAgent: string | null,
    aliases: readonly string[] = [],
  ): Promise<Record<string, unknown>> {
    const str = (k: string) => (typeof p[k] === 'string' && p[k] !== '' ? (p[k] as string) : undefined);
    if (str('grant_type') !== GRANT_TYPE)
      throw new AidError('unsupported_grant_type', `grant_type must be ${GRANT_TYPE}`);
    const proof = str('proof');
    const identityRaw = str('agent_identity');
    if (!proof || (!str('fingerprint') && !identityRaw))
      throw new AidError('invalid_request', 'proof and fingerprint (or agent_identity) are required');
    const credentialType = str('requested_credential_type') ?? 'access_token';
    if (credentialType !== 'access_token')
      throw new AidError('invalid_request', `requested_credential_type '${credentialType}' is not supported`);

    let doc: Record<string, unknown> | undefined;
    if (identityRaw) {
      const bytes = identityRaw.length <= (MAX_IDENTITY_DOC_BYTES * 4) / 3 + 4 ? decodeB64(identityRaw) : null;
      try {
        doc =
          bytes && bytes.length <= MAX_IDENTITY_DOC_BYTES
            ? (JSON.parse(bytes.toString('utf8')) as Record<string, unknown>)
            : undefined;
      } catch {
        doc = undefined;
      }
      if (!doc || typeof doc !== 'object')
        throw new AidError('invalid_grant', 'agent_identity is not a base64url JSON identity document');
    }
    const fingerprint = str('fingerprint') ?? (typeof doc?.fingerprint === 'string' ? doc.fingerprint : '');
    // §14: 200/min per tenant, 30/min per key (refilled by a success). A known key's bucket is its
    // registration's, whichever fingerprint form names it.
    rateLimited(this.limits?.take([['aid_token', tenant]]), 'token requests for this organisation');
    const reg = this.registrations
      .allInTenant(tenant)
      .find(
        (r) =>
          (r.fingerprint === fingerprint || r.fingerprint_raw === fingerprint) &&
          r.status !== 'rejected' &&
          r.status !== 'deleted',
      );
    const keyBucket = `${tenant}|${reg ? `reg:${reg.id}` : `fp:${fingerprint}`}`;
    rateLimited(this.limits?.take([['aid_token_key', keyBucket]]), 'token requests for this key');
    if (!reg) throw new AidError('agent_not_registered', 'No registration for this key in this organisation');
    const actor: Actor = { type: 'agent', id: `agent:${reg.id}`, email: null, address: reg.address, ip, userAgent };
    try {
      const out = await this.issueFor(reg, issuer, aliases, p, proof, doc, credentialType, actor);
      this.limits?.reset('aid_token_key', keyBucket);
      return out;
    } catch (e) {
      if (e instanceof AidError) {
        await this.audit.record(tenant, reg.id, 'token_denied', actor, {
          previous_status: reg.status,
          new_status: reg.status,
          metadata: { error: e.code, error_description: e.description },
        });
      }
      throw e;
    }
  }

  private async issueFor(
    reg: Registration,
    issuer: string,
    aliases: readonly string[],
    p: Record<string, unknown>,
    proof: string,
    doc: Record<string, unknown> | undefined,
    credentialType: string,
    actor: Actor,
  ): Promise<Record<string, unknown>> {
    const address = typeof p.agent_address === 'string' ? p.agent_address.toLowerCase() : undefined;
    if (address !== undefined && address !== reg.address)
      throw new AidError('invalid_grant', 'agent_address does not match the registration');
    if (doc) await this.checkIdentityDocument(doc, reg);

    // Scopes as a set: spacing, order and repeats neither change the grant nor dodge the replay cache.
    const requested = [...new Set((typeof p.scope === 'string' ? p.scope : '').split(/\s+/).filter(Boolean))].sort();
    const role = this.registrations.roles.find((r) => r.id === reg.role_id) ?? this.registrations.roles[0];
    // The replay key names the grant: no scope means the role's, the same as naming them.
    const effective = requested.length ? requested : [...role.scopes].sort();
    await this.checkProof(reg, [issuer, ...aliases], proof, `${effective.join(' ')}|${credentialType}`);

    if (reg.status === 'pending')
      throw new AidError('registration_pending', 'The registration is waiting for approval');
    if (reg.status === 'suspended') throw new AidError('agent_suspended', 'The agent is suspended');

    const outside = requested.filter((s) => !role.scopes.includes(s));
    if (outside.length)
      throw new AidError('invalid_scope', `Scopes not granted to role ${role.name}: ${outside.join(' ')}`);
    const scopes = requested.length ? requested : role.scopes;

    const audience = typeof p.resource === 'string' ? p.resource : typeof p.audience === 'string' ? p.audience : issuer;
    if (audience !== issuer) throw new AidError('invalid_target', 'Unknown resource or audience');

    const { token, iat, lifetime, jti } = await this.sign(reg, role, scopes, issuer, audience);
    await this.audit.record(reg.tenant, reg.id, 'token_issued', actor, {
      previous_status: reg.status,
      new_status: reg.status,
      metadata: {
        jti,
        scopes_requested: requested,
        scopes_granted: scopes,
        credential_type: credentialType,
        expires_at: new Date((iat + lifetime) * 1000).toISOString(),
        proof_mode: 'timestamp',
      },
    });
    return {
      access_token: token,
      token_type: 'Bearer',
      expires_in: lifetime,
      scope: scopes.join(' '),
      agent_address: reg.address,
      agent_id: reg.id,
      credential_type: 'access_token',
    };
  }

  /** The agent token (§7): `iat` after the registration's cutoff, lifetime within the bounds. */
  private async sign(reg: Registration, role: Role, scopes: string[], issuer: string, audience: string) {
    const now = Math.floor(Date.now() / 1000);
    const iat = Math.max(now, reg.tokens_valid_after + 1);
    const lifetime = Math.min(LIFETIME_MAX_S, Math.max(LIFETIME_MIN_S, reg.token_lifetime));
    const jti = randomUUID();
    const key = await this.keys.current();
    const sub = `agent:${reg.id}`;
    const token = await new SignJWT({
      client_id: sub,
      scope: scopes.join(' '),
      scopes,
      token_type: 'agent',
      agent_id: reg.id,
      agent_address: reg.address,
      agent_name: reg.name,
      agent_role: role.name,
      role_id: role.id,
      agent_fingerprint: reg.fingerprint,
      company_url_id: reg.tenant,
    })
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'at+jwt' })
      .setIssuer(issuer)
      .setSubject(sub)
      .setAudience([audience])
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + lifetime)
      .setJti(jti)
      .sign(key.privateKey);
    return { token, iat, lifetime, jti };
  }

  /** §6.1: base64url(signature[64] || ASCII ts); window ±300 s; an issuer, or it + '/'; once. */
  private async checkProof(
    reg: Registration,
    issuers: readonly string[],
    proof: string,
    context: string,
  ): Promise<void> {
    const bytes = proof.length <= (MAX_PROOF_BYTES * 4) / 3 + 4 ? decodeB64(proof) : null;
    if (!bytes || bytes.length < 65 || bytes.length > MAX_PROOF_BYTES)
      throw new AidError('invalid_proof', 'proof is not base64url(signature || timestamp)');
    const ts = bytes.subarray(64).toString('ascii');
    if (!/^\d{1,12}$/.test(ts)) throw new AidError('invalid_proof', 'proof timestamp is not unix seconds');
    const drift = Math.floor(Date.now() / 1000) - Number(ts);
    if (Math.abs(drift) > PROOF_WINDOW_S)
      throw new AidError(
        'invalid_proof',
        `proof timestamp is ${Math.abs(drift)} s ${drift > 0 ? 'old' : 'in the future'}; the window is ${PROOF_WINDOW_S} s (check the clock)`,
      );
    const inputs = issuers.flatMap((i) => [i, `${i}/`]).map((iss) => Buffer.from(tokenProofInput(ts, iss)));
    if (!(await this.verifier.verifyAny(reg.public_key, inputs, bytes.subarray(0, 64))))
      throw new AidError('invalid_proof', 'proof does not verify with the registered key for this issuer');
    // §6.1 replay key: SHA-256(proof bytes | scope | credential type), per tenant.
    if (!this.registrations.replay.claim([reg.tenant, Buffer.concat([bytes, Buffer.from(`|${context}`)])]))
      throw new AidError('invalid_proof', 'proof already used');
  }

  /** §2 identity document: signed by the registered key, matching the registration. */
  private async checkIdentityDocument(doc: Record<string, unknown>, reg: Registration): Promise<void> {
    const bad = (why: string) => new AidError('invalid_grant', `agent_identity: ${why}`);
    if (String(doc.key_algorithm ?? '').toLowerCase() !== 'ed25519') throw bad('key_algorithm must be Ed25519');
    if (typeof doc.public_key !== 'string' || doc.public_key.trim() !== reg.public_key.trim())
      throw bad('public_key is not the registered key');
    if (doc.fingerprint !== reg.fingerprint && doc.fingerprint !== reg.fingerprint_raw)
      throw bad('fingerprint does not match');
    if (typeof doc.address !== 'string' || doc.address.toLowerCase() !== reg.address)
      throw bad('address does not match');
    const now = Date.now();
    const exp = Date.parse(String(doc.expires_at));
    const iss = Date.parse(String(doc.issued_at));
    if (!(exp > now - 300_000) || !(iss < now + 300_000) || exp - iss > 366 * 24 * 3600 * 1000)
      throw bad('outside its validity period');
    const sig = typeof doc.signature === 'string' ? decodeB64(doc.signature) : null;
    if (sig?.length !== 64) throw bad('signature missing or malformed');
    const { signature: _omit, ...fields } = doc;
    let forms: string[];
    try {
      // canonicalJson refuses what JSON cannot hold (e.g. 1e400 parsed as Infinity): not a 500.
      const canonical = canonicalJson(fields);
      forms = [canonical, JSON.stringify(fields, null, 2), `amp-agent-card-v1\n${canonical}`];
    } catch {
      throw bad('signature does not verify');
    }
    const candidates = forms.map((f) => Buffer.from(f, 'utf8'));
    if (!(await this.verifier.verifyAny(reg.public_key, candidates, sig))) throw bad('signature does not verify');
  }

  /** §8: RFC 7662 introspection of an agent token of this tenant. */
  async introspect(tenant: string, issuer: string, token: string): Promise<Record<string, unknown>> {
    const inactive = (reason: string) => ({ active: false, reason });
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, await this.keys.verifier(), {
        issuer,
        algorithms: await this.keys.algorithms(),
        clockTolerance: 60,
      }));
    } catch (e) {
      return inactive((e as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'token_expired' : 'invalid_token');
    }
    if (payload.token_type !== 'agent' || typeof payload.agent_id !== 'string') return inactive('invalid_token');
    const reg = this.store.getRecord<Registration>('registrations', `${tenant}/${payload.agent_id}`);
    if (!reg || reg.status === 'rejected' || reg.status === 'deleted') return inactive('agent_not_found');
    if (reg.status === 'suspended') return inactive('agent_suspended');
    if (reg.status === 'pending') return inactive('registration_pending');
    if ((payload.iat ?? 0) <= reg.tokens_valid_after) return inactive('token_revoked');
    const role = this.registrations.roles.find((r) => r.id === reg.role_id);
    return {
      active: true,
      sub: payload.sub,
      scope: payload.scope,
      token_type: 'Bearer',
      client_id: payload.client_id,
      agent_id: reg.id,
      agent_address: reg.address,
      agent_name: reg.name,
      agent_role: role?.name ?? payload.agent_role,
      agent_status: reg.status,
      exp: payload.exp,
      iat: payload.iat,
      nbf: payload.nbf,
      iss: payload.iss,
      aud: payload.aud,
      jti: payload.jti,
    };
  }
}
