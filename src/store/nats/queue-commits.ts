// An append is committed on this node once its publish was acknowledged AND the mirror applied
// its stream seq. The mirror follows the stream in order, so an append waits until the mirror's
// applied seq reaches its own. A message deleted (acked on another node) or expired before this
// node's consumer reached it is never delivered: a wait that lasts over a second asks the stream
// whether the message is still there, and ends when it is not; when it is, the mirror is behind:
// a catch-up reads the missing messages from the stream (queue-catch-up.ts), and the follower is
// told (it recreates its consumer). While the follower recreates its consumer the wait goes on
// (up to RESYNC_WAIT_MS); a wait longer than `maxWaitMs` otherwise (the consumer cannot follow:
// NATS unreachable) fails with 503.

import { storeFailure } from './queue-errors.js';

const CHECK_EVERY_MS = 1000;
/** The longest a wait lasts while the follower recreates its consumer. */
const RESYNC_WAIT_MS = 20_000;

export interface FollowerState {
  /** Whether the mirror's consumer is being recreated (the mirror is behind for now). */
  resyncing(): boolean;
  /** The mirror is behind a message the stream holds: recreate its consumer. */
  lagging(why: string): void;
  /** Read what the mirror lacks up to stream seq `seq` from the stream itself. */
  catchUp(seq: number): void;
}

interface Waiter {
  seq: number;
  since: number;
  resolve: () => void;
  reject: (e: unknown) => void;
  checking: boolean;
}

export class CommitWaits {
  /** Waiting appends, by seq. */
  private waiters: Waiter[] = [];
  /** Stream seq of the last message the mirror applied. */
  private applied = 0;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    /** Whether the stream no longer holds `seq` (deleted or expired). */
    private readonly isGone: (seq: number) => Promise<boolean>,
    private readonly maxWaitMs: number,
    private readonly follower?: FollowerState,
  ) {}

  get appliedSeq(): number {
    return this.applied;
  }

  start(): void {
    this.timer = setInterval(() => this.check(), CHECK_EVERY_MS);
    this.timer.unref();
  }

  /** Rejects every wait (the queue closes). */
  stop(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const err = storeFailure(new Error('the queue is closed'));
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** Resolves once the mirror has applied stream seq `seq`. */
  wait(seq: number): Promise<void> {
    if (seq <= this.applied) return Promise.resolve();
    if (this.closed) return Promise.reject(storeFailure(new Error('the queue is closed')));
    return new Promise((resolve, reject) => {
      const w: Waiter = { seq, since: Date.now(), resolve, reject, checking: false };
      // Publish acks come nearly in seq order: insert from the end.
      let i = this.waiters.length;
      while (i > 0 && this.waiters[i - 1]!.seq > seq) i--;
      this.waiters.splice(i, 0, w);
    });
  }

  /** The mirror applied stream seq `seq`. */
  advance(seq: number): void {
    this.applied = seq;
    let n = 0;
    while (n < this.waiters.length && this.waiters[n]!.seq <= seq) n++;
    if (n === 0) return;
    for (const w of this.waiters.splice(0, n)) w.resolve();
  }

  private check(): void {
    const now = Date.now();
    const resyncing = this.follower?.resyncing() === true;
    const limit = resyncing ? Math.max(this.maxWaitMs, RESYNC_WAIT_MS) : this.maxWaitMs;
    for (const w of [...this.waiters]) {
      if (now - w.since > limit) {
        this.remove(w);
        w.reject(storeFailure(new Error('the queue mirror did not reach the message')));
        continue;
      }
      if (w.checking || now - w.since < CHECK_EVERY_MS) continue;
      w.checking = true;
      this.isGone(w.seq).then(
        (gone) => {
          w.checking = false;
          if (!gone) {
            if (this.waiters.includes(w)) this.follower?.catchUp(this.waiters.at(-1)?.seq ?? w.seq);
            if (!this.follower?.resyncing() && this.waiters.includes(w) && Date.now() - w.since > 2 * CHECK_EVERY_MS) {
              this.follower?.lagging(`a commit waited ${Date.now() - w.since} ms for seq ${w.seq}`);
            }
            return;
          }
          this.remove(w);
          w.resolve();
        },
        () => {
          w.checking = false;
        },
      );
    }
  }

  private remove(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
  }
}
