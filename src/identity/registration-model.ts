// The registration record (agent-identity §3, §4) and the pure rules around it: user codes, the
// token cutoff, status proofs, and what each admin transition does to a record.

import { isFullAddress, isoTime, PROOF_WINDOW_S } from '../../proto/index.js';
import { parsePublicKeyPem } from '../crypto/keys.js';
import { randomInt } from '../crypto/random.js';
import type { Ed25519Verifier } from '../crypto/verifier.js';
import type { EventType } from './audit.js';
import { AidError } from './errors.js';

export type RegistrationStatus = 'pending' | 'active' | 'rejected' | 'suspended' | 'deleted';

export interface Role {
  id: number;
  name: string;
  scopes: string[];
}

export const DEFAULT_ROLES: Role[] = [{ id: 1, name: 'agent', scopes: ['agent:identity'] }];
export const CODE_TTL_MS = 24 * 3600 * 1000;
export const MAX_PENDING_PER_TENANT = 200;
/** When the tenant is at MAX_PENDING_PER_TENANT, ask again in a minute (an admin has to act first). */
export const PENDING_FULL_RETRY_AFTER_S = 60;
const USER_CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
export const DEFAULT_TOKEN_LIFETIME_S = 3600;
export const STATUS_ALIASES: Record<string, RegistrationStatus> = {
  approved: 'active',
  pending_approval: 'pending',
  revoked: 'deleted',
};

export interface Registration {
  id: string;
  tenant: string;
  name: string;
  description: string | null;
  address: string;
  fingerprint: string;
  fingerprint_raw: string;
  public_key: string;
  status: RegistrationStatus;
  registration_method: 'agent_initiated' | 'admin_initiated';
  role_id: number;
  token_lifetime: number;
  amp_agent_id: string | null;
  address_verified: boolean;
  rejection_reason: string | null;
  suspension_reason: string | null;
  approved_at: string | null;
  created_at: string;
  updated_at: string;
  /** Unix seconds; tokens issued at or before it are inactive (§9). */
  tokens_valid_after: number;
  code_hash: string | null;
  user_code_hash: string | null;
  code_expires_at: number | null;
}

export const clampLifetime = (s: number) => Math.min(86_400, Math.max(300, Math.round(s)));
export const normUserCode = (s: string) => s.toUpperCase().replace(/[\s-]/g, '');

export function newUserCode(): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4)}`;
}

/** §4.2: the status poll answers a wrong fingerprint or proof with 401, not the token endpoint's 400. */
export const POLL = { status: 401 } as const;

export type TransitionAction = 'approve' | 'reject' | 'suspend' | 'reactivate' | 'delete';

/**
 * §9: move the cutoff past every token issued so far. Tokens get `iat = max(now, cutoff + 1)`, so
 * one issued in this same second may carry `cutoff + 1`: the new cutoff is at least that.
 */
export function bumpCutoff(r: Registration): void {
  r.tokens_valid_after = Math.max(Math.floor(Date.now() / 1000), r.tokens_valid_after + 1);
}

function proofBytes(proof: string): Buffer {
  return Buffer.from(
    proof
      .replace(/[\r\n]/g, '')
      .replace(/-/g, '+')
      .replace(/_/g, '/'),
    'base64',
  );
}

/**
 * §6.2: Ed25519 over `aid-registration-status\n{ts}\n{issuer}`; the raw form is
 * base64url(signature || ts), the CLI's text form base64url(ASCII(base64(signature) + ts)).
 * The verified proof's signature and timestamp (the same whichever encoding carried them), or null.
 */
export async function statusProofParts(
  verifier: Ed25519Verifier,
  r: Registration,
  issuers: readonly string[],
  proof: string,
): Promise<{ sig: Buffer; ts: string } | null> {
  const bytes = proofBytes(proof);
  const text = bytes.toString('latin1');
  let sig: Buffer;
  let ts: string;
  const m = /^([A-Za-z0-9+/]{86}==)(\d{1,12})$/.exec(text);
  if (m) {
    sig = Buffer.from(m[1], 'base64');
    ts = m[2];
  } else {
    sig = bytes.subarray(0, 64);
    ts = bytes.subarray(64).toString('ascii');
  }
  if (sig.length !== 64 || !/^\d{1,12}$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > PROOF_WINDOW_S)
    return null;
  const inputs = issuers
    .flatMap((i) => [i, `${i}/`])
    .map((iss) => Buffer.from(`aid-registration-status\n${ts}\n${iss}`));
  return (await verifier.verifyAny(r.public_key, inputs, sig)) ? { sig, ts } : null;
}

/** T3-T7: the statuses each admin action may start from. */
export const ALLOWED_FROM: Record<TransitionAction, RegistrationStatus[]> = {
  approve: ['pending'],
  reject: ['pending'],
  suspend: ['active'],
  reactivate: ['suspended'],
  delete: ['pending', 'active', 'rejected', 'suspended'],
};

/** Apply an allowed transition to `r` in place; returns the audit event it records. */
export function applyTransition(
  r: Registration,
  action: TransitionAction,
  reason: string | null,
  roleId: number,
): EventType {
  switch (action) {
    case 'approve':
      r.status = 'active';
      r.role_id = roleId;
      r.approved_at = isoTime(Date.now());
      r.code_hash = r.user_code_hash = null;
      r.code_expires_at = null;
      return 'registration_approved';
    case 'reject':
      r.status = 'rejected';
      r.rejection_reason = reason;
      r.code_hash = r.user_code_hash = null;
      return 'registration_rejected';
    case 'suspend':
      r.status = 'suspended';
      r.suspension_reason = reason;
      bumpCutoff(r);
      return 'registration_suspended';
    case 'reactivate':
      r.status = 'active';
      r.suspension_reason = null;
      return 'registration_reactivated';
    case 'delete':
      r.status = 'deleted';
      bumpCutoff(r);
      r.code_hash = r.user_code_hash = null;
      return 'registration_deleted';
  }
}

/** The JSON:API resource (§4.1): both spellings of address, fingerprint and key. */
export function registrationResource(r: Registration, issuer: string, role: Role | undefined): Record<string, unknown> {
  return {
    id: r.id,
    type: 'agent_registration',
    attributes: {
      unique_id: r.id,
      name: r.name,
      description: r.description,
      address: r.address,
      amp_address: r.address,
      fingerprint: r.fingerprint,
      amp_fingerprint: r.fingerprint,
      public_key: r.public_key,
      amp_public_key: r.public_key,
      key_algorithm: 'Ed25519',
      status: r.status,
      approved: r.status === 'active',
      address_verified: r.address_verified,
      registration_method: r.registration_method,
      role_id: r.role_id,
      role_name: role?.name ?? null,
      token_lifetime: r.token_lifetime,
      token_endpoint: `${issuer}/oauth/token`,
      oidc_issuer: issuer,
      company_url_id: r.tenant,
      company_name: r.tenant,
      amp_agent_id: r.amp_agent_id,
      rejection_reason: r.rejection_reason,
      suspension_reason: r.suspension_reason,
      approved_at: r.approved_at,
      created_at: r.created_at,
      updated_at: r.updated_at,
    },
  };
}

/** The §4.2 field checks shared by T1 and T2 (422 validation_failed). */
export function validateRegistrationBody(body: Record<string, unknown>) {
  const b = (
    body.agent_registration && typeof body.agent_registration === 'object' ? body.agent_registration : body
  ) as Record<string, unknown>;
  const str = (...names: string[]) => names.map((n) => b[n]).find((v) => typeof v === 'string') as string | undefined;
  const name = str('name');
  const address = str('address', 'amp_address')?.toLowerCase();
  const fingerprint = str('fingerprint', 'amp_fingerprint');
  const pem = str('public_key', 'amp_public_key');
  const description = str('description') ?? null;
  const invalid = (d: string) => new AidError('validation_failed', d);
  if ((str('key_algorithm') ?? 'Ed25519').toLowerCase() !== 'ed25519') throw invalid('key_algorithm must be Ed25519');
  if (!name || name.length > 255) throw invalid('name is required (1-255 characters)');
  if (description !== null && description.length > 2000) throw invalid('description is at most 2000 characters');
  if (!pem) throw invalid('public_key is required');
  const key = parsePublicKeyPem(pem);
  if (typeof key === 'string') throw invalid('public_key must be an Ed25519 public key (SPKI PEM)');
  if (!fingerprint || (fingerprint !== key.fingerprint && fingerprint !== key.fingerprintRaw))
    throw invalid('fingerprint does not match public_key');
  if (!address || !isFullAddress(address)) throw invalid('address must be a full AMP address');
  return { b, name, address, description, key };
}
