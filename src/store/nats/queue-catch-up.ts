// Catching the queue mirror up without its consumer. When the server that led the queue stream
// dies, publishes work again as soon as the stream has a new leader, but the mirror's ordered
// consumer has to be created anew, and creating a consumer needs the JetStream meta leader, which
// may be elected much later (or be busy with every node's consumers at once). Meanwhile appends
// wait for the mirror. So a wait that lasts asks for a catch-up: the messages the mirror lacks are
// read one by one from the stream's leader (a message get needs only that leader, the one that
// just acknowledged the publish) and handed over in stream order, as the consumer would have.
// The follower then skips them (they are at or below its last seq).

import type { StoredMsg } from '@nats-io/jetstream';

/** Messages read in one run; a longer gap is read by the next request. */
const MAX_READS = 2000;

export interface CatchUpParts {
  /** Stream seq of the last message handed over (by the consumer or by a catch-up). */
  lastSeq(): number;
  /** Claim `seq` as handed over; false when the consumer got there first. */
  take(seq: number): boolean;
  /** The stored message at `seq`; null when there is none (deleted: acked or expired). */
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
      const seq = this.parts.lastSeq() + 1;
      if (seq > this.target) return;
      const m = await this.parts.read(seq);
      // Checked and applied with no await in between: stream order holds.
      if (this.parts.take(seq) && m) this.parts.apply(m);
    }
  }
}
