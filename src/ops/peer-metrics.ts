// /metrics per mesh host and federated provider (§19): a handful of configured peers, so each is a
// label value (webhook targets, one per agent, are counted by kind only: src/ops/outbound-metrics.ts).

import type { Registry } from 'prom-client';
import type { PeerStatus } from '../relay/peers.js';
import { type Samples, scraped } from './metrics.js';

export type PeerMetricSource = () => { mesh: PeerStatus[]; federation: PeerStatus[] };

export function registerPeerMetrics(r: Registry, peers: PeerMetricSource): void {
  const per =
    (pick: (p: PeerStatus) => number): (() => Samples) =>
    () => {
      const doc = peers();
      return (['mesh', 'federation'] as const).flatMap((kind) =>
        doc[kind].map((p): Samples[number] => [{ kind, peer: p.id }, pick(p)]),
      );
    };
  const labels = ['kind', 'peer'];
  const gauges: Array<[string, string, (p: PeerStatus) => number]> = [
    ['amp_peer_queue_depth', 'Messages waiting for an attempt to a mesh host or provider', (p) => p.pending],
    [
      'amp_peer_reachable',
      '1 when the last contact with the peer succeeded, 0 when it failed or none yet',
      (p) => (p.reachable ? 1 : 0),
    ],
    [
      'amp_peer_delivery_seconds_mean',
      'Mean time of the deliveries to the peer since the start',
      (p) => (p.mean_delivery_ms ?? 0) / 1000,
    ],
  ];
  for (const [name, help, pick] of gauges) scraped(r, 'gauge', name, help, labels, per(pick));
  scraped(
    r,
    'counter',
    'amp_peer_delivered_total',
    'Messages delivered to the peer',
    labels,
    per((p) => p.delivered),
  );
  scraped(
    r,
    'counter',
    'amp_peer_failures_total',
    'Failed attempts to the peer',
    labels,
    per((p) => p.failed_attempts),
  );
}
