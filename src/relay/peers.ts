// The reachability of mesh hosts and federated providers (`GET /v1/peers`, amp-status.sh): each
// target's last contact as the outbound engine and the adapters saw it, with its queue. Kept in
// memory: after a restart a peer is unknown (`reachable: null`) until the next contact.

import { isoTime } from '../../proto/index.js';
import type { OutboundEngine, TargetStats } from '../outbound/index.js';
import type { PeerEntry } from './remote.js';

interface Contact {
  okAt?: number;
  failAt?: number;
  error?: string;
  delivered: number;
  failures: number;
  /** Sum of the delivered attempts' durations (ms). */
  latencyMs: number;
}

export interface PeerStatus {
  id: string;
  url: string;
  /** true: the last contact succeeded; false: it failed; null: no contact since the start. */
  reachable: boolean | null;
  last_success_at: string | null;
  last_failure_at: string | null;
  last_error: string | null;
  /** Messages waiting for this peer (parked ones included), and its circuit breaker. */
  pending: number;
  parked: number;
  breaker: TargetStats['breaker'];
  /** Since the start: items delivered, attempts failed (to be retried), and the deliveries' mean time. */
  delivered: number;
  failed_attempts: number;
  mean_delivery_ms: number | null;
}

export class PeerTracker {
  private readonly contacts = new Map<string, Contact>();

  /** Follows the engine's outcomes for every target (webhooks' are kept too, and never listed). */
  watch(engine: Pick<OutboundEngine, 'on'>): void {
    engine.on('delivered', (item, ms) => this.succeeded(item.target, Date.now(), ms));
    engine.on('retry', (item, reason) => this.failed(item.target, reason));
  }

  succeeded(target: string, at = Date.now(), latencyMs?: number): void {
    const c = this.contact(target);
    c.okAt = at;
    if (latencyMs === undefined) return;
    c.delivered++;
    c.latencyMs += latencyMs;
  }

  failed(target: string, reason: string, at = Date.now()): void {
    const c = this.contact(target);
    c.failAt = at;
    c.error = reason;
    c.failures++;
  }

  status(entry: PeerEntry, stats: Pick<TargetStats, 'pending' | 'parked' | 'breaker'>): PeerStatus {
    const c = this.contacts.get(entry.target) ?? fresh();
    const seen = c.okAt === undefined && c.failAt === undefined ? null : (c.okAt ?? 0) >= (c.failAt ?? 0);
    const reachable = entry.reachable?.() ?? seen;
    return {
      id: entry.id,
      url: entry.url,
      reachable,
      last_success_at: c.okAt === undefined ? null : isoTime(c.okAt),
      last_failure_at: c.failAt === undefined ? null : isoTime(c.failAt),
      last_error: c.error ?? null,
      pending: stats.pending,
      parked: stats.parked,
      breaker: stats.breaker,
      delivered: c.delivered,
      failed_attempts: c.failures,
      mean_delivery_ms: c.delivered === 0 ? null : Math.round((c.latencyMs / c.delivered) * 10) / 10,
    };
  }

  private contact(target: string): Contact {
    let c = this.contacts.get(target);
    if (!c) this.contacts.set(target, (c = fresh()));
    return c;
  }
}

function fresh(): Contact {
  return { delivered: 0, failures: 0, latencyMs: 0 };
}
