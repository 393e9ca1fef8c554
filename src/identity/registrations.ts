// Agent registrations (agent-identity §3, §4): the state machine and its JSON:API resource.
// T1 request (agent, AMP API key) -> pending; T3 approve, T4 reject, T5 suspend, T6 reactivate,
// T7 delete (admin). Every transition is audited with actor, IP and statuses.

import { isoTime, PROOF_REPLAY_TTL_S } from '../../proto/index.js';
import { sha256Hex } from '../crypto/hash.js';
import { randomToken, randomUUID } from '../crypto/random.js';
import { ReplayCache } from '../crypto/replay.js';
import { rateLimitedFor } from '../relay/ratelimit.js';
import { KeyedLock } from '../store/keyed-lock.js';
import type { AgentRecord, DirectoryStore, RecordsStore } from '../store/types.js';
import type { Actor, AuditTrail } from './audit.js';
import { paginate } from './audit.js';
import { AidError } from './errors.js';
import {
  ALLOWED_FROM,
  registrationResource,
  validateRegistrationBody,
  applyTransition,
  bumpCutoff,
  CODE_TTL_MS,
  clampLifetime,
  DEFAULT_ROLES,
  DEFAULT_TOKEN_LIFETIME_S,
  MAX_PENDING_PER_TENANT,
  newUserCode,
  normUserCode,
  PENDING_FULL_RETRY_AFTER_S,
  type Registration,
  type RegistrationStatus,
  type Role,
  STATUS_ALIASES,
  type TransitionAction,
} from './registration-model.js';

export {
  DEFAULT_ROLES,
  MAX_PENDING_PER_TENANT,
  type Registration,
  type RegistrationStatus,
  type Role,
  type TransitionAction,
} from './registration-model.js';

/** Hears each committed transition (the AMP side follows approvals and suspensions). */
export interface RegistrationFollower {
  registrationChanged(reg: Registration, action: TransitionAction): Promise<void>;
}

export class Registrations {
  constructor(
    /** Registrations are records; the AMP agents they bind to are read from the directory. */
    private readonly store: RecordsStore & Pick<DirectoryStore, 'getAgent' | 'findAgentByFingerprint'>,
    private readonly audit: AuditTrail,
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
    return registrationResource(
      r,
      this.issuerOf(r.tenant),
      this.roles.find((x) => x.id === r.role_id),
    );
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
    const v = validateRegistrationBody(body);
    return this.locked(tenant, () => this.requestLocked(tenant, agent, v, actor));
  }

  private async requestLocked(
    tenant: string,
    authenticated: AgentRecord,
    v: ReturnType<typeof validateRegistrationBody>,
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
    if (!live[0]) this.assertPendingRoom(tenant, now);
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
    return this.requestAnswer(reg, code, userCode);
  }

  /** §14: at most `maxPending` live pending registrations per tenant. */
  private assertPendingRoom(tenant: string, now: number): void {
    const live = (r: Registration) => r.status === 'pending' && (r.code_expires_at === null || r.code_expires_at > now);
    if (this.all(tenant).filter(live).length < this.maxPending) return;
    throw rateLimitedFor(
      PENDING_FULL_RETRY_AFTER_S,
      `This organisation has ${this.maxPending} pending registrations; approve or reject some first`,
    );
  }

  /** T1's answer: the resource's summary and the device-flow fields (§4.2). */
  private requestAnswer(reg: Registration, code: string, userCode: string): Record<string, unknown> {
    const tenant = reg.tenant;
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
    const { b, name, address, description, key } = validateRegistrationBody(body);
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
    if (!ALLOWED_FROM[action].includes(from)) {
      throw new AidError('invalid_transition', `Cannot ${action} a registration in status ${from}`);
    }
    const reason = typeof body.reason === 'string' ? body.reason.slice(0, 2000) : null;
    const previousRole = this.role(r.role_id);
    const roleId = body.role_id === undefined || body.role_id === null ? this.roles[0].id : Number(body.role_id);
    if (action === 'approve') this.role(roleId);
    const event = applyTransition(r, action, reason, roleId);
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
