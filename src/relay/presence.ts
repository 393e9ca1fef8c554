// Presence beyond this node (cluster mode): the relay tells it when an agent's first session on
// this node opens and its last one closes, and asks it whether another node holds a session. The
// NATS store implements it (src/store/nats/presence.ts); one node alone (LMDB) has none.

export interface ClusterPresence {
  /** This node's first session of the agent opened (true) or its last one closed (false). Cheap. */
  announce(agentId: string, online: boolean): void;
  /** Whether another node has a live session of the agent. */
  onlineElsewhere(agentId: string): boolean;
  /** Agents online on some other node, leaving out those `skip` says (online here: counted already). */
  countElsewhere(skip: (agentId: string) => boolean): number;
}
