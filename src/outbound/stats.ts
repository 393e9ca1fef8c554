// Counters per target kind, kept as plain numbers: src/ops reads them for /metrics.

import type { KindStats } from './types.js';

function zero(): KindStats {
  return {
    attempts: 0,
    delivered: 0,
    failures: 0,
    parked: 0,
    expired: 0,
    obsolete: 0,
    latencyMsSum: 0,
    latencyCount: 0,
    latencyMsMax: 0,
  };
}

export class OutboundStats {
  private readonly kinds = new Map<string, KindStats>();

  kind(kind: string): KindStats {
    let s = this.kinds.get(kind);
    if (!s) this.kinds.set(kind, (s = zero()));
    return s;
  }

  /** An attempt ended after `ms`, whatever its outcome. */
  attempt(kind: string, ms: number): void {
    const s = this.kind(kind);
    s.attempts++;
    s.latencyMsSum += ms;
    s.latencyCount++;
    if (ms > s.latencyMsMax) s.latencyMsMax = ms;
  }

  /** Copies (callers may keep them). */
  snapshot(): Record<string, KindStats> {
    return Object.fromEntries([...this.kinds].map(([k, s]) => [k, { ...s }]));
  }
}
