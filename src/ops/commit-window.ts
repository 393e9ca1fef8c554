// The latest store commit latencies, for percentiles over a short recent window (the console's
// live overview): a fixed ring of the last RING_SIZE commits with their times, so recording costs
// two array writes and memory never grows, whatever the write rate.

/** Commits remembered; at a higher rate than RING_SIZE per window, the window is the latest RING_SIZE. */
export const RING_SIZE = 4096;

export class CommitWindow {
  private readonly ms = new Float64Array(RING_SIZE);
  private readonly at = new Float64Array(RING_SIZE);
  private next = 0;
  private count = 0;

  add(latencyMs: number, now = Date.now()): void {
    this.ms[this.next] = latencyMs;
    this.at[this.next] = now;
    this.next = (this.next + 1) % RING_SIZE;
    if (this.count < RING_SIZE) this.count++;
  }

  /** p50 and p99 (ms, nearest rank) of the commits of the last `windowMs`; null when there was none. */
  percentiles(windowMs: number, now = Date.now()): { p50: number; p99: number } | null {
    const recent: number[] = [];
    for (let i = 0; i < this.count; i++) if (now - this.at[i] <= windowMs) recent.push(this.ms[i]);
    if (recent.length === 0) return null;
    recent.sort((a, b) => a - b);
    const rank = (p: number) => recent[Math.min(recent.length - 1, Math.ceil(p * recent.length) - 1)]!;
    const round = (x: number) => Math.round(x * 1000) / 1000;
    return { p50: round(rank(0.5)), p99: round(rank(0.99)) };
  }
}
