// Live sessions and push delivery (spec §17.4, §17.6). The relay sees a socket only as a
// `Connection`; the WebSocket transport implements it.
//
// Delivery invariant, per session: `cursor` is the highest queue seq handed to the socket, and
// `gap` says a later message may exist that was not. A message is pushed live (right after its
// store write is issued, before the commit) only when the session has no gap and is under its
// soft buffer limit; otherwise it stays queued and `catchUp` sends it from the committed queue:
// after each commit for the agent, on drain, and at connect. Nothing leaves the queue on push.

import { CLOSE, isoTime } from '../../proto/index.js';
import type { Config } from '../config/schema.js';
import type { AgentRecord, Store } from '../store/types.js';
import { Frame, messageFrame } from './frames.js';

export type SendOutcome = 'sent' | 'dropped';

export interface Connection {
  /** Queue a frame; frames queued in one turn are written together, in order. */
  send(frame: Frame): SendOutcome;
  /** Bytes queued or written but not yet accepted by the kernel. */
  bufferedBytes(): number;
  ping(): void;
  close(code: number, reason: string): void;
}

const CATCH_UP_BATCH = 256;
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

export interface PresenceCounters {
  slowConsumerPauses: number;
  slowConsumerCloses: number;
  pushes: number;
}

export type HandOver = (messageId: string, method: 'websocket') => void;

export class Presence {
  private readonly byAgent = new Map<string, Set<AgentSession>>();
  readonly counters: PresenceCounters = { slowConsumerPauses: 0, slowConsumerCloses: 0, pushes: 0 };
  /** Called once per message the first time it reaches a socket (delivery receipts). */
  onHandOver: HandOver = () => {};
  /** Called after `connected` is sent (flushes receipts kept while the agent was offline). */
  onConnected: (s: AgentSession) => void = () => {};

  constructor(
    private readonly store: Store,
    private readonly config: Config,
  ) {}

  /** Register an authenticated session, send `connected`, then replay the backlog. */
  open(s: AgentSession): void {
    let set = this.byAgent.get(s.agent.id);
    if (!set) this.byAgent.set(s.agent.id, (set = new Set()));
    while (set.size >= this.config.wsMaxSessions) {
      const oldest = set.values().next().value!;
      this.close(oldest, CLOSE.REPLACED, 'replaced');
    }
    set.add(s);
    s.connectSeq = this.store.lastSeq(s.agent.id);
    const now = Date.now();
    s.conn.send(
      new Frame({
        type: 'connected',
        data: {
          address: s.agent.address,
          pending_count: this.store.pendingCount(s.agent.id, now),
          agent_id: s.agent.id,
          session_id: s.id,
          subprotocol: s.subprotocol,
          idle_timeout_seconds: this.config.wsIdleTimeout,
        },
      }),
    );
    this.onConnected(s);
    this.catchUp(s);
  }

  /** Forget a session whose socket closed. */
  remove(s: AgentSession): void {
    s.closed = true;
    const set = this.byAgent.get(s.agent.id);
    if (!set) return;
    set.delete(s);
    if (set.size === 0) this.byAgent.delete(s.agent.id);
  }

  close(s: AgentSession, code: number, reason: string): void {
    if (s.closed) return;
    this.remove(s);
    s.conn.close(code, reason);
  }

  isOnline(agentId: string): boolean {
    return this.byAgent.has(agentId);
  }

  onlineAgents(): number {
    return this.byAgent.size;
  }

  sessionCount(): number {
    let n = 0;
    for (const set of this.byAgent.values()) n += set.size;
    return n;
  }

  /**
   * Push a just-appended (not yet committed) message to every live session that is caught up.
   * True when at least one session accepted the bytes.
   */
  pushLive(agentId: string, seq: number, json: string): boolean {
    const set = this.byAgent.get(agentId);
    if (!set) return false;
    let delivered = false;
    let frame: Frame | undefined;
    for (const s of set) {
      if (s.gap || s.paused || seq <= s.cursor) {
        s.gap = true;
        continue;
      }
      if (s.conn.bufferedBytes() > this.config.wsSoftBuffer) {
        this.pause(s);
        continue;
      }
      frame ??= messageFrame(json, false);
      if (s.conn.send(frame) === 'dropped') {
        this.pause(s);
        continue;
      }
      s.cursor = seq;
      delivered = true;
    }
    // The delivery receipt, if owed, is sent by the router once the message is committed.
    if (delivered) this.counters.pushes++;
    return delivered;
  }

  /** After a commit for the agent: sessions that skipped something catch up from the queue. */
  afterCommit(agentId: string): void {
    const set = this.byAgent.get(agentId);
    if (!set) return;
    for (const s of set) if (s.gap && !s.paused) this.catchUp(s);
  }

  /** Send committed messages after the cursor until caught up or over the soft buffer limit. */
  catchUp(s: AgentSession): void {
    if (s.closed || s.paused) return;
    const agentId = s.agent.id;
    const full = this.sendBacklog(s, agentId, Date.now());
    if (full) {
      this.pause(s);
      return;
    }
    // Everything committed has been seen (acked or expired entries are simply absent).
    s.cursor = Math.max(s.cursor, this.store.committedSeq(agentId));
    s.gap = this.store.lastSeq(agentId) > s.cursor;
  }

  /** Committed entries after the cursor, until caught up; true when the buffer filled first. */
  private sendBacklog(s: AgentSession, agentId: string, now: number): boolean {
    for (;;) {
      const { entries, scannedTo, more } = this.store.readFrom(agentId, s.cursor, CATCH_UP_BATCH, now);
      for (const e of entries) {
        if (s.conn.bufferedBytes() > this.config.wsSoftBuffer) return true;
        if (s.conn.send(messageFrame(e.json, e.seq <= s.connectSeq)) === 'dropped') return true;
        s.cursor = e.seq;
        this.counters.pushes++;
        if (e.receipt) this.onHandOver(e.id, 'websocket');
      }
      // Expired entries at the end of the batch are skipped too.
      s.cursor = Math.max(s.cursor, scannedTo);
      if (!more) return false;
    }
  }

  private pause(s: AgentSession): void {
    s.gap = true;
    if (s.paused) return;
    s.paused = true;
    s.pausedSince = Date.now();
    this.counters.slowConsumerPauses++;
  }

  /** The socket's buffer drained: resume pushes below the soft limit. */
  onDrain(s: AgentSession): void {
    if (s.closed || !s.paused) return;
    if (s.conn.bufferedBytes() > this.config.wsHardBuffer) return this.slowConsumer(s);
    if (s.conn.bufferedBytes() <= this.config.wsSoftBuffer) {
      s.paused = false;
      this.catchUp(s);
    }
  }

  private slowConsumer(s: AgentSession): void {
    this.counters.slowConsumerCloses++;
    this.close(s, CLOSE.SLOW_CONSUMER, 'slow_consumer');
  }

  /** Send a control frame (receipts) to every session of the agent, paused or not. */
  control(agentId: string, frame: Frame): boolean {
    const set = this.byAgent.get(agentId);
    if (!set) return false;
    let sent = false;
    for (const s of set) if (s.conn.send(frame) !== 'dropped') sent = true;
    return sent;
  }

  /** Close every session of an agent (revocation, suspension, deregistration). */
  closeAgent(agentId: string, code: number, reason: string, filter: (s: AgentSession) => boolean = () => true): void {
    const set = this.byAgent.get(agentId);
    if (!set) return;
    for (const s of [...set]) if (filter(s)) this.close(s, code, reason);
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

  /** The `pong` answer to a client `ping` frame. */
  static pong(request_id?: string): Frame {
    const f: Record<string, unknown> = { type: 'pong', timestamp: isoTime(Date.now()) };
    if (request_id !== undefined) f.request_id = request_id;
    return new Frame(f);
  }
}
