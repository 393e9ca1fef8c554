// Per-key mutual exclusion for read-modify-write of stored records: a call for a key starts only
// after every earlier call for that key has settled, so each one reads the record as the one
// before it left it. Calls for different keys run concurrently. In-process only: two processes
// on one store need the store's own compare-and-set.

export class KeyedLock {
  /** key -> the settled-either-way tail of its queue; absent when nothing is queued. */
  private readonly tails = new Map<string, Promise<void>>();

  /** Run `fn` after every earlier call for `key` settled (fulfilled or rejected); its result. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    // The last one out removes the key, so the map holds busy keys only.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }

  /** Keys with a call queued or running. */
  size(): number {
    return this.tails.size;
  }
}
