// Where the live overview's figures come from (src/console/live.ts): state the server keeps anyway,
// read once per tick, each read cheap and bounded.
//
// - sessions and agents online: counters of the session registry;
// - routed and pushed: the telemetry and push counters behind /metrics (since start);
// - queue depth: the queue database's entry count (pending messages, and expired ones the sweeper
//   has not removed yet, as amp_queue_depth); oldest message age: the oldest head among the
//   OLDEST_SCAN deepest queues (one pass over the in-memory queue index, then at most OLDEST_SCAN
//   reads), so it can miss an old message in a shallow queue;
// - commit latency: p50/p99 of the store commits of the last COMMIT_WINDOW_MS (at most the 4096
//   latest: ops/commit-window.ts); null when nothing was committed in that window;
// - outbound: per kind, items pending and the age of the oldest (the first pending of each target);
//   mesh and federation when configured, webhook when a webhook target holds items.

import type { CommitWindow } from '../ops/commit-window.js';
import type { LiveSources, OutboundQueue } from './live.js';

/** Queues whose oldest message is read per tick. */
export const OLDEST_SCAN = 50;
/** The commit percentiles' window. */
export const COMMIT_WINDOW_MS = 10_000;

export interface LiveParts {
  sessions: { sessionCount(): number; onlineAgents(): number };
  telemetry: { routedTotal: number; recentCommits: CommitWindow };
  push: { counters: { pushes: number } };
  store: {
    queueDepths(top: number): { total: number; agents: Array<{ agentId: string; depth: number }> };
    queueHead(agentId: string, nowMs: number): { oldestQueuedAt: number | null };
    outboundTargets(): string[];
    outboundCount(target: string): { pending: number };
    outboundOldest(target: string): number | null;
  };
  /** /health's status (`healthy` is shown as `ok`) and whether /ready answers 200. */
  health: () => { status: string };
  ready: () => boolean;
  /** Outbound kinds configured on this server (shown even when empty). */
  outboundKinds: Array<'mesh' | 'federation'>;
}

const ageS = (from: number | null, now: number) =>
  from === null ? null : Math.max(0, Math.round((now - from) / 100) / 10);

const KINDS = ['mesh', 'federation', 'webhook'] as const;

export function liveSources(p: LiveParts): LiveSources {
  return {
    sessionsOnline: () => p.sessions.sessionCount(),
    agentsOnline: () => p.sessions.onlineAgents(),
    routedTotal: () => p.telemetry.routedTotal,
    pushedTotal: () => p.push.counters.pushes,
    queue(now) {
      const d = p.store.queueDepths(OLDEST_SCAN);
      let oldest: number | null = null;
      for (const a of d.agents) {
        const at = p.store.queueHead(a.agentId, now).oldestQueuedAt;
        if (at !== null && (oldest === null || at < oldest)) oldest = at;
      }
      return { depth: d.total, oldestAgeS: ageS(oldest, now) };
    },
    commitMs: (now) => p.telemetry.recentCommits.percentiles(COMMIT_WINDOW_MS, now),
    health() {
      const status = p.health().status;
      return { health: status === 'healthy' ? 'ok' : status, ready: p.ready() };
    },
    outbound: (now) => outboundQueues(p, now),
  };
}

function outboundQueues(p: LiveParts, now: number): OutboundQueue[] {
  const byKind = new Map<string, { queued: number; oldest: number | null }>();
  for (const k of p.outboundKinds) byKind.set(k, { queued: 0, oldest: null });
  for (const target of p.store.outboundTargets()) {
    const kind = target.slice(0, target.indexOf(':'));
    if (!(KINDS as readonly string[]).includes(kind)) continue;
    const pending = p.store.outboundCount(target).pending;
    if (pending === 0 && !byKind.has(kind)) continue;
    let k = byKind.get(kind);
    if (!k) byKind.set(kind, (k = { queued: 0, oldest: null }));
    k.queued += pending;
    const at = pending > 0 ? p.store.outboundOldest(target) : null;
    if (at !== null && (k.oldest === null || at < k.oldest)) k.oldest = at;
  }
  return KINDS.filter((k) => byKind.has(k)).map((kind) => {
    const k = byKind.get(kind)!;
    return { kind, queued: k.queued, oldest_age_s: ageS(k.oldest, now) };
  });
}
