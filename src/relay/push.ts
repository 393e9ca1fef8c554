// Push delivery (spec §17.4, §17.6): messages reach live sessions the instant they are routed, or
// from the committed queue when a session connects, resumes after backpressure, or skipped one.
//
// Delivery invariant, per session: `cursor` is the highest queue seq handed to the socket, and
// `gap` says a later message may exist that was not. A message is pushed live (right after its
// store write is issued, before the commit) only when the session has no gap and is under its
// soft buffer limit; otherwise it stays queued and `catchUp` sends it from the committed queue:
// after each commit for the agent, on drain, and at connect. Nothing leaves the queue on push.

import type { Config } from '../config/schema.js';
import type { QueueStore } from '../store/types.js';
import { Frame, messageFrame } from './frames.js';
import type { RelayObserver } from './observer.js';
import type { Receipts } from './receipts.js';
import type { AgentSession, Sessions } from './sessions.js';

const CATCH_UP_BATCH = 256;

export interface PushCounters {
  slowConsumerPauses: number;
  pushes: number;
}

export class Push {
  readonly counters: PushCounters = { slowConsumerPauses: 0, pushes: 0 };

  constructor(
    private readonly config: Config,
    private readonly queue: QueueStore,
    private readonly sessions: Sessions,
    private readonly receipts: Receipts,
    private readonly observer: RelayObserver,
  ) {}

  /** Register an authenticated session, send `connected`, kept receipts, then the backlog. */
  open(s: AgentSession): void {
    this.sessions.add(s);
    s.connectSeq = this.queue.lastSeq(s.agent.id);
    s.conn.send(
      new Frame({
        type: 'connected',
        data: {
          address: s.agent.address,
          pending_count: this.queue.pendingCount(s.agent.id, Date.now()),
          agent_id: s.agent.id,
          session_id: s.id,
          subprotocol: s.subprotocol,
          idle_timeout_seconds: this.config.wsIdleTimeout,
        },
      }),
    );
    this.receipts.flush(s);
    this.catchUp(s);
  }

  /**
   * Push a just-appended (not yet committed) message to every live session that is caught up.
   * True when at least one session accepted the bytes.
   */
  pushLive(agentId: string, seq: number, id: string, json: string): boolean {
    let delivered = 0;
    let frame: Frame | undefined;
    for (const s of this.sessions.of(agentId)) {
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
      delivered++;
    }
    // The delivery receipt, if owed, is sent by the router once the message is committed.
    if (delivered === 0) return false;
    this.counters.pushes++;
    this.observer.pushed(id, agentId, delivered);
    return true;
  }

  /** After a commit for the agent: sessions that skipped something catch up from the queue. */
  afterCommit(agentId: string): void {
    for (const s of this.sessions.of(agentId)) if (s.gap && !s.paused) this.catchUp(s);
  }

  /**
   * Cluster mode: messages for the agent were committed by some node (this one too): each of its
   * sessions here marks a gap and catches up from the queue's mirror.
   */
  wake(agentId: string): void {
    for (const s of this.sessions.of(agentId)) {
      s.gap = true;
      if (!s.paused) this.catchUp(s);
    }
  }

  /** Whether a live session of the agent has been handed the message at queue seq `seq`. */
  reached(agentId: string, seq: number | undefined): boolean {
    if (seq === undefined) return false;
    for (const s of this.sessions.of(agentId)) if (!s.closed && s.cursor >= seq) return true;
    return false;
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
    s.cursor = Math.max(s.cursor, this.queue.committedSeq(agentId));
    s.gap = this.queue.lastSeq(agentId) > s.cursor;
  }

  /** Committed entries after the cursor, until caught up; true when the buffer filled first. */
  private sendBacklog(s: AgentSession, agentId: string, now: number): boolean {
    for (;;) {
      const { entries, scannedTo, more } = this.queue.readFrom(agentId, s.cursor, CATCH_UP_BATCH, now);
      for (const e of entries) {
        if (s.conn.bufferedBytes() > this.config.wsSoftBuffer) return true;
        if (s.conn.send(messageFrame(e.json, e.seq <= s.connectSeq)) === 'dropped') return true;
        s.cursor = e.seq;
        this.counters.pushes++;
        this.observer.pushed(e.id, agentId, 1);
        if (e.receipt) this.receipts.handedOver(e.id, 'websocket');
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
    if (s.conn.bufferedBytes() > this.config.wsHardBuffer) return this.sessions.slowConsumer(s);
    if (s.conn.bufferedBytes() <= this.config.wsSoftBuffer) {
      s.paused = false;
      this.catchUp(s);
    }
  }
}
