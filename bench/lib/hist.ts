// HDR latency histograms in microseconds (1 µs .. 60 s, 3 significant digits) and the summary a
// result file keeps of them.

import * as hdr from 'hdr-histogram-js';

const LOWEST_US = 1;
const HIGHEST_US = 60_000_000;

export interface LatencySummary {
  count: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  p999_ms: number;
  max_ms: number;
  mean_ms: number;
}

export class Latency {
  private readonly h = hdr.build({
    lowestDiscernibleValue: LOWEST_US,
    highestTrackableValue: HIGHEST_US,
    numberOfSignificantValueDigits: 3,
    bitBucketSize: 32,
  });

  /** Record one latency given in milliseconds (performance.now() differences). */
  recordMs(ms: number): void {
    const us = Math.round(ms * 1000);
    this.h.recordValue(Math.min(HIGHEST_US, Math.max(LOWEST_US, us)));
  }

  get count(): number {
    return this.h.totalCount;
  }

  percentileMs(p: number): number {
    return this.h.getValueAtPercentile(p) / 1000;
  }

  reset(): void {
    this.h.reset();
  }

  summary(): LatencySummary {
    const ms = (us: number) => Math.round(us) / 1000;
    return {
      count: this.h.totalCount,
      p50_ms: ms(this.h.getValueAtPercentile(50)),
      p90_ms: ms(this.h.getValueAtPercentile(90)),
      p99_ms: ms(this.h.getValueAtPercentile(99)),
      p999_ms: ms(this.h.getValueAtPercentile(99.9)),
      max_ms: ms(this.h.maxValue),
      mean_ms: ms(this.h.mean),
    };
  }
}
