// Agent registrations (agent-identity §3, §4): the state machine and its JSON:API resource.
// T1 request (agent, AMP API key) -> pending; T3 approve, T4 reject, T5 suspend, T6 reactivate,
// T7 delete (admin). Every transition is audited with actor, IP and statuses.

import { isFullAddress, isoTime, PROOF_REPLAY_TTL_S, PROOF_WINDOW_S } from '../../proto/index.js';
import { safeEqual, sha256Hex } from '../crypto/hash.js';
import { parsePublicKeyPem } from '../crypto/keys.js';
import { randomInt, randomToken, randomUUID } from '../crypto/random.js';
import { ReplayCache } from '../crypto/replay.js';
import type { Ed25519Verifier } from '../crypto/verifier.js';
import { rateLimitedFor } from '../relay/ratelimit.js';
import { KeyedLock } from '../store/keyed-lock.js';
import type { AgentRecord, Store } from '../store/types.js';
import type { Actor, AuditTrail } from './audit.js';
import { paginate } from './audit.js';
import { AidError } from './errors.js';

export type RegistrationStatus = 'pending' | 'active' | 'rejected' | 'suspended' | 'deleted';

export interface Role {
  id: number;
  name: string;
  scopes: string[];
}

export const DEFAULT_ROLES: Role[] = [{ id: 1, name: 'agent', scopes: ['agent:identity'] }];
const CODE_TTL_MS = 24 * 3600 * 1000;
export const MAX_PENDING_PER_TENANT = 200;
/** When the tenant is at MAX_PENDING_PER_TENANT, ask again in a minute (an admin has to act first). */
const PENDING_FULL_RETRY_AFTER_S = 60;
const USER_CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const DEFAULT_TOKEN_LIFETIME_S = 3600;
const STATUS_ALIASES: Record<string, RegistrationStatus> = {
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

const clampLifetime = (s: number) => Math.min(86_400, Math.max(300, Math.round(s)));
const normUserCode = (s: string) => s.toUpperCase().replace(/[\s-]/g, '');

function newUserCode(): string {
  let s = '';
  for (let i = 0; i < 8; i++) s += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)];
  return `${s.slice(0, 4)}-${s.slice(4)}`;
}

/** §4.2: the status poll answers a wrong fingerprint or proof with 401, not the token endpoint's 400. */
const POLL = { status: 401 } as const;

export type TransitionAction = 'approve' | 'reject' | 'suspend' | 'reactivate' | 'delete';

/**
 * §9: move the cutoff past every token issued so far. Tokens get `iat = max(now, cutoff + 1)`, so
 * one issued in this same second may carry `cutoff + 1`: the new cutoff is at least that.
 */
function bumpCutoff(r: Registration): void {
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
async function statusProofParts(
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

/** Hears each committed transition (the AMP side follows approvals and suspensions). */
export interface RegistrationFollower {
  registrationChanged(reg: Registration, action: TransitionAction): Promise<void>;
}

export class Registrations {
  constructor(
    private readonly store: Store,
    private readonly audit: AuditTrail,
    /** The server's one verifier (status proofs, §6.2). */
    private readonly verifier: Ed25519Verifier,
    private readonly issuerOf: (tenant: string) => string,
    private readonly publicBase: () => string,
    private readonly follower: RegistrationFollower,
    /** §14: live pending registrations per tenant (over → 429). */
    private readonly maxPending: number = MAX_PENDING_PER_TENANT,
    readonly roles: Role[] = DEFAULT_ROLES,
  ) {}

  /** §6: proofs seen in the last 600 s, token and status proofs alike. */
  readonly replay = new ReplayCache(PROOF_REPLAY_TTL_S * 1000);

  private readonly tenantLocks = new KeyedLock();

  /**
   * Run `fn` after every earlier write in the tenant settled: each write reads the registration
   * as stored now, so two admins (or an admin and the AMP side) cannot both act on one state.
   */
  private locked<T>(tenant: string, fn: () => Promise<T>): Promise<T> {
    return this.tenantLocks.run(tenant, fn);
  }

  private role(id: number): Role {
    const r = this.roles.find((x) => x.id === id);
    if (!r) throw new AidError('validation_failed', `Unknown role_id: ${id}`);
    return r;
  }

  get(tenant: string, id: string): Registration {
    // Ids are UUIDs; anything else (e.g. longer than a store key may be) is simply not found.
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(id))
      throw new AidError('not_found', 'Registration not found');
    const r = this.store.getRecord<Registration>('registrations', `${tenant}/${id}`);
    if (!r) throw new AidError('not_found', 'Registration not found');
    return r;
  }

  allInTenant(tenant: string): Registration[] {
    return this.all(tenant);
  }

  private all(tenant: string): Registration[] {
    return this.store.recordsWithPrefix<Registration>('registrations', `${tenant}/`);
  }

  private async save(r: Registration): Promise<void> {
    r.updated_at = isoTime(Date.now());
    await this.store.putRecord('registrations', `${r.tenant}/${r.id}`, r);
  }

  /** The JSON:API resource (§4.1): both spellings of address, fingerprint and key. */
  resource(r: Registration): Record<string, unknown> {
    const issuer = this.issuerOf(r.tenant);
    const role = this.roles.find((x) => x.id === r.role_id);
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
  private validate(body: Record<string, unknown>) {
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

  private live(tenant: string, fingerprint: string): Registration[] {
    return this.all(tenant).filter(
      (r) => r.fingerprint === fingerprint && ['pending', 'active', 'suspended'].includes(r.status),
    );
  }

  /** §3: an address is unique among live registrations of a tenant (other than `except`). */
  private assertAddressFree(tenant: string, address: string, except?: string): void {
    if (
      this.all(tenant).some(
        (r) => r.address === address && r.id !== except && ['pending', 'active', 'suspended'].includes(r.status),
      )
    ) {
      throw new AidError('already_registered', 'Address has already been registered');
    }
  }

  /** T1: the agent asks, authenticated by its AMP API key (which binds the address). */
  async request(
    tenant: string,
    agent: AgentRecord,
    body: Record<string, unknown>,
    actor: Actor,
  ): Promise<Record<string, unknown>> {
    if (agent.tenant !== tenant) throw new AidError('forbidden', 'This API key belongs to another organisation');
    const v = this.validate(body);
    return this.locked(tenant, () => this.requestLocked(tenant, agent, v, actor));
  }

  private async requestLocked(
    tenant: string,
    authenticated: AgentRecord,
    v: ReturnType<Registrations['validate']>,
    actor: Actor,
  ): Promise<Record<string, unknown>> {
    const { name, address, description, key } = v;
    // The agent as it is now: it may have deregistered or rotated its key since its API key was checked.
    const agent = this.store.getAgent(authenticated.id);
    if (!agent || agent.fingerprint !== authenticated.fingerprint)
      throw new AidError('invalid_client', 'The agent changed while the request was read; send it again');
    const invalid = (d: string) => new AidError('validation_failed', d);
    if (key.fingerprint !== agent.fingerprint || (address !== agent.address && address !== agent.short_address)) {
      throw invalid("address and key must be this AMP agent's own");
    }
    const now = Date.now();
    const live = this.live(tenant, key.fingerprint);
    if (live.some((r) => r.status !== 'pending'))
      throw new AidError('already_registered', 'Fingerprint has already been registered');
    this.assertAddressFree(tenant, address, live[0]?.id);
    if (
      !live[0] &&
      this.all(tenant).filter((r) => r.status === 'pending' && (r.code_expires_at === null || r.code_expires_at > now))
        .length >= this.maxPending
    ) {
      throw rateLimitedFor(
        PENDING_FULL_RETRY_AFTER_S,
        `This organisation has ${this.maxPending} pending registrations; approve or reject some first`,
      );
    }
    const reg: Registration =
      live[0] ??
      this.fresh(tenant, {
        name,
        description,
        address,
        key,
        status: 'pending',
        method: 'agent_initiated',
        roleId: this.roles[0].id,
        ampAgentId: agent.id,
      });
    // A fresh authorization code on every (re-)request; only hashes are kept.
    const code = `${tenant}.${randomToken(32)}`;
    const userCode = newUserCode();
    reg.code_hash = sha256Hex(code);
    reg.user_code_hash = sha256Hex(normUserCode(userCode));
    reg.code_expires_at = now + CODE_TTL_MS;
    await this.save(reg);
    await this.audit.record(
      tenant,
      reg.id,
      'registration_requested',
      { ...actor, id: `agent:${reg.id}` },
      { previous_status: live[0] ? 'pending' : null, new_status: 'pending' },
    );
    const flow = {
      authorization_url: `${this.publicBase()}/agents/authorize?code=${code}`,
      user_code: userCode,
      expires_in: CODE_TTL_MS / 1000,
      interval: 5,
      token_endpoint: `${this.issuerOf(tenant)}/oauth/token`,
    };
    const res = this.resource(reg);
    const attrs = res.attributes as Record<string, unknown>;
    return {
      data: {
        ...res,
        attributes: {
          status: attrs.status,
          name: attrs.name,
          address: attrs.address,
          fingerprint: attrs.fingerprint,
          registration_method: attrs.registration_method,
          ...flow,
          oidc_issuer: attrs.oidc_issuer,
        },
      },
      ...flow,
    };
  }

  /** Per registration: when it was last polled, and the interval now asked of it (§4.2). */
  private readonly polls = new Map<string, { at: number; interval: number }>();

  /**
   * Status poll (§4.2): by id with the registration's fingerprint (and an optional §6.2 proof), or
   * by user code. Polling faster than the interval answers 429 slow_down and lengthens it by 5 s.
   */
  async pollStatus(
    tenant: string,
    by: { id: string; fingerprint: unknown; proof: unknown; aliases?: readonly string[] } | { code: string },
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    let r: Registration | undefined;
    if ('code' in by) {
      const h = sha256Hex(normUserCode(by.code));
      const full = sha256Hex(by.code);
      r = this.all(tenant).find((x) => x.user_code_hash === h || x.code_hash === full);
      if (!r) throw new AidError('not_found', 'Unknown or expired code');
    } else {
      r = this.get(tenant, by.id);
      const fp = typeof by.fingerprint === 'string' ? by.fingerprint : '';
      const matches = [r.fingerprint, r.fingerprint_raw].some((x) => safeEqual(x, fp));
      if (!matches) throw new AidError('invalid_proof', 'fingerprint does not match the registration', POLL);
      if (by.proof !== undefined && by.proof !== null && by.proof !== '') {
        const issuers = [this.issuerOf(tenant), ...(by.aliases ?? [])];
        const parts = await statusProofParts(this.verifier, r, issuers, String(by.proof));
        if (!parts) throw new AidError('invalid_proof', 'status proof does not verify', POLL);
        if (!this.replay.claim([tenant, parts.sig, parts.ts, '|status']))
          throw new AidError('invalid_proof', 'status proof already used; sign a new one', POLL);
      }
    }
    const now = Date.now();
    const poll = this.polls.get(r.id);
    if (poll && now - poll.at < poll.interval * 1000) {
      poll.interval += 5;
      poll.at = now;
      return {
        status: 429,
        body: {
          error: 'slow_down',
          error_description: `Polling too frequently. Increase interval to ${poll.interval} seconds.`,
          interval: poll.interval,
        },
      };
    }
    this.polls.set(r.id, { at: now, interval: poll?.interval ?? 5 });
    if (r.status === 'pending') {
      if (r.code_expires_at !== null && r.code_expires_at <= now)
        return {
          status: 410,
          body: { error: 'expired_token', error_description: 'The registration request expired; request again' },
        };
      return {
        status: 200,
        body: {
          error: 'authorization_pending',
          status: 'pending',
          interval: poll?.interval ?? 5,
          data: this.resource(r),
        },
      };
    }
    const body: Record<string, unknown> = { data: this.resource(r) };
    if (r.status === 'rejected') body.error = 'access_denied';
    return { status: 200, body };
  }

  private fresh(
    tenant: string,
    f: {
      name: string;
      description: string | null;
      address: string;
      key: { fingerprint: string; fingerprintRaw: string; pem: string };
      status: RegistrationStatus;
      method: Registration['registration_method'];
      roleId: number;
      ampAgentId: string | null;
      lifetime?: number;
    },
  ): Registration {
    const now = isoTime(Date.now());
    return {
      id: randomUUID(),
      tenant,
      name: f.name,
      description: f.description,
      address: f.address,
      fingerprint: f.key.fingerprint,
      fingerprint_raw: f.key.fingerprintRaw,
      public_key: f.key.pem,
      status: f.status,
      registration_method: f.method,
      role_id: f.roleId,
      token_lifetime: clampLifetime(f.lifetime ?? DEFAULT_TOKEN_LIFETIME_S),
      amp_agent_id: f.ampAgentId,
      address_verified: f.ampAgentId !== null,
      rejection_reason: null,
      suspension_reason: null,
      approved_at: f.status === 'active' ? now : null,
      created_at: now,
      updated_at: now,
      tokens_valid_after: 0,
      code_hash: null,
      user_code_hash: null,
      code_expires_at: null,
    };
  }

  /** T2: an admin creates an active registration; bound to the AMP agent with that key, if any. */
  create(tenant: string, body: Record<string, unknown>, actor: Actor): Promise<Record<string, unknown>> {
    return this.locked(tenant, () => this.createLocked(tenant, body, actor));
  }

  private async createLocked(
    tenant: string,
    body: Record<string, unknown>,
    actor: Actor,
  ): Promise<Record<string, unknown>> {
    const { b, name, address, description, key } = this.validate(body);
    // role_id and token_lifetime may sit inside `agent_registration` or beside it.
    const roleId = b.role_id ?? body.role_id;
    const lifetime = b.token_lifetime ?? body.token_lifetime;
    if (typeof roleId !== 'number') throw new AidError('validation_failed', 'role_id (a number) is required');
    const role = this.role(roleId);
    if (this.live(tenant, key.fingerprint).length)
      throw new AidError('already_registered', 'Fingerprint has already been registered');
    this.assertAddressFree(tenant, address);
    const amp = this.store.findAgentByFingerprint(key.fingerprint);
    const bound =
      amp && amp.tenant === tenant && (amp.address === address || amp.short_address === address) ? amp.id : null;
    const reg = this.fresh(tenant, {
      name,
      description,
      address,
      key,
      status: 'active',
      method: 'admin_initiated',
      roleId: role.id,
      ampAgentId: bound,
      lifetime: typeof lifetime === 'number' ? lifetime : undefined,
    });
    await this.save(reg);
    await this.audit.record(tenant, reg.id, 'registration_created', actor, {
      previous_status: null,
      new_status: 'active',
      new_role: role,
    });
    return { data: this.resource(reg) };
  }

  /** T8: role, token lifetime, name, description; a role change ends earlier tokens (§9). */
  update(tenant: string, id: string, body: Record<string, unknown>, actor: Actor): Promise<Record<string, unknown>> {
    return this.locked(tenant, () => this.updateLocked(tenant, id, body, actor));
  }

  private async updateLocked(
    tenant: string,
    id: string,
    body: Record<string, unknown>,
    actor: Actor,
  ): Promise<Record<string, unknown>> {
    const r = this.get(tenant, id);
    if (r.status === 'deleted')
      throw new AidError('invalid_transition', 'Cannot update a registration in status deleted');
    const b = (
      body.agent_registration && typeof body.agent_registration === 'object' ? body.agent_registration : body
    ) as Record<string, unknown>;
    const changes: Record<string, unknown> = {};
    const previousRole = this.role(r.role_id);
    let newRole: Role | null = null;
    if (b.role_id !== undefined) {
      newRole = this.role(Number(b.role_id));
      if (newRole.id !== r.role_id) {
        changes.role_id = { from: r.role_id, to: newRole.id };
        r.role_id = newRole.id;
        bumpCutoff(r);
      }
    }
    if (typeof b.token_lifetime === 'number') {
      changes.token_lifetime = { from: r.token_lifetime, to: clampLifetime(b.token_lifetime) };
      r.token_lifetime = clampLifetime(b.token_lifetime);
    }
    if (typeof b.name === 'string' && b.name.length >= 1 && b.name.length <= 255) {
      changes.name = { from: r.name, to: b.name };
      r.name = b.name;
    }
    if (typeof b.description === 'string' && b.description.length <= 2000) {
      changes.description = { from: r.description, to: b.description };
      r.description = b.description;
    }
    await this.save(r);
    await this.audit.record(tenant, r.id, 'registration_updated', actor, {
      previous_status: r.status,
      new_status: r.status,
      previous_role: changes.role_id ? previousRole : null,
      new_role: changes.role_id ? newRole : null,
      metadata: { changes },
    });
    return { data: this.resource(r) };
  }

  /** resolve?code=: an admin looks up a pending request by its authorization or user code. */
  async resolve(tenant: string, code: string, actor: Actor): Promise<Record<string, unknown>> {
    const h = sha256Hex(normUserCode(code));
    const full = sha256Hex(code);
    const now = Date.now();
    const r = this.all(tenant).find(
      (x) => (x.user_code_hash === h || x.code_hash === full) && x.code_expires_at !== null && x.code_expires_at > now,
    );
    if (!r) throw new AidError('not_found', 'Unknown or expired code');
    await this.audit.record(tenant, r.id, 'authorization_code_resolved', actor, {
      previous_status: r.status,
      new_status: r.status,
    });
    return { data: this.resource(r), company_url_id: tenant, company_name: tenant };
  }

  list(tenant: string, q: URLSearchParams): Record<string, unknown> {
    const rawStatus = q.get('status');
    const status = rawStatus ? (STATUS_ALIASES[rawStatus] ?? rawStatus) : undefined;
    const items = this.all(tenant)
      .filter((r) => !status || r.status === status)
      .sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0))
      .map((r) => this.resource(r));
    return paginate(items, q);
  }

  /** T3-T7 (and their guards). */
  transition(
    tenant: string,
    id: string,
    action: TransitionAction,
    body: Record<string, unknown>,
    actor: Actor,
  ): Promise<Record<string, unknown>> {
    return this.locked(tenant, () => this.transitionLocked(tenant, id, action, body, actor));
  }

  /**
   * §13: the AMP agent behind registrations was deregistered: an active one is suspended and a
   * pending one rejected, by the system, reason `amp_agent_deregistered`.
   */
  async followAmpDeregistration(agent: AgentRecord): Promise<void> {
    const system: Actor = { type: 'system', id: 'system', email: null, address: null, ip: null, userAgent: null };
    await this.locked(agent.tenant, async () => {
      for (const r of this.all(agent.tenant).filter((x) => x.amp_agent_id === agent.id)) {
        const action = r.status === 'active' ? 'suspend' : r.status === 'pending' ? 'reject' : null;
        if (action)
          await this.transitionLocked(agent.tenant, r.id, action, { reason: 'amp_agent_deregistered' }, system);
      }
    });
  }

  /** §3: a fingerprint belongs to one live registration; may `agent` rotate its key to it? */
  keyClaimedByOther(agent: AgentRecord, fingerprint: string): boolean {
    return this.all(agent.tenant).some(
      (r) =>
        r.fingerprint === fingerprint &&
        r.amp_agent_id !== agent.id &&
        r.status !== 'rejected' &&
        r.status !== 'deleted',
    );
  }

  /**
   * §13: the AMP agent rotated its keypair: its registrations take the new key and fingerprints,
   * tokens issued until now stop being valid (the cutoff), and `registration_updated` records it.
   */
  async followAmpKeyRotation(before: AgentRecord, after: AgentRecord): Promise<void> {
    await this.locked(after.tenant, async () => {
      for (const r of this.all(after.tenant).filter(
        (x) => x.amp_agent_id === after.id && x.status !== 'deleted' && x.status !== 'rejected',
      )) {
        const actor: Actor = {
          type: 'system',
          id: 'system',
          email: null,
          address: after.address,
          ip: null,
          userAgent: null,
        };
        r.public_key = after.public_key_pem;
        r.fingerprint = after.fingerprint;
        r.fingerprint_raw = after.fingerprint_raw;
        bumpCutoff(r);
        await this.save(r);
        await this.audit.record(after.tenant, r.id, 'registration_updated', actor, {
          previous_status: r.status,
          new_status: r.status,
          reason: 'amp_key_rotated',
          metadata: { key_rotated: { old_fingerprint: before.fingerprint, new_fingerprint: after.fingerprint } },
        });
      }
    });
  }

  private async transitionLocked(
    tenant: string,
    id: string,
    action: TransitionAction,
    body: Record<string, unknown>,
    actor: Actor,
  ): Promise<Record<string, unknown>> {
    const r = this.get(tenant, id);
    const from = r.status;
    const allowed: Record<typeof action, RegistrationStatus[]> = {
      approve: ['pending'],
      reject: ['pending'],
      suspend: ['active'],
      reactivate: ['suspended'],
      delete: ['pending', 'active', 'rejected', 'suspended'],
    };
    if (!allowed[action].includes(from))
      throw new AidError('invalid_transition', `Cannot ${action} a registration in status ${from}`);
    const reason = typeof body.reason === 'string' ? body.reason.slice(0, 2000) : null;
    const previousRole = this.role(r.role_id);
    let event:
      | 'registration_approved'
      | 'registration_rejected'
      | 'registration_suspended'
      | 'registration_reactivated'
      | 'registration_deleted';
    switch (action) {
      case 'approve': {
        const roleId = body.role_id === undefined || body.role_id === null ? this.roles[0].id : Number(body.role_id);
        this.role(roleId);
        r.status = 'active';
        r.role_id = roleId;
        r.approved_at = isoTime(Date.now());
        r.code_hash = r.user_code_hash = null;
        r.code_expires_at = null;
        event = 'registration_approved';
        break;
      }
      case 'reject':
        r.status = 'rejected';
        r.rejection_reason = reason;
        r.code_hash = r.user_code_hash = null;
        event = 'registration_rejected';
        break;
      case 'suspend':
        r.status = 'suspended';
        r.suspension_reason = reason;
        bumpCutoff(r);
        event = 'registration_suspended';
        break;
      case 'reactivate':
        r.status = 'active';
        r.suspension_reason = null;
        event = 'registration_reactivated';
        break;
      case 'delete':
        r.status = 'deleted';
        bumpCutoff(r);
        r.code_hash = r.user_code_hash = null;
        event = 'registration_deleted';
        break;
    }
    await this.save(r);
    const newRole = this.role(r.role_id);
    await this.audit.record(tenant, r.id, event, actor, {
      previous_status: from,
      new_status: r.status,
      previous_role: action === 'approve' ? null : previousRole,
      new_role: action === 'approve' ? newRole : null,
      reason,
    });
    // The AMP side follows; the transition is committed and audited whatever happens there.
    await this.follower.registrationChanged(r, action);
    return { data: this.resource(r) };
  }
}
