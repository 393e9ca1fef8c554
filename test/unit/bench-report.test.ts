// The bench's pure parts: HDR latency summaries and the Markdown summary table (bench/lib).
// The bench itself measures; nothing here times anything.

import { describe, expect, it } from 'vitest';
import { Latency } from '../../bench/lib/hist.js';
import { perSecond, summaryTable, type BenchResult } from '../../bench/lib/report.js';

describe('Latency (HDR, microsecond resolution)', () => {
  it('gives the percentiles of 1..1000 ms within 0.1 %', () => {
    const l = new Latency();
    for (let ms = 1; ms <= 1000; ms++) l.recordMs(ms);
    const s = l.summary();
    expect(s.count).toBe(1000);
    for (const [got, want] of [
      [s.p50_ms, 500],
      [s.p90_ms, 900],
      [s.p99_ms, 990],
      [s.p999_ms, 999],
      [s.max_ms, 1000],
    ] as const) {
      expect(Math.abs(got - want) / want).toBeLessThan(0.001);
    }
    expect(s.mean_ms).toBeCloseTo(500.5, 0);
  });

  it('keeps sub-millisecond values and clamps out-of-range ones instead of throwing', () => {
    const l = new Latency();
    l.recordMs(0.25);
    l.recordMs(0);
    l.recordMs(-5);
    l.recordMs(10 ** 9);
    expect(l.count).toBe(4);
    expect(l.percentileMs(25)).toBeCloseTo(0.001, 3);
    expect(l.summary().max_ms).toBeGreaterThanOrEqual(59_000);
    l.reset();
    expect(l.count).toBe(0);
  });
});

describe('report', () => {
  it('perSecond rounds and survives a zero duration', () => {
    expect(perSecond(1500, 1000)).toBe(1500);
    expect(perSecond(1, 3)).toBe(333);
    expect(perSecond(10, 0)).toBe(0);
  });

  it('the summary table has one row per calibrator and scenario, with ratio, percentiles and notes', () => {
    const r: BenchResult = {
      started_at: '2026-12-01T00:00:00.000Z',
      mode: 'quick',
      machine: { cpu: 'Test CPU', cores: 2, node: 'v20' },
      placement: 'server on core 1',
      server: { root: '/x', args: '' },
      calibrators: { lmdb_appends_server_cores: { value: 40_000, unit: 'appends/s', details: {} } },
      scenarios: [
        {
          name: 'a',
          title: '2 trusted',
          value: 8000,
          unit: 'msg/s',
          calibrator: 'lmdb_appends_server_cores',
          ratio: 0.2,
          latency: { count: 1, p50_ms: 1.5, p90_ms: 2, p99_ms: 3.25, p999_ms: 4, max_ms: 5, mean_ms: 1.6 },
          details: {},
          errors: 0,
          notes: ['saturated'],
        },
        { name: 'b', title: '5 drain', value: 12.5, unit: 'msg/s', details: {}, errors: 2, notes: [] },
      ],
    };
    const md = summaryTable(r);
    expect(md).toContain('| lmdb_appends_server_cores | 40,000 | appends/s |');
    expect(md).toContain(
      '| 2 trusted | 8,000 | msg/s | 0.20 | lmdb_appends_server_cores | 1.500 | 3.250 | 4.000 | – | 0 |',
    );
    expect(md).toContain('| 5 drain | 12.50 | msg/s | – | – | – | – | – | – | 2 |');
    expect(md).toContain('- 2 trusted: saturated');
  });
});
