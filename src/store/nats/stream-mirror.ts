// One stream read into memory and kept current: a Follower (follow.ts: an ordered consumer over
// the stream, in stream order, recreated from the last applied seq whenever it stops delivering),
// each message handed to `apply`. Writers wait on `reached(seq)`: their write is then in the mirror
// (read-your-writes on the node that wrote). `start` resolves once everything the stream held
// when it was called has been applied.

import type { JsMsg } from '@nats-io/jetstream';
import { Follower } from './follow.js';
import type { NatsParts } from './parts.js';

export interface StreamMirrorOptions {
  stream: string;
  /** Subject filter ('>' = the whole stream). */
  filter: string;
  /** Only the last message of each subject at start (KV buckets), else every message. */
  lastPerSubject: boolean;
  apply(m: JsMsg): void;
}

/** A write's wait this long tells the follower it is behind. */
const LAGGING_MS = 3000;
/** The longest a write waits while the follower recreates its consumer. */
const RESYNC_WAIT_MS = 20_000;
/** Polls the stream's state at most this often while the first load catches up. */
const CATCH_UP_RECHECK_MS = 1000;

interface Waiter {
  seq: number;
  done: (reached: boolean) => void;
  timer?: NodeJS.Timeout;
}

export class StreamMirror {
  private applied = 0;
  private waiters: Waiter[] = [];
  private follower?: Follower;
  private closed = false;

  constructor(
    private readonly parts: NatsParts,
    private readonly opts: StreamMirrorOptions,
  ) {}

  /** The highest stream sequence applied. */
  get seq(): number {
    return this.applied;
  }

  async start(): Promise<void> {
    const { js, jsm } = this.parts;
    const { stream, filter, lastPerSubject } = this.opts;
    this.follower = new Follower(js, this.parts.nc, {
      stream,
      filter,
      lastPerSubject,
      onMessage: (m) => this.onMessage(m),
      onWarn: this.parts.warn,
    });
    // Caught up once the stream's last message (as of now) is applied. A last message that went
    // meanwhile (max age) is never delivered: the loop then reads the state again.
    for (;;) {
      if (this.closed) return;
      const { state } = await jsm.streams.info(stream);
      if (state.messages === 0 || this.applied >= state.last_seq) return;
      if (await this.reached(state.last_seq, CATCH_UP_RECHECK_MS)) return;
    }
  }

  /**
   * Resolves true once `seq` is applied, false after `timeoutMs` or at close. A wait that lasts
   * over LAGGING_MS tells the follower it is behind (it recreates its consumer); while the
   * consumer is being recreated the wait goes on, up to RESYNC_WAIT_MS in all.
   */
  reached(seq: number, timeoutMs: number): Promise<boolean> {
    if (this.applied >= seq) return Promise.resolve(true);
    if (this.closed) return Promise.resolve(false);
    const since = Date.now();
    return new Promise((resolve) => {
      const w: Waiter = { seq, done: resolve };
      const check = (): void => {
        const waited = Date.now() - since;
        const resyncing = this.follower?.resyncing === true;
        if (waited >= timeoutMs && !(resyncing && waited < Math.max(timeoutMs, RESYNC_WAIT_MS))) {
          this.waiters = this.waiters.filter((x) => x !== w);
          resolve(false);
          return;
        }
        if (waited >= LAGGING_MS && !resyncing) this.follower?.resync(`a write waited ${waited} ms for seq ${seq}`);
        w.timer = setTimeout(check, Math.min(LAGGING_MS, Math.max(50, timeoutMs - waited)));
      };
      w.timer = setTimeout(check, Math.min(LAGGING_MS, timeoutMs));
      this.waiters.push(w);
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.follower?.stop();
    for (const w of this.waiters) {
      clearTimeout(w.timer);
      w.done(false);
    }
    this.waiters = [];
  }

  private onMessage(m: JsMsg): void {
    if (this.closed) return;
    try {
      this.opts.apply(m);
    } catch {
      // A value this version cannot read is skipped: the mirror must keep going.
    }
    if (m.seq > this.applied) this.applied = m.seq;
    if (this.waiters.length === 0) return;
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (w.seq <= this.applied) {
        clearTimeout(w.timer);
        w.done(true);
      } else still.push(w);
    }
    this.waiters = still;
  }
}
