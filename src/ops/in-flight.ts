// Requests being handled (REST calls, WebSocket routes and acks), so that shutdown waits for their
// writes to commit before the store closes.

/** What the transports count with. */
export interface InFlightCounter {
  begin(): void;
  end(): void;
}

export class InFlight implements InFlightCounter {
  private count = 0;
  private waiters: Array<() => void> = [];

  begin(): void {
    this.count++;
  }

  end(): void {
    if (--this.count === 0) for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when no request is in flight, or after `timeoutMs`. */
  drain(timeoutMs: number): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
