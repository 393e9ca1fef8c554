// Pausing a uWS connection's reads for several independent reasons at once.
//
// `res.pause()` stops reading the socket (writes and onWritable go on: checked against this uWS
// build). Three parts of a request pause it: the pipelining guard in respond.ts (an async answer is
// pending: requests sent after it wait in the kernel), a streamed body's sink (a chunk is being
// written) and a streamed body held before the handler pipes it. The socket reads again only when
// no reason is left, and never once the response is written or the connection is gone (`res` is
// invalid then).

import type { HttpResponse } from 'uWebSockets.js';

export type PauseReason = 'answer' | 'sink' | 'held' | 'file' | 'stream';

export class PauseControl {
  private readonly reasons = new Set<PauseReason>();
  private paused = false;
  private over = false;

  constructor(private readonly res: HttpResponse) {}

  /** Stop reading for `reason` (until `release(reason)`). */
  hold(reason: PauseReason): void {
    if (this.over) return;
    this.reasons.add(reason);
    if (this.paused) return;
    this.paused = true;
    this.res.pause();
  }

  /** `reason` no longer needs the socket paused; it reads again once no reason is left. */
  release(reason: PauseReason): void {
    this.reasons.delete(reason);
    if (this.over || !this.paused || this.reasons.size > 0) return;
    this.paused = false;
    this.res.resume();
  }

  /** Whether a reason holds the socket paused. */
  isPaused(): boolean {
    return this.paused;
  }

  /**
   * The response is about to end (`resume`: read again, called inside the cork right before the
   * last write, since `res` is invalid after it) or the connection is gone (`resume = false`).
   * Nothing pauses or resumes after this.
   */
  finish(resume: boolean): void {
    if (this.over) return;
    this.over = true;
    this.reasons.clear();
    if (this.paused && resume) this.res.resume();
    this.paused = false;
  }
}
