// Operators' views of one tenant (the `amp-relay admin` CLI's server side): the agents with their
// state and queue, the queues at a glance, and deregistering an agent. Callers hold an `amp:admin`
// JWT of the tenant (checked by the route); another tenant's agent answers 404, as in suspension.ts.

import { AmpError, invalidField, isoTime } from '../../proto/index.js';
import type { AgentRecord, DirectoryStore, QueueStore } from '../store/types.js';
import type { Agents } from './agents.js';
import { agentPageQuery, type Directory, nextCursor } from './directory.js';
import type { Sessions } from './sessions.js';
import { type AdminCaller, effectiveStatus } from './suspension.js';
import type { AdminActions } from './admin-actions.js';

/** A queues view walks the tenant's agents a page at a time, and stops after this many. */
export const MAX_QUEUE_SCAN_AGENTS = 10_000;
const SCAN_PAGE = 500;
const DEFAULT_TOP = 20;
const MAX_TOP = 200;
/** Only the latest API keys are read for "last seen" (each is one read). */
const LAST_SEEN_KEYS = 4;

const ageSeconds = (at: number | null, now: number) =>
  at === null ? null : Math.max(0, Math.floor((now - at) / 1000));
const isoOrNull = (ms: number | null | undefined) => (ms === null || ms === undefined ? null : isoTime(ms));

export class AdminView {
  constructor(
    private readonly agents: Agents,
    private readonly store: DirectoryStore & QueueStore,
    private readonly sessions: Sessions,
    private readonly directory: Directory,
    /** Where deregistrations are recorded for the audit log. */
    private readonly actions?: AdminActions,
  ) {}

  /**
   * GET admin/agents: a page of the tenant's agents (`limit`, `cursor`, `search` as GET agents);
   * `q`: a case-insensitive substring of the address, name, alias or id.
   */
  listAgents(tenant: string, q: URLSearchParams): Record<string, unknown> {
    const query = agentPageQuery(q);
    const text = (q.get('q') ?? '').trim().toLowerCase();
    const page = this.store.listAgentPage(tenant, text === '' ? query : { ...query, search: text, byId: true });
    const now = Date.now();
    return {
      tenant,
      agents: page.agents.map((a) => this.row(a, now)),
      total: page.total,
      cursor: nextCursor(page),
      has_more: page.more,
    };
  }

  /** GET admin/agents/{id or address}: one agent of the tenant. */
  agent(tenant: string, agentId: string): Record<string, unknown> {
    return this.row(this.target(tenant, agentId), Date.now());
  }

  /** DELETE admin/agents/{id or address}: deregister as the agent itself would (DELETE agents/me). */
  async deregister(admin: AdminCaller, agentId: string): Promise<Record<string, unknown>> {
    const a = this.target(admin.tenant, agentId);
    const out = { agent_id: a.id, ...(await this.directory.deregister(a)) };
    await this.actions?.record({
      type: 'agent_deregistered',
      tenant: a.tenant,
      actorEmail: admin.email,
      ip: admin.ip ?? '',
      target: a.address,
      targetId: a.id,
    });
    return out;
  }

  /**
   * GET admin/queues: totals and the deepest queues (`limit`, default 20). Depths come from the
   * store's in-memory queue index (one read per non-empty queue for its oldest message); at most
   * MAX_QUEUE_SCAN_AGENTS agents are walked, and `complete: false` says the tenant has more.
   */
  queues(tenant: string, q: URLSearchParams): Record<string, unknown> {
    const top = topLimit(q.get('limit'));
    const now = Date.now();
    const rows: { agent: AgentRecord; depth: number; oldest: number | null }[] = [];
    let scanned = 0;
    let after = '';
    let more = true;
    while (more && scanned < MAX_QUEUE_SCAN_AGENTS) {
      const limit = Math.min(SCAN_PAGE, MAX_QUEUE_SCAN_AGENTS - scanned);
      const page = this.store.listAgentPage(tenant, { after, limit, search: '' });
      for (const agent of page.agents) {
        const head = this.store.queueHead(agent.id, now);
        if (head.depth > 0) rows.push({ agent, depth: head.depth, oldest: head.oldestQueuedAt });
      }
      scanned += page.agents.length;
      more = page.more && page.agents.length > 0;
      after = page.agents[page.agents.length - 1]?.address ?? after;
    }
    const oldest = rows.reduce<number | null>(
      (m, r) => (r.oldest !== null && (m === null || r.oldest < m) ? r.oldest : m),
      null,
    );
    rows.sort((a, b) => b.depth - a.depth || a.agent.address.localeCompare(b.agent.address));
    return {
      tenant,
      total_messages: rows.reduce((n, r) => n + r.depth, 0),
      agents_with_messages: rows.length,
      oldest_queued_at: isoOrNull(oldest),
      oldest_age_seconds: ageSeconds(oldest, now),
      agents: rows.slice(0, top).map((r) => ({
        agent_id: r.agent.id,
        address: r.agent.address,
        depth: r.depth,
        oldest_queued_at: isoOrNull(r.oldest),
        oldest_age_seconds: ageSeconds(r.oldest, now),
      })),
      scanned_agents: scanned,
      complete: !more,
    };
  }

  private row(a: AgentRecord, now: number): Record<string, unknown> {
    const status = effectiveStatus(a, now);
    const s = a.suspension;
    const head = this.store.queueHead(a.id, now);
    return {
      agent_id: a.id,
      id: a.id,
      address: a.address,
      name: a.name,
      alias: a.alias ?? null,
      status,
      suspended: status === 'suspended',
      suspension:
        s && status === 'suspended'
          ? { reason: s.reason, by: s.by, suspended_at: isoTime(s.at), expires_at: isoOrNull(s.until) }
          : null,
      online: this.sessions.isOnline(a.id),
      queue_depth: head.depth,
      oldest_queued_at: isoOrNull(head.oldestQueuedAt),
      registered_at: isoTime(a.registered_at),
      last_seen_at: isoOrNull(this.lastSeen(a)),
    };
  }

  /** The latest use of one of its API keys (written at most every few minutes), or null. */
  private lastSeen(a: AgentRecord): number | null {
    let last = a.last_seen_at ?? null;
    for (const hash of a.key_hashes.slice(-LAST_SEEN_KEYS)) {
      const used = this.store.getApiKey(hash)?.last_used_at ?? null;
      if (used !== null && (last === null || used > last)) last = used;
    }
    return last;
  }

  /**
   * The agent by id, by address (full or short: name@tenant.provider), or as `name@tenant`, if it
   * lives in the admin's tenant; any other answers 404 (nothing leaks across tenants).
   */
  private target(tenant: string, agentId: string): AgentRecord {
    const [name, domain] = agentId.toLowerCase().split('@');
    const a = !agentId.includes('@')
      ? this.agents.find(agentId)
      : domain === tenant
        ? this.store.findAgentByName(tenant, name)
        : this.agents.findByAddress(agentId);
    if (!a || a.tenant !== tenant) throw new AmpError('not_found', 'No such agent', { field: 'agent_id' });
    return a;
  }
}

function topLimit(raw: string | null): number {
  if (raw === null || raw === '') return DEFAULT_TOP;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw invalidField('limit', 'limit must be a positive whole number');
  return Math.min(Number(raw), MAX_TOP);
}
