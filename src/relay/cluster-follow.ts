// Cluster mode (AMP_STORE=nats): what other nodes did reaches this node's sessions. Messages
// queued for an agent by any node wake its sessions here (they catch up from the queue's mirror);
// an agent suspended, pending, deregistered or given a new key on any node loses its sessions
// here the way the single-node paths close them (4003). Receipts kept in the shared outbox for an
// agent online here (made on a node where it had no session) are handed to its sessions here.

import { CLOSE } from '../../proto/index.js';
import type { AgentRecord, DirectoryStore } from '../store/types.js';
import type { Push } from './push.js';
import type { Receipts } from './receipts.js';
import type { AgentSession, Sessions } from './sessions.js';

/** The events the cluster store gives (NatsStore). */
export interface ClusterEvents {
  onQueued(cb: (agentId: string) => void): () => void;
  onAgentChanged(cb: (agentId: string, agent: AgentRecord | undefined) => void): () => void;
  onApiKeyChanged(cb: (agentId: string) => void): () => void;
  onOutbox(cb: (agentId: string) => void): () => void;
}

/** Wires the events to push and sessions; returns what unwires them. */
export function followCluster(
  events: ClusterEvents,
  relay: { push: Push; sessions: Sessions; receipts: Receipts },
  directory: Pick<DirectoryStore, 'getApiKey' | 'getAgent'>,
): () => void {
  const { push, sessions, receipts } = relay;
  const offQueued = events.onQueued((agentId) => push.wake(agentId));
  const offOutbox = events.onOutbox((agentId) => receipts.keptFor(agentId));
  const offAgent = events.onAgentChanged((agentId, agent) => {
    if (sessions.of(agentId).size === 0) return;
    const why = closeReason(agent);
    if (why) return sessions.closeAgent(agentId, CLOSE.AUTH_FAILED, why);
    const now = agent!;
    // Sessions proven by a key the agent no longer has; API-key sessions whose key was revoked.
    sessions.closeAgent(agentId, CLOSE.AUTH_FAILED, 'key_rotated', (s) => provenByOldKey(s, now));
    sessions.closeAgent(agentId, CLOSE.AUTH_FAILED, 'key_revoked', (s) => keyRevoked(s, now, directory));
  });
  const offKey = events.onApiKeyChanged((agentId) => {
    if (sessions.of(agentId).size === 0) return;
    const agent = directory.getAgent(agentId);
    if (agent) sessions.closeAgent(agentId, CLOSE.AUTH_FAILED, 'key_revoked', (s) => keyRevoked(s, agent, directory));
  });
  return () => {
    offQueued();
    offOutbox();
    offAgent();
    offKey();
  };
}

function closeReason(agent: AgentRecord | undefined): string | undefined {
  if (!agent) return 'agent_deregistered';
  if (agent.status === 'suspended') return 'agent_suspended';
  if (agent.status === 'pending') return 'agent_pending';
  return undefined;
}

function provenByOldKey(s: AgentSession, agent: AgentRecord): boolean {
  return s.keyHash === undefined && s.agent.fingerprint !== agent.fingerprint;
}

function keyRevoked(s: AgentSession, agent: AgentRecord, directory: Pick<DirectoryStore, 'getApiKey'>): boolean {
  if (s.keyHash === undefined) return false;
  if (!agent.key_hashes.includes(s.keyHash)) return true;
  const rec = directory.getApiKey(s.keyHash);
  return rec !== undefined && rec.revoked_at !== null;
}
