// What operators see of the traffic: one `info` line per HTTP request, `debug` lines per message
// (routed, pushed, acked, expired), and the Prometheus counters and histograms behind them. The
// relay, the store and the HTTP layer call this through small interfaces (RelayObserver,
// StoreObserver, HttpObserver); prom-client stays in src/ops.
//
// Hot path: message counters are plain numbers that prom-client reads at scrape time (`collect`),
// so a routed message costs an increment; debug lines are built only when debug is on (checked
// once: the level is fixed for the server's life). A request costs one histogram observation and
// one log line (pino to an asynchronous stdout, see logger.ts).

import { Counter, Histogram, Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { AckVia, RelayObserver, Via } from '../relay/observer.js';
import type { StoreObserver } from '../store/types.js';
import { CommitWindow } from './commit-window.js';
import { scraped } from './metrics.js';

/** What the HTTP layer reports of each answered request. */
export interface HttpObserver {
  /** `route` is the route template (`/api/v1/messages/pending/:id`), never the raw path. */
  request(method: string, route: string, status: number, seconds: number, agentId: string | undefined): void;
}

/** What the AID token endpoint reports (agent-identity §5). */
export interface TokenObserver {
  tokenIssued(): void;
  /** `reason` is the error code of the refusal (a catalog code: bounded). */
  tokenDenied(reason: string): void;
}

/** HTTP latency buckets, seconds: 0.25 ms (a cached GET) to 5 s (a request stuck behind the disk). */
const HTTP_BUCKETS = [0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Commit latency buckets, seconds: an LMDB commit with fsync takes about 0.1 to 20 ms. */
const COMMIT_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];
/** Methods kept as label values; anything else is `OTHER` (bounded cardinality). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

export class Telemetry implements RelayObserver, StoreObserver, HttpObserver, TokenObserver {
  private readonly debug: boolean;
  /**
   * Request lines skip redaction: they hold fixed fields (method, route template, status, ms, agent
   * id), never a secret, and pino's redaction (wildcard paths) costs about 5 µs a line, several
   * percent of a request. Every other line goes through the redacting logger.
   */
  private readonly requests: Logger;
  private readonly routedBy = { rest: 0, ws: 0 };
  private readonly ackedBy: Record<AckVia, number> = { rest: 0, ws: 0, webhook: 0 };
  private expirations = 0;
  private readonly http: Histogram<'method' | 'route' | 'status'>;
  private readonly commits: Histogram;
  private readonly issued: Counter;
  private readonly denied: Counter<'reason'>;

  /** This server's metrics (a Registry per server: a process may run several). */
  readonly registry = new Registry();
  /** Recent commit latencies, for the console's live percentiles. */
  readonly recentCommits = new CommitWindow();

  constructor(private readonly logger: Logger) {
    const registry = this.registry;
    this.debug = logger.isLevelEnabled('debug');
    this.requests = logger.child({}, { redact: [] });
    const byVia = (o: Record<string, number>) => () =>
      Object.entries(o).map(([v, n]): [Record<string, string>, number] => [{ method: v }, n]);
    const r = registry;
    scraped(
      r,
      'counter',
      'amp_messages_routed_total',
      'Messages accepted and committed, by how they came in',
      ['method'],
      byVia(this.routedBy),
    );
    // amp_messages_pushed_total is read from the push counters (ops/metrics.ts), as amp_ws_pushes_total.
    const ackedHelp = 'Messages acknowledged by their recipient, by how (rest, ws, or its webhook)';
    scraped(r, 'counter', 'amp_messages_acked_total', ackedHelp, ['method'], byVia(this.ackedBy));
    const expiredHelp = 'Pending messages dropped at their relay expiry, unacknowledged';
    scraped(r, 'counter', 'amp_messages_expired_total', expiredHelp, [], () => this.expirations);
    this.http = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'REST request latency, from the request line to the answer written, by route template',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers: [registry],
    });
    this.commits = new Histogram({
      name: 'amp_store_commit_duration_seconds',
      help: 'LMDB transaction latency: from its first write issued to its commit (fsync included)',
      buckets: COMMIT_BUCKETS,
      registers: [registry],
    });
    this.issued = new Counter({
      name: 'aid_tokens_issued_total',
      help: 'AID access tokens issued',
      registers: [registry],
    });
    this.denied = new Counter({
      name: 'aid_tokens_denied_total',
      help: 'AID token requests refused, by error code',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  request(method: string, route: string, status: number, seconds: number, agentId: string | undefined): void {
    const m = METHODS.has(method) ? method : 'OTHER';
    this.http.observe({ method: m, route, status }, seconds);
    const ms = Math.round(seconds * 100_000) / 100;
    if (agentId === undefined) this.requests.info({ method: m, route, status, ms }, 'request');
    else this.requests.info({ method: m, route, status, ms, agent: agentId }, 'request');
  }

  routed(via: Via, id: string, senderId: string, recipientId: string): void {
    this.routedBy[via]++;
    if (this.debug) this.logger.debug({ event: 'routed', via, id, from: senderId, to: recipientId }, 'message routed');
  }

  pushed(id: string, recipientId: string, sessions: number): void {
    if (this.debug) this.logger.debug({ event: 'pushed', id, to: recipientId, sessions }, 'message pushed');
  }

  acked(via: AckVia, recipientId: string, ids: readonly string[]): void {
    this.ackedBy[via] += ids.length;
    if (this.debug) this.logger.debug({ event: 'acked', via, ids, by: recipientId }, 'messages acknowledged');
  }

  expired(agentId: string, ids: readonly string[]): void {
    this.expirations += ids.length;
    if (this.debug) this.logger.debug({ event: 'expired', ids, to: agentId }, 'messages expired unacknowledged');
  }

  committed(seconds: number): void {
    this.commits.observe(seconds);
    this.recentCommits.add(seconds * 1000);
  }

  /** Messages routed since start (REST and WebSocket). */
  get routedTotal(): number {
    return this.routedBy.rest + this.routedBy.ws;
  }

  tokenIssued(): void {
    this.issued.inc();
  }

  tokenDenied(reason: string): void {
    this.denied.inc({ reason });
  }
}
