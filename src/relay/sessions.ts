// Live WebSocket sessions (spec §17): who is online, closing sessions, and the periodic checks for
// idle sockets and slow consumers. In cluster mode an agent is online when it has a session here
// or on another node (`ClusterPresence`); the sessions themselves are this node's. The relay sees a socket only as a `Connection`; the WebSocket
// transport implements it.

import { CLOSE } from '../../proto/index.js';
import type { Config } from '../config/schema.js';
import type { AgentRecord } from '../store/types.js';
import type { Frame } from './frames.js';
import type { ClusterPresence } from './presence.js';

export type SendOutcome = 'sent' | 'dropped';

/** A socket as the relay sees it. */
export interface Connection {
  /** Queue a frame; frames queued in one turn are written together, in order. */
  send(frame: Frame): SendOutcome;
  /** Bytes queued or written but not yet accepted by the kernel. */
  bufferedBytes(): number;
  ping(): void;
  close(code: number, reason: string): void;
}

const PING_AFTER_MS = 30_000;

export class AgentSession {
  cursor = 0;
  gap = true;
  paused = false;
  pausedSince = 0;
  lastInbound = Date.now();
  lastPing = 0;
  closed = false;
  /** Queue position at authentication: messages up to here are replays. */
  connectSeq = 0;

  constructor(
    readonly id: string,
    readonly agent: AgentRecord,
    readonly conn: Connection,
    readonly subprotocol: string,
    /** SHA-256 of the API key that opened the session; undefined for signed sessions. */
    readonly keyHash: string | undefined,
    readonly openedAt: number = Date.now(),
  ) {}
}

const NONE: ReadonlySet<AgentSession> = new Set();

export class Sessions {
  private readonly byAgent = new Map<string, Set<AgentSession>>();
  /** Sessions closed as slow consumers (4501). */
  slowConsumerCloses = 0;
  /** Connections the transport failed over a text frame that was not UTF-8 (RFC 6455 §8.1). */
  invalidUtf8Closes = 0;

  constructor(
    private readonly config: Config,
    private readonly presence?: ClusterPresence,
  ) {}

  /** Add an authenticated session; over the per-agent cap the oldest is replaced (4009). */
  add(s: AgentSession): void {
    const id = s.agent.id;
    // Closing the last one forgets the agent's set: look it up again after each close.
    for (let set = this.byAgent.get(id); set && set.size >= this.config.wsMaxSessions; set = this.byAgent.get(id)) {
      this.close(set.values().next().value!, CLOSE.REPLACED, 'replaced');
    }
    let set = this.byAgent.get(id);
    if (!set) {
      this.byAgent.set(id, (set = new Set()));
      this.presence?.announce(id, true);
    }
    set.add(s);
  }

  /** The agent's live sessions (do not keep the set: it changes as sessions come and go). */
  of(agentId: string): ReadonlySet<AgentSession> {
    return this.byAgent.get(agentId) ?? NONE;
  }

  /** Forget a session whose socket closed. */
  remove(s: AgentSession): void {
    s.closed = true;
    const set = this.byAgent.get(s.agent.id);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) {
      this.byAgent.delete(s.agent.id);
      this.presence?.announce(s.agent.id, false);
    }
  }

  close(s: AgentSession, code: number, reason: string): void {
    if (s.closed) return;
    this.remove(s);
    s.conn.close(code, reason);
  }

  slowConsumer(s: AgentSession): void {
    this.slowConsumerCloses++;
    this.close(s, CLOSE.SLOW_CONSUMER, 'slow_consumer');
  }

  /** A session here, or (cluster mode) on another node. */
  isOnline(agentId: string): boolean {
    return this.byAgent.has(agentId) || (this.presence?.onlineElsewhere(agentId) ?? false);
  }

  /** Agents with a session here or (cluster mode) on another node. */
  onlineAgents(): number {
    const elsewhere = this.presence?.countElsewhere((id) => this.byAgent.has(id)) ?? 0;
    return this.byAgent.size + elsewhere;
  }

  /** Agents with a session on this node. */
  localOnlineAgents(): number {
    return this.byAgent.size;
  }

  sessionCount(): number {
    let n = 0;
    for (const set of this.byAgent.values()) n += set.size;
    return n;
  }

  /** Send a control frame (receipts) to every session of the agent, paused or not. */
  control(agentId: string, frame: Frame): boolean {
    let sent = false;
    for (const s of this.of(agentId)) if (s.conn.send(frame) !== 'dropped') sent = true;
    return sent;
  }

  /** Close every session of an agent (revocation, suspension, deregistration). */
  closeAgent(agentId: string, code: number, reason: string, filter: (s: AgentSession) => boolean = () => true): void {
    for (const s of [...this.of(agentId)]) if (filter(s)) this.close(s, code, reason);
  }

  closeAll(code: number, reason: string): void {
    for (const set of [...this.byAgent.values()]) for (const s of [...set]) this.close(s, code, reason);
  }

  /** Periodic checks: slow consumers, idle sockets, protocol pings. Cheap per session. */
  sweep(now: number = Date.now()): void {
    const idleMs = this.config.wsIdleTimeout * 1000;
    const slowMs = this.config.wsSlowConsumerSeconds * 1000;
    for (const set of [...this.byAgent.values()]) {
      for (const s of [...set]) {
        if (s.conn.bufferedBytes() > this.config.wsHardBuffer || (s.paused && now - s.pausedSince > slowMs)) {
          this.slowConsumer(s);
        } else if (now - s.lastInbound > idleMs) {
          this.close(s, CLOSE.IDLE_TIMEOUT, 'idle_timeout');
        } else if (now - s.lastInbound > PING_AFTER_MS && now - s.lastPing > PING_AFTER_MS) {
          s.lastPing = now;
          s.conn.ping();
        }
      }
    }
  }
}
