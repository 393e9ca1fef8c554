// /metrics for the outbound delivery engine (src/outbound/): queue depth, attempts, outcomes,
// time spent and breakers, per target kind (mesh, fed, webhook). Labels are kinds, never targets:
// the cardinality stays bounded however many peers or webhooks there are.

import type { Registry } from 'prom-client';
import type { KindStats, TargetStats } from '../outbound/types.js';
import { type Samples, scraped } from './metrics.js';

/** What is read of the engine at scrape time (OutboundEngine has both). */
export interface OutboundMetricSource {
  kindStats(): Record<string, KindStats>;
  targetStats(): TargetStats[];
}

interface KindTotals {
  pending: number;
  parked: number;
  inFlight: number;
  breakersOpen: number;
}

function totalsByKind(targets: TargetStats[]): Map<string, KindTotals> {
  const out = new Map<string, KindTotals>();
  for (const t of targets) {
    let k = out.get(t.kind);
    if (!k) out.set(t.kind, (k = { pending: 0, parked: 0, inFlight: 0, breakersOpen: 0 }));
    k.pending += t.pending;
    k.parked += t.parked;
    k.inFlight += t.inFlight;
    if (t.breaker !== 'closed') k.breakersOpen++;
  }
  return out;
}

export function registerOutboundMetrics(r: Registry, o: OutboundMetricSource): void {
  // One targetStats() per scrape: read by the first gauge, reused by the others.
  let totals: Map<string, KindTotals> | undefined;
  const perTarget =
    (pick: (k: KindTotals) => number, first = false) =>
    (): Samples => {
      if (first || !totals) totals = totalsByKind(o.targetStats());
      return [...totals].map(([kind, k]) => [{ kind }, pick(k)]);
    };
  const depthHelp = 'Outbound items waiting for an attempt, per target kind';
  scraped(
    r,
    'gauge',
    'amp_outbound_queue_depth',
    depthHelp,
    ['kind'],
    perTarget((k) => k.pending, true),
  );
  const parkedHelp = 'Outbound items parked (kept, not retried: e.g. a webhook 4xx), per target kind';
  scraped(
    r,
    'gauge',
    'amp_outbound_parked',
    parkedHelp,
    ['kind'],
    perTarget((k) => k.parked),
  );
  const inFlightHelp = 'Outbound attempts in flight, per target kind';
  scraped(
    r,
    'gauge',
    'amp_outbound_in_flight',
    inFlightHelp,
    ['kind'],
    perTarget((k) => k.inFlight),
  );
  const openHelp = 'Outbound targets paused by their breaker (open or half-open), per target kind';
  scraped(
    r,
    'gauge',
    'amp_outbound_breakers_open',
    openHelp,
    ['kind'],
    perTarget((k) => k.breakersOpen),
  );
  const perKind = (pick: (s: KindStats) => number) => (): Samples =>
    Object.entries(o.kindStats()).map(([kind, s]) => [{ kind }, pick(s)]);
  const counters: Array<[string, string, (s: KindStats) => number]> = [
    ['amp_outbound_attempts_total', 'Outbound delivery attempts, per target kind', (s) => s.attempts],
    ['amp_outbound_delivered_total', 'Outbound items delivered, per target kind', (s) => s.delivered],
    ['amp_outbound_failures_total', 'Outbound attempts failed (to be retried), per target kind', (s) => s.failures],
    ['amp_outbound_parked_total', 'Outbound items parked, per target kind', (s) => s.parked],
    ['amp_outbound_expired_total', 'Outbound items dropped unsent at their expiry, per target kind', (s) => s.expired],
    [
      'amp_outbound_attempt_seconds_total',
      'Time spent in outbound attempts, per target kind',
      (s) => s.latencyMsSum / 1000,
    ],
  ];
  for (const [name, help, pick] of counters) scraped(r, 'counter', name, help, ['kind'], perKind(pick));
  const maxHelp = 'Longest outbound attempt since start, per target kind';
  scraped(
    r,
    'gauge',
    'amp_outbound_attempt_seconds_max',
    maxHelp,
    ['kind'],
    perKind((s) => s.latencyMsMax / 1000),
  );
}
