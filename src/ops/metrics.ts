// Prometheus text exposition of the counters an operator needs (GET /metrics). Hand-written: a few
// gauges and counters do not justify a metrics library on the hot path.

import type { AbuseCounters } from '../relay/abuse.js';
import type { Agents } from '../relay/agents.js';
import type { Push } from '../relay/push.js';
import type { Receipts } from '../relay/receipts.js';
import type { Sessions } from '../relay/sessions.js';
import type { DataStats } from '../store/types.js';

export interface MetricSources {
  sessions: Sessions;
  push: Push;
  receipts: Receipts;
  startedAt: number;
  abuse: AbuseCounters;
  agents: Agents;
  store: {
    dataStats(): DataStats;
    writeState(): { ok: boolean };
  };
}

/** A Prometheus label value: backslash, double quote and newline escaped. */
const label = (v: string) => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/**
 * Spec §20's per-agent abuse counters over the last 24 h, for the agents with the most blocked,
 * then sent, messages (at most TOP_AGENTS series per metric: bounded cardinality), labelled by
 * address (the id when the agent is gone).
 */
function renderAbuse(m: MetricSources): string {
  const rows = m.abuse.top();
  const metrics = [
    ['total_messages', 'Messages the agent sent that were accepted, last 24 h (top agents)'],
    ['blocked', 'Routes of the agent refused: signature, policy, suspension, rate limit; last 24 h (top agents)'],
    ['quarantined', 'Messages of the agent quarantined, last 24 h (top agents; no quarantine yet: 0)'],
    ['flagged', 'Messages of the agent flagged, last 24 h (top agents; no content flags yet: 0)'],
  ] as const;
  let out = '';
  for (const [key, help] of metrics) {
    const name = `amp_agent_${key}_24h`;
    out += `# HELP ${name} ${help}\n# TYPE ${name} gauge\n`;
    for (const r of rows) {
      const address = m.agents.find(r.agentId)?.address ?? r.agentId;
      out += `${name}{agent="${label(address)}"} ${r[key]}\n`;
    }
  }
  return out;
}

/** The store: bytes on disk, entries per database (msgindex shows what acked messages leave). */
function storeMetrics(store: MetricSources['store']): string {
  const { fileBytes, dbs } = store.dataStats();
  const lines = [
    '# HELP amp_store_file_bytes Size of the LMDB data file (amp.lmdb)',
    '# TYPE amp_store_file_bytes gauge',
    `amp_store_file_bytes ${fileBytes}`,
    '# HELP amp_store_entries Entries per store database',
    '# TYPE amp_store_entries gauge',
    ...Object.entries(dbs).map(([db, s]) => `amp_store_entries{db="${db}"} ${s.entries}`),
    '# HELP amp_store_db_bytes Bytes of the pages each store database uses',
    '# TYPE amp_store_db_bytes gauge',
    ...Object.entries(dbs).map(([db, s]) => `amp_store_db_bytes{db="${db}"} ${s.bytes}`),
    '# HELP amp_store_writable 1 while store writes commit, 0 while they fail (disk or map full)',
    '# TYPE amp_store_writable gauge',
    `amp_store_writable ${store.writeState().ok ? 1 : 0}`,
  ];
  return `${lines.join('\n')}\n`;
}

export function renderMetrics(m: MetricSources): string {
  const c = m.push.counters;
  const rows: Array<[string, 'gauge' | 'counter', string, number]> = [
    [
      'amp_agents_online',
      'gauge',
      'Agents with at least one authenticated WebSocket session',
      m.sessions.onlineAgents(),
    ],
    ['amp_ws_sessions', 'gauge', 'Authenticated WebSocket sessions', m.sessions.sessionCount()],
    ['amp_ws_pushes_total', 'counter', 'Messages written to WebSocket sessions (live and catch-up)', c.pushes],
    [
      'amp_ws_slow_consumer_pauses_total',
      'counter',
      'Times a session went over its soft buffer limit and pushes paused',
      c.slowConsumerPauses,
    ],
    [
      'amp_ws_slow_consumer_closes_total',
      'counter',
      'Sessions closed as slow consumers (4501)',
      m.sessions.slowConsumerCloses,
    ],
    [
      'amp_ws_invalid_utf8_closes_total',
      'counter',
      'WebSocket connections failed over a text frame that was not UTF-8 (uWS ends them, no close frame)',
      m.sessions.invalidUtf8Closes,
    ],
    [
      'amp_receipts_outbox_dropped_total',
      'counter',
      'Receipts dropped because an offline sender had 1000 waiting',
      m.receipts.outboxDropped,
    ],
    [
      'amp_route_blocked_total',
      'counter',
      'Routes refused as blocked (abuse counters, all agents)',
      m.abuse.blockedTotal,
    ],
    ['amp_abuse_tracked_agents', 'gauge', 'Agents with abuse counts in the last 24 h', m.abuse.tracked()],
    ['amp_uptime_seconds', 'gauge', 'Seconds since the server started', Math.floor((Date.now() - m.startedAt) / 1000)],
  ];
  const text = rows.map(([name, type, help, v]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${v}\n`);
  return text.join('') + renderAbuse(m) + storeMetrics(m.store);
}
