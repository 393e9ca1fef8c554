// Live sessions per agent. The relay core sees a socket only as a `Session`; the WebSocket
// transport implements it. Pushing never replaces the queue: a pushed message stays queued
// until it is acked.

import type { QueuedMessage } from '../../proto/index.js';

export type SendOutcome = 'sent' | 'buffered' | 'dropped';

export interface Session {
  readonly id: string;
  readonly agentId: string;
  /** Push one queued message; 'dropped' means the session is over its backpressure limit. */
  pushMessage(msg: QueuedMessage, replay: boolean): SendOutcome;
  close(code: number, reason: string): void;
}

export class Presence {
  private readonly byAgent = new Map<string, Set<Session>>();

  add(session: Session): void {
    let set = this.byAgent.get(session.agentId);
    if (!set) this.byAgent.set(session.agentId, (set = new Set()));
    set.add(session);
  }

  remove(session: Session): void {
    const set = this.byAgent.get(session.agentId);
    if (!set) return;
    set.delete(session);
    if (set.size === 0) this.byAgent.delete(session.agentId);
  }

  isOnline(agentId: string): boolean {
    return this.byAgent.has(agentId);
  }

  /** Agents with at least one authenticated session. */
  onlineAgents(): number {
    return this.byAgent.size;
  }

  sessions(agentId: string): ReadonlySet<Session> | undefined {
    return this.byAgent.get(agentId);
  }

  /** Push to every live session of the agent; true when at least one accepted the bytes. */
  push(agentId: string, msg: QueuedMessage): boolean {
    const set = this.byAgent.get(agentId);
    if (!set) return false;
    let delivered = false;
    for (const s of set) if (s.pushMessage(msg, false) !== 'dropped') delivered = true;
    return delivered;
  }

  closeAll(code: number, reason: string): void {
    for (const set of this.byAgent.values()) for (const s of [...set]) s.close(code, reason);
  }
}
