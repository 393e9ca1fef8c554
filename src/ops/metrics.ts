// GET /metrics on prom-client: a Registry per server (tests run several servers in one process),
// the state the relay keeps anyway (sessions, queues, abuse counters, the store) read at scrape
// time, and the process metrics (event-loop lag, CPU, memory, GC) from prom-client's defaults,
// collected once per process. The traffic counters and histograms live in telemetry.ts.

import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { safeEqual, sha256Hex } from '../crypto/hash.js';
import type { AbuseCounters } from '../relay/abuse.js';
import type { Agents } from '../relay/agents.js';
import type { Push } from '../relay/push.js';
import type { Receipts } from '../relay/receipts.js';
import type { Sessions } from '../relay/sessions.js';
import type { DataStats, QueueDepths } from '../store/types.js';

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
    queueDepths(top: number): QueueDepths;
  };
  /** §22, when attachments are on: bytes of the files on disk, attachments by scan status. */
  attachments?: {
    storedBytes: number;
    countsByStatus(): Record<string, number>;
  };
}

/** Series per top-N metric (bounded cardinality). */
const TOP_QUEUES = 10;

export type Samples = Array<[Record<string, string>, number]>;

/**
 * A metric whose value is read at scrape time: the hot path keeps plain numbers (or nothing: the
 * value is computed) and prom-client copies them in when /metrics is asked.
 */
export function scraped(
  registry: Registry,
  kind: 'counter' | 'gauge',
  name: string,
  help: string,
  labelNames: string[],
  read: () => number | Samples,
): void {
  const collect = function (this: Gauge | Counter) {
    this.reset();
    const v = read();
    if (typeof v === 'number') return void (this instanceof Gauge ? this.set(v) : this.inc(v));
    for (const [labels, x] of v) {
      if (this instanceof Gauge) this.set(labels, x);
      else this.inc(labels, x);
    }
  };
  const config = { name, help, labelNames, registers: [registry], collect };
  if (kind === 'gauge') new Gauge(config);
  else new Counter(config);
}

let processRegistry: Registry | undefined;

/** Process metrics, one set per process: their collectors (GC observer, event-loop monitor) never stop. */
function processMetrics(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** The text of GET /metrics: this server's metrics, then the process's. */
export async function renderMetrics(registry: Registry): Promise<string> {
  const [own, proc] = await Promise.all([registry.metrics(), processMetrics().metrics()]);
  return `${own.trimEnd()}\n${proc.trimEnd()}\n`;
}

/** AMP_METRICS_TOKEN: a Bearer token compared in constant time (hashes of equal length). */
export function metricsAuthorized(expected: string, authorization: string): boolean {
  if (expected === '') return true;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  return m !== null && safeEqual(sha256Hex(m[1]!), sha256Hex(expected));
}

/** GET /metrics: the text of `registry` (and the process's), readable with `token` when one is set. */
export function metricsEndpoint(registry: Registry, token: string) {
  return {
    text: () => renderMetrics(registry),
    contentType: Registry.PROMETHEUS_CONTENT_TYPE as string,
    authorized: (authorization: string) => metricsAuthorized(token, authorization),
  };
}

/** Register the server's state metrics (everything but the traffic counters of telemetry.ts). */
export function registerMetrics(registry: Registry, m: MetricSources): void {
  registerSessionMetrics(registry, m);
  registerAbuseMetrics(registry, m);
  registerStoreMetrics(registry, m.store, m.agents);
  if (m.attachments) registerAttachmentMetrics(registry, m.attachments);
}

function registerAttachmentMetrics(r: Registry, a: NonNullable<MetricSources['attachments']>): void {
  const bytesHelp = 'Bytes of attachment files on disk (each stored file once)';
  scraped(r, 'gauge', 'amp_attachment_bytes', bytesHelp, [], () => a.storedBytes);
  scraped(r, 'gauge', 'amp_attachments', 'Attachments kept, by scan status', ['scan_status'], () =>
    Object.entries(a.countsByStatus()).map(([scan_status, n]): [Record<string, string>, number] => [
      { scan_status },
      n,
    ]),
  );
}

function registerSessionMetrics(r: Registry, m: MetricSources): void {
  const c = m.push.counters;
  const s = m.sessions;
  // Per node like every other series here (summed across nodes by the scraper), so this node's sessions only.
  const onlineHelp = 'Agents with at least one authenticated WebSocket session on this node';
  scraped(r, 'gauge', 'amp_agents_online', onlineHelp, [], () => s.localOnlineAgents());
  scraped(r, 'gauge', 'amp_ws_sessions', 'Authenticated WebSocket sessions', [], () => s.sessionCount());
  // One count, two names: amp_ws_pushes_total (from before prom-client) and the usual amp_messages_pushed_total.
  const pushesHelp = 'Messages written to WebSocket sessions (live and catch-up)';
  for (const name of ['amp_ws_pushes_total', 'amp_messages_pushed_total'])
    scraped(r, 'counter', name, pushesHelp, [], () => c.pushes);
  const pausesHelp = 'Times a session went over its soft buffer limit and pushes paused';
  scraped(r, 'counter', 'amp_ws_slow_consumer_pauses_total', pausesHelp, [], () => c.slowConsumerPauses);
  scraped(
    r,
    'counter',
    'amp_ws_slow_consumer_closes_total',
    'Sessions closed as slow consumers (4501)',
    [],
    () => s.slowConsumerCloses,
  );
  const utf8Help = 'WebSocket connections failed over a text frame that was not UTF-8 (uWS ends them, no close frame)';
  scraped(r, 'counter', 'amp_ws_invalid_utf8_closes_total', utf8Help, [], () => s.invalidUtf8Closes);
  const droppedHelp = 'Receipts dropped because an offline sender had 1000 waiting';
  scraped(r, 'counter', 'amp_receipts_outbox_dropped_total', droppedHelp, [], () => m.receipts.outboxDropped);
  scraped(r, 'gauge', 'amp_uptime_seconds', 'Seconds since the server started', [], () =>
    Math.floor((Date.now() - m.startedAt) / 1000),
  );
}

/**
 * Spec §20's per-agent abuse counters over the last 24 h, for the agents with the most blocked,
 * then sent, messages (at most TOP_AGENTS series per metric: bounded cardinality), labelled by
 * address (the id when the agent is gone).
 */
function registerAbuseMetrics(r: Registry, m: MetricSources): void {
  const blockedHelp = 'Routes refused as blocked (abuse counters, all agents)';
  scraped(r, 'counter', 'amp_route_blocked_total', blockedHelp, [], () => m.abuse.blockedTotal);
  scraped(r, 'gauge', 'amp_abuse_tracked_agents', 'Agents with abuse counts in the last 24 h', [], () =>
    m.abuse.tracked(),
  );
  const metrics = [
    ['total_messages', 'Messages the agent sent that were accepted, last 24 h (top agents)'],
    ['blocked', 'Routes of the agent refused: signature, policy, suspension, rate limit; last 24 h (top agents)'],
    ['quarantined', 'Messages of the agent quarantined, last 24 h (top agents; no quarantine yet: 0)'],
    ['flagged', 'Messages of the agent flagged, last 24 h (top agents; no content flags yet: 0)'],
  ] as const;
  for (const [key, help] of metrics) {
    scraped(r, 'gauge', `amp_agent_${key}_24h`, help, ['agent'], () =>
      m.abuse.top().map((row) => [{ agent: m.agents.find(row.agentId)?.address ?? row.agentId }, row[key]]),
    );
  }
}

/** The store: queue depths, bytes on disk, entries per database (msgindex shows what acked messages leave). */
function registerStoreMetrics(r: Registry, store: MetricSources['store'], agents: Agents): void {
  const depthHelp = 'Messages in the relay queue (pending, plus expired ones the sweeper has not removed yet)';
  scraped(r, 'gauge', 'amp_queue_depth', depthHelp, [], () => store.queueDepths(0).total);
  const topHelp = `Pending messages of the ${TOP_QUEUES} agents with the deepest queues (among queues used since start)`;
  scraped(r, 'gauge', 'amp_queue_depth_top', topHelp, ['agent'], () =>
    store.queueDepths(TOP_QUEUES).agents.map((a) => [{ agent: agents.find(a.agentId)?.address ?? a.agentId }, a.depth]),
  );
  // One dataStats() per scrape: the file size is read by the first gauge and reused by the others.
  let stats: DataStats | undefined;
  scraped(r, 'gauge', 'amp_store_file_bytes', 'Size of the LMDB data file (amp.lmdb)', [], () => {
    stats = store.dataStats();
    return stats.fileBytes;
  });
  const perDb = (pick: (s: { entries: number; bytes: number }) => number) => (): Samples =>
    Object.entries((stats ??= store.dataStats()).dbs).map(([db, s]) => [{ db }, pick(s)]);
  scraped(
    r,
    'gauge',
    'amp_store_entries',
    'Entries per store database',
    ['db'],
    perDb((s) => s.entries),
  );
  scraped(
    r,
    'gauge',
    'amp_store_db_bytes',
    'Bytes of the pages each store database uses',
    ['db'],
    perDb((s) => s.bytes),
  );
  const writableHelp = '1 while store writes commit, 0 while they fail (disk or map full)';
  scraped(r, 'gauge', 'amp_store_writable', writableHelp, [], () => (store.writeState().ok ? 1 : 0));
}
