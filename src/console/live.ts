// The console overview's live feed (GET /v1/console/live, Server-Sent Events): one hub per server
// keeps the open streams and, while at least one is open, one LIVE_TICK_MS timer that computes the
// snapshot once per tick and writes the same text to every stream. No stream open: no timer.
//
// A stream opened by a console session ends at the first tick after that session is gone (signed
// out or expired): the figures never outlive the sign-in that asked for them.
//
// A new stream gets a snapshot at once. A stream whose client has not taken the previous snapshot
// skips this one (the transport drops the write, stream-reply.ts): snapshots replace each other, so
// a slow reader only sees fewer of them.

import { isoTime } from '../../proto/index.js';
import type { LiveSnapshot, OutboundQueue } from './live-snapshot.js';

export type { LiveSnapshot, OutboundQueue } from './live-snapshot.js';

export const LIVE_TICK_MS = 1000;

/** The part of a transport stream the hub uses (transport/http/stream-reply.ts StreamSink). */
export interface LiveSink {
  write(chunk: string): boolean;
  close(): void;
  onClose(cb: () => void): void;
}

/** Where the figures come from (src/console/live-sources.ts builds this from the server's parts). */
export interface LiveSources {
  sessionsOnline(): number;
  agentsOnline(): number;
  routedTotal(): number;
  pushedTotal(): number;
  queue(now: number): { depth: number; oldestAgeS: number | null };
  commitMs(now: number): { p50: number; p99: number } | null;
  health(): { health: string; ready: boolean };
  outbound(now: number): OutboundQueue[];
}

/** Rates are per second over the time since the previous snapshot, to two decimals. */
const rate = (delta: number, ms: number) => (ms <= 0 ? 0 : Math.round((delta / ms) * 100_000) / 100);

export class LiveHub {
  /** Each open stream, with whether the session that opened it still lives (none: a bearer token's). */
  private readonly sinks = new Map<LiveSink, (() => boolean) | undefined>();
  private timer: NodeJS.Timeout | undefined;
  private prev: { at: number; routed: number; pushed: number } | undefined;
  private closed = false;

  constructor(
    private readonly sources: LiveSources,
    /** Told when computing a snapshot failed (the stream goes on; the next tick tries again). */
    private readonly onError: (err: unknown) => void = () => {},
  ) {}

  /** Streams open now. */
  get size(): number {
    return this.sinks.size;
  }

  /**
   * Start feeding `sink`: a snapshot now, then one per tick until it closes, or until `alive()` says
   * the console session that opened it is gone.
   */
  add(sink: LiveSink, alive?: () => boolean): void {
    if (this.closed) return sink.close();
    this.sinks.set(sink, alive);
    sink.onClose(() => this.remove(sink));
    const text = this.frame();
    if (text !== undefined) sink.write(text);
    if (!this.timer && this.sinks.has(sink)) {
      this.timer = setInterval(() => this.tick(), LIVE_TICK_MS);
      this.timer.unref();
    }
  }

  /** Shutdown: end every stream and stop the timer; later streams are closed at once. */
  close(): void {
    this.closed = true;
    for (const s of [...this.sinks.keys()]) s.close();
    this.stop();
  }

  /** One snapshot, as the figures are now (rates since the previous one). */
  snapshot(now = Date.now()): LiveSnapshot {
    const s = this.sources;
    const routed = s.routedTotal();
    const pushed = s.pushedTotal();
    const prev = this.prev;
    const elapsed = prev ? now - prev.at : 0;
    this.prev = { at: now, routed, pushed };
    const queue = s.queue(now);
    const { health, ready } = s.health();
    return {
      at: isoTime(now),
      sessions_online: s.sessionsOnline(),
      agents_online: s.agentsOnline(),
      routed_total: routed,
      pushed_total: pushed,
      routed_per_s: prev ? rate(routed - prev.routed, elapsed) : 0,
      pushed_per_s: prev ? rate(pushed - prev.pushed, elapsed) : 0,
      queue_depth: queue.depth,
      oldest_message_age_s: queue.oldestAgeS,
      commit_ms: s.commitMs(now),
      health,
      ready,
      outbound: s.outbound(now),
    };
  }

  private tick(): void {
    const text = this.frame();
    if (text === undefined) return;
    for (const [sink, alive] of [...this.sinks]) {
      if (alive && !alive()) sink.close();
      else sink.write(text);
    }
  }

  /** The SSE event of a fresh snapshot; undefined when it could not be computed. */
  private frame(): string | undefined {
    try {
      return `event: snapshot\ndata: ${JSON.stringify(this.snapshot())}\n\n`;
    } catch (err) {
      this.onError(err);
      return undefined;
    }
  }

  private remove(sink: LiveSink): void {
    this.sinks.delete(sink);
    if (this.sinks.size === 0) this.stop();
  }

  private stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.prev = undefined;
  }
}
