// Prometheus text exposition of the counters an operator needs (GET /metrics). Hand-written: a few
// gauges and counters do not justify a metrics library on the hot path.

import type { Push } from '../relay/push.js';
import type { Receipts } from '../relay/receipts.js';
import type { Sessions } from '../relay/sessions.js';
import type { DataStats } from '../store/types.js';

export interface MetricSources {
  sessions: Sessions;
  push: Push;
  receipts: Receipts;
  startedAt: number;
  store: {
    dataStats(): DataStats;
    writeState(): { ok: boolean };
  };
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
      'amp_receipts_outbox_dropped_total',
      'counter',
      'Receipts dropped because an offline sender had 1000 waiting',
      m.receipts.outboxDropped,
    ],
    ['amp_uptime_seconds', 'gauge', 'Seconds since the server started', Math.floor((Date.now() - m.startedAt) / 1000)],
  ];
  const text = rows.map(([name, type, help, v]) => `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n${name} ${v}\n`);
  return text.join('') + storeMetrics(m.store);
}
