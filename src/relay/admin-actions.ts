// Operators' AMP actions on agents (suspend, unsuspend, deregister), kept as records so the audit
// log can show who did what from where: the admin's e-mail and IP, the agent, the reason. Keys are
// `${tenant}/${ms padded to 15}/${uuid}`: a tenant's actions read back in time order.

import { isoTime } from '../../proto/index.js';
import { randomUUID } from '../crypto/random.js';
import type { RecordsStore } from '../store/types.js';

export type AdminActionType = 'agent_suspended' | 'agent_unsuspended' | 'agent_deregistered';

export interface AdminActionRecord {
  id: string;
  /** ISO time of the action. */
  at: string;
  type: AdminActionType;
  actor_email: string;
  ip: string;
  /** The agent's address. */
  target: string;
  target_id: string;
  reason: string | null;
  tenant: string;
}

export interface AdminActionInput {
  type: AdminActionType;
  tenant: string;
  actorEmail: string;
  ip: string;
  target: string;
  targetId: string;
  reason?: string | null;
}

export class AdminActions {
  /** Keys stay unique and ordered even for two actions in one millisecond. */
  private lastMs = 0;

  constructor(private readonly records: Pick<RecordsStore, 'putRecord' | 'recordsWithPrefix'>) {}

  async record(a: AdminActionInput): Promise<AdminActionRecord> {
    const ms = Math.max(Date.now(), this.lastMs + 1);
    this.lastMs = ms;
    const rec: AdminActionRecord = {
      id: randomUUID(),
      at: isoTime(ms),
      type: a.type,
      actor_email: a.actorEmail,
      ip: a.ip,
      target: a.target,
      target_id: a.targetId,
      reason: a.reason ?? null,
      tenant: a.tenant,
    };
    await this.records.putRecord('admin_actions', `${a.tenant}/${String(ms).padStart(15, '0')}/${rec.id}`, rec);
    return rec;
  }

  /** The tenant's actions, oldest first. */
  list(tenant: string): AdminActionRecord[] {
    return this.records.recordsWithPrefix<AdminActionRecord>('admin_actions', `${tenant}/`);
  }
}
