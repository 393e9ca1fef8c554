// Catching the queue mirror up without its consumer. When the server that led the queue stream
// dies, publishes work again as soon as the stream has a new leader, but the mirror's ordered
// consumer has to be created anew, and creating a consumer needs the JetStream meta leader, which
// may be elected much later (or be busy with every node's consumers at once). Meanwhile appends
// wait for the mirror. So a wait that lasts asks for a catch-up: the messages the mirror lacks are
// read from the stream's leader (a message get needs only that leader, the one that just
// acknowledged the publish), each read asking for the first message at or after a seq, so a run
// of deleted messages costs one read. They are handed over in stream order, as the consumer would
// have; the follower then skips them (they are at or below its last seq).
// A read that finds nothing at or after the seq ends the run: the messages waited for were deleted
// (acked or expired), which the waits find out themselves (queue-commits.ts); nothing is skipped
// on the word of a leader that may not have applied its whole log yet.

import type { StoredMsg } from '@nats-io/jetstream';

/** Messages read in one run; more are read by the next request. */
const MAX_READS = 2000;

export interface CatchUpParts {
  /** Stream seq of the last message handed over (by the consumer or by a catch-up). */
  lastSeq(): number;
  /** Claim every seq up to `seq` as handed over; false when the consumer got there first. */
  take(seq: number): boolean;
  /** The first stored message at or after `seq`; null when there is none. */
  read(seq: number): Promise<StoredMsg | null>;
  /** Apply it to the mirror, as if the consumer had delivered it. */
  apply(m: StoredMsg): void;
  onError?(err: unknown): void;
}

export class CatchUp {
  private running = false;
  private target = 0;

  constructor(private readonly parts: CatchUpParts) {}

  /** Read what the mirror lacks up to stream seq `seq` (one run at a time; a later `seq` extends it). */
  request(seq: number): void {
    this.target = Math.max(this.target, seq);
    if (this.running) return;
    this.running = true;
    this.run()
      .catch((e: unknown) => this.parts.onError?.(e))
      .finally(() => {
        this.running = false;
      });
  }

  private async run(): Promise<void> {
    for (let n = 0; n < MAX_READS; n++) {
      const from = this.parts.lastSeq() + 1;
      if (from > this.target) return;
      const m = await this.parts.read(from);
      if (!m) return;
      // None is stored between `from` and m.seq (and none can come: new messages get higher seqs),
      // so the follower may jump to m.seq. Checked and applied with no await in between.
      if (this.parts.take(m.seq)) this.parts.apply(m);
    }
  }
}
