// Operators' suspension of an agent (spec §20): POST agents/{agent_id}/suspend and /unsuspend, with
// an `amp:admin` JWT of the agent's tenant (checked by the route's guard). A suspended agent cannot
// route, list or ack (403 agent_suspended) or connect (4003); senders to it get 403
// recipient_suspended; its queue is kept; its sessions close with 4003 `agent_suspended`. A
// suspension with a duration ends by itself: effectiveStatus() reads the expiry on every request
// (webhook items it held wait for its end: see webhooks.ts).
// Both answers are idempotent: asking again reports the state and changes nothing.

import { AmpError, CLOSE, invalidField, isoTime } from '../../proto/index.js';
import type { AgentRecord, DirectoryStore } from '../store/types.js';
import type { AdminActions, AdminActionType } from './admin-actions.js';
import type { Agents } from './agents.js';
import type { RelayContext } from './context.js';
import type { Sessions } from './sessions.js';

const HOUR_MS = 3600 * 1000;
/** Ten years: longer is "until lifted", which is what leaving `duration_hours` out says. */
const MAX_DURATION_HOURS = 10 * 365 * 24;
const MAX_REASON_CHARS = 200;
const DEFAULT_REASON = 'admin_action';

/** Who must hear that an agent is active again (the webhook adapter: what a suspension held is tried). */
export interface ReactivationListener {
  reactivated(agentId: string): Promise<void>;
}

/** The agent's status now, with an operator's suspension that has expired counted as lifted. */
export function effectiveStatus(a: AgentRecord, nowMs: number): AgentRecord['status'] {
  if (a.status !== 'suspended') return a.status;
  const s = a.suspension;
  return s && s.until !== null && s.until <= nowMs ? s.previous : 'suspended';
}

export interface SuspendRequest {
  reason: string;
  durationHours: number | null;
}

/** `{"reason"?, "duration_hours"?}`; both optional (an empty body suspends until lifted). */
export function decodeSuspendBody(body: Record<string, unknown>): SuspendRequest {
  const { reason, duration_hours: hours } = body;
  if (reason !== undefined && (typeof reason !== 'string' || reason.length < 1 || reason.length > MAX_REASON_CHARS))
    throw invalidField('reason', `reason must be a string of 1-${MAX_REASON_CHARS} characters`);
  if (
    hours !== undefined &&
    hours !== null &&
    (typeof hours !== 'number' || !Number.isFinite(hours) || hours <= 0 || hours > MAX_DURATION_HOURS)
  )
    throw invalidField(
      'duration_hours',
      `duration_hours must be a number of hours, above 0, at most ${MAX_DURATION_HOURS}`,
    );
  return { reason: (reason as string | undefined) ?? DEFAULT_REASON, durationHours: (hours as number | null) ?? null };
}

/** Who asked, for the audit line (never the token): the admin's e-mail, tenant and the request's IP. */
export interface AdminCaller {
  email: string;
  tenant: string;
  ip?: string;
}

export class Suspensions {
  constructor(
    private readonly ctx: RelayContext,
    private readonly agents: Agents,
    private readonly store: DirectoryStore,
    private readonly sessions: Sessions,
    /** §18: told when the agent is active again (what its suspension held is tried again). */
    private readonly webhooks?: ReactivationListener,
    /** Where each suspension and lift is recorded for the audit log (admin e-mail, IP, agent, reason). */
    private readonly actions?: AdminActions,
  ) {}

  async suspend(agentId: string, admin: AdminCaller, req: SuspendRequest): Promise<Record<string, unknown>> {
    this.target(agentId, admin);
    return this.agents.serialized(agentId, async () => {
      const a = this.agents.current(agentId);
      const now = Date.now();
      // In force already: nothing to do. An agent suspended by its AID registration gets the
      // operator's suspension on top (it returns to 'suspended' when the operator lifts it).
      if (a.suspension && effectiveStatus(a, now) === 'suspended') return suspendedBody(a);
      const previous = a.suspension ? a.suspension.previous : a.status;
      const until = req.durationHours === null ? null : now + Math.round(req.durationHours * HOUR_MS);
      const updated: AgentRecord = {
        ...a,
        status: 'suspended',
        suspension: { reason: req.reason, at: now, until, by: admin.email, previous },
      };
      await this.store.putAgent(updated);
      this.sessions.closeAgent(a.id, CLOSE.AUTH_FAILED, 'agent_suspended');
      const expires_at = until === null ? null : isoTime(until);
      this.ctx.logger.warn(
        {
          event: 'agent_suspended',
          agent: a.id,
          address: a.address,
          admin: admin.email,
          reason: req.reason,
          expires_at,
        },
        'agent suspended by an operator',
      );
      await this.record('agent_suspended', a, admin, req.reason);
      return suspendedBody(updated);
    });
  }

  async unsuspend(agentId: string, admin: AdminCaller): Promise<Record<string, unknown>> {
    this.target(agentId, admin);
    return this.agents.serialized(agentId, async () => {
      const a = this.agents.current(agentId);
      const now = Date.now();
      const body = { agent_id: a.id, suspended: false, unsuspended_at: isoTime(now) };
      // Only an operator's suspension is the operator's to lift (an AID one is lifted through AID).
      if (a.status !== 'suspended' || !a.suspension) return body;
      const lifting = effectiveStatus(a, now) === 'suspended';
      const updated: AgentRecord = { ...a, status: a.suspension?.previous ?? 'active' };
      delete updated.suspension;
      await this.store.putAgent(updated);
      if (updated.status === 'active') await this.webhooks?.reactivated(a.id);
      // An expired suspension is only tidied up: it had already ended, no audit line.
      if (lifting) {
        this.ctx.logger.warn(
          { event: 'agent_unsuspended', agent: a.id, address: a.address, admin: admin.email },
          'agent unsuspended by an operator',
        );
        await this.record('agent_unsuspended', a, admin, null);
      }
      return body;
    });
  }

  private async record(type: AdminActionType, a: AgentRecord, admin: AdminCaller, reason: string | null) {
    await this.actions?.record({
      type,
      tenant: a.tenant,
      actorEmail: admin.email,
      ip: admin.ip ?? '',
      target: a.address,
      targetId: a.id,
      reason,
    });
  }

  /** The agent, if it lives in the admin's tenant; any other answers 404 (nothing leaks across tenants). */
  private target(agentId: string, admin: AdminCaller): AgentRecord {
    const a = this.agents.find(agentId);
    if (!a || a.tenant !== admin.tenant) throw new AmpError('not_found', 'No such agent', { field: 'agent_id' });
    return a;
  }
}

function suspendedBody(a: AgentRecord): Record<string, unknown> {
  const s = a.suspension;
  return {
    agent_id: a.id,
    suspended: true,
    suspended_at: s ? isoTime(s.at) : null,
    expires_at: s?.until ? isoTime(s.until) : null,
  };
}
