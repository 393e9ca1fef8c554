// Walking LMDB databases in slices for the TTL sweeper: each call looks at up to `budget` keys from
// where the last call of the same name stopped, so no sweep blocks the event loop for long.

import type { Database } from 'lmdb';
import type { Writes } from './write-health.js';

export type SliceKey = string | [string, number];

export class SliceSweeper {
  /** Where each sweep left off, per database. */
  private readonly cursors = new Map<string, unknown>();

  constructor(private readonly writes: Writes) {}

  /** Remove the entries `expired` says are expired among the next `budget` keys; returns how many. */
  slice<K extends SliceKey, V>(
    name: string,
    db: Database<V, K>,
    budget: number,
    expired: (key: K, value: V) => boolean,
  ): number {
    const start = this.cursors.get(name) as K | undefined;
    let removed = 0;
    let seen = 0;
    let last: K | undefined;
    for (const { key, value } of db.getRange({ start, limit: budget })) {
      seen++;
      last = key;
      if (expired(key, value)) {
        this.writes.background(this.writes.remove(db, key));
        removed++;
      }
    }
    // A short slice means the end was reached: start over next time.
    if (seen < budget || last === undefined) this.cursors.delete(name);
    else this.cursors.set(name, Array.isArray(last) ? [last[0], last[1] + 1] : `${String(last)}\u0000`);
    return removed;
  }

  /** Some database was not walked to its end yet. */
  get unfinished(): boolean {
    return this.cursors.size > 0;
  }
}
