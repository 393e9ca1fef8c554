// The live overview's snapshot as it goes over the wire (GET /v1/console/live): the server builds
// it (live.ts) and the page reads it (web/pages/overview.tsx). No imports: both builds take it.

export interface OutboundQueue {
  kind: 'mesh' | 'federation' | 'webhook';
  queued: number;
  oldest_age_s: number | null;
}

export interface LiveSnapshot {
  at: string;
  sessions_online: number;
  agents_online: number;
  routed_total: number;
  pushed_total: number;
  routed_per_s: number;
  pushed_per_s: number;
  queue_depth: number;
  oldest_message_age_s: number | null;
  commit_ms: { p50: number; p99: number } | null;
  health: string;
  ready: boolean;
  outbound: OutboundQueue[];
}
