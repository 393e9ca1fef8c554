// How an agent's AMP status follows its Agent Identity registration (agent-identity §13 and the
// product issue): an approval or reactivation lets a pending (or AID-suspended) agent route again;
// a suspension stops its messaging and closes its sockets. Deleting a registration leaves the
// agent as it is (a suspended one stays so until a new approval).

import type { Logger } from 'pino';
import { CLOSE } from '../../proto/index.js';
import type { AgentRecord, DirectoryStore } from '../store/types.js';
import type { Agents } from './agents.js';
import type { Sessions } from './sessions.js';
import { effectiveStatus, type ReactivationListener } from './suspension.js';

/** The AID transitions the AMP side hears of. */
export type RegistrationAction = 'approve' | 'reject' | 'suspend' | 'reactivate' | 'delete';

/** The AMP status an agent takes after `action` on its registration. */
export function followingStatus(status: AgentRecord['status'], action: RegistrationAction): AgentRecord['status'] {
  const lifts = (action === 'approve' || action === 'reactivate') && (status === 'pending' || status === 'suspended');
  if (lifts) return 'active';
  return action === 'suspend' ? 'suspended' : status;
}

export class IdentityLink {
  constructor(
    private readonly agents: Agents,
    private readonly directory: DirectoryStore,
    private readonly sessions: Sessions,
    private readonly logger: Logger,
    /** §18: told when the agent is active again (what its suspension held is tried again). */
    private readonly webhooks?: ReactivationListener,
  ) {}

  /** After a committed registration transition: the bound AMP agent follows. */
  async registrationChanged(reg: { amp_agent_id: string | null }, action: RegistrationAction): Promise<void> {
    const agentId = reg.amp_agent_id;
    if (!agentId || !this.directory.getAgent(agentId)) return;
    await this.agents.serialized(agentId, async () => {
      const a = this.directory.getAgent(agentId);
      if (!a) return; // deregistered meanwhile: nothing to follow
      if (a.suspension) return this.followUnderOperator(a, action);
      const next = followingStatus(a.status, action);
      if (next === a.status) return;
      await this.directory.putAgent({ ...a, status: next });
      if (next === 'suspended') this.sessions.closeAgent(a.id, CLOSE.AUTH_FAILED, 'agent_suspended');
      if (next === 'active') await this.webhooks?.reactivated(a.id);
      const log = { event: 'amp_agent_status', agent: a.id, status: next, cause: `aid_${action}` };
      this.logger.info(log, 'agent status follows its identity registration');
    });
  }

  /**
   * An operator's suspension (§20) is on record: it ends only by an unsuspend or its expiry, so
   * AID changes decide what the agent returns to then (`previous`). An expired one is over: the
   * agent takes the status AID gives it now.
   */
  private async followUnderOperator(a: AgentRecord, action: RegistrationAction): Promise<void> {
    const s = a.suspension!;
    const after = followingStatus(s.previous, action);
    if (effectiveStatus(a, Date.now()) === 'suspended') {
      if (after !== s.previous) await this.directory.putAgent({ ...a, suspension: { ...s, previous: after } });
      return;
    }
    const updated: AgentRecord = { ...a, status: after };
    delete updated.suspension;
    await this.directory.putAgent(updated);
    if (after === 'suspended') this.sessions.closeAgent(a.id, CLOSE.AUTH_FAILED, 'agent_suspended');
    if (after === 'active') await this.webhooks?.reactivated(a.id);
    const log = { event: 'amp_agent_status', agent: a.id, status: after, cause: `aid_${action}` };
    this.logger.info(log, 'agent status follows its identity registration');
  }
}
