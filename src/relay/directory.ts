// Agents looking at themselves and each other (spec §7): PATCH/DELETE agents/me, the Agent Card,
// the tenant-scoped listing, and resolve. Nothing here changes an address, name, tenant or key.

import { AmpError, type AgentUpdateRequest, CLOSE, invalidField, isoTime } from '../../proto/index.js';
import type { AgentPage, AgentPageQuery, AgentRecord, DirectoryStore } from '../store/types.js';
import type { Agents } from './agents.js';
import { type AmpLifecycleHooks, providerUrls, type RelayContext } from './context.js';
import type { Sessions } from './sessions.js';
import { effectiveStatus } from './suspension.js';
import { checkWebhookUrl } from './webhook-url.js';
import type { Webhooks } from './webhooks.js';

const CARD_LIFETIME_MS = 182 * 24 * 3600 * 1000;
const DEFAULT_LIST_LIMIT = 50;
const MAX_LIST_LIMIT = 200;

/** `limit`, `cursor` and `search` of an agent listing (§7.4), checked. */
export function agentPageQuery(q: URLSearchParams): AgentPageQuery {
  const limitRaw = q.get('limit');
  let limit = DEFAULT_LIST_LIMIT;
  if (limitRaw !== null && limitRaw !== '') {
    if (!/^\d+$/.test(limitRaw) || Number(limitRaw) < 1)
      throw invalidField('limit', 'limit must be a positive whole number');
    limit = Math.min(Number(limitRaw), MAX_LIST_LIMIT);
  }
  let after = '';
  const cursor = q.get('cursor');
  if (cursor) {
    after = Buffer.from(cursor, 'base64url').toString('utf8');
    if (!after.includes('@')) throw invalidField('cursor', 'cursor is not one this server gave out');
  }
  return { after, limit, search: (q.get('search') ?? '').toLowerCase() };
}

/** The opaque cursor of the page after this one: base64url of its last address; null at the end. */
export function nextCursor(page: AgentPage): string | null {
  const last = page.agents[page.agents.length - 1];
  return page.more && last ? Buffer.from(last.address, 'utf8').toString('base64url') : null;
}

export class Directory {
  constructor(
    private readonly ctx: RelayContext,
    private readonly agents: Agents,
    private readonly store: DirectoryStore,
    private readonly sessions: Sessions,
    private readonly identity: AmpLifecycleHooks,
    /** §18: told when an agent's webhook changes (its parked items are tried again). */
    private readonly webhooks?: Pick<Webhooks, 'changed' | 'gone'>,
  ) {}

  /** PATCH agents/me: alias, delivery.prefer_websocket, metadata, capabilities (checked by decodeAgentUpdateBody). */
  update(agent: AgentRecord, req: AgentUpdateRequest): Promise<Record<string, unknown>> {
    const patch: Partial<AgentRecord> = {};
    if (req.alias !== undefined) patch.alias = req.alias ?? undefined;
    if (req.prefer_websocket !== undefined) patch.prefer_websocket = req.prefer_websocket;
    if (req.metadata !== undefined) patch.metadata_json = JSON.stringify(req.metadata);
    if (req.capabilities !== undefined) patch.capabilities = req.capabilities;
    return this.agents.serialized(agent.id, async () => {
      const fresh = this.agents.current(agent.id);
      const updated: AgentRecord = { ...fresh, ...patch };
      if ('alias' in patch && patch.alias === undefined) delete updated.alias;
      await this.applyWebhook(updated, req);
      await this.store.putAgent(updated);
      // A new URL or secret tries the parked items again; a removed webhook drops them (obsolete).
      if (req.webhook_url !== undefined || req.webhook_secret !== undefined) await this.webhooks?.changed(updated.id);
      return { updated: true, address: updated.address };
    });
  }

  /** §7.1, §18: webhook_url and webhook_secret merged field by field; a new URL passes the SSRF rules. */
  private async applyWebhook(updated: AgentRecord, req: AgentUpdateRequest): Promise<void> {
    if (req.webhook_url === null) {
      delete updated.webhook_url;
      delete updated.webhook_secret;
      return;
    }
    if (req.webhook_secret !== undefined) updated.webhook_secret = req.webhook_secret;
    if (req.webhook_url === undefined) return;
    if (updated.webhook_secret === undefined) {
      throw invalidField('delivery.webhook_secret', 'webhook_url requires a webhook_secret of at least 16 characters');
    }
    await checkWebhookUrl(req.webhook_url, this.agents.webhookAllow);
    updated.webhook_url = req.webhook_url;
  }

  /**
   * DELETE agents/me: API keys and the key fingerprint revoked, sessions closed, queue deleted,
   * the name held for AMP_DEREGISTRATION_HOLD_DAYS.
   */
  async deregister(agent: AgentRecord): Promise<Record<string, unknown>> {
    let gone: AgentRecord | undefined;
    const out = await this.agents.serialized(agent.id, async () => {
      const { config } = this.ctx;
      const store = this.store;
      const now = Date.now();
      const fresh = this.agents.current(agent.id);
      await Promise.all([
        this.agents.revokeApiKeys(fresh, now),
        store.revokeKey({
          fingerprint: fresh.fingerprint,
          fingerprint_raw: fresh.fingerprint_raw,
          agent_address: fresh.address,
          revoked_at: now,
          reason: 'agent_deregistered',
        }),
      ]);
      this.sessions.closeAgent(fresh.id, CLOSE.AUTH_FAILED, 'agent_deregistered');
      const holdUntil = config.deregistrationHoldDays > 0 ? now + config.deregistrationHoldDays * 24 * 3600 * 1000 : 0;
      await store.deleteAgent(fresh, holdUntil);
      // Its webhook's items (parked, deferred, waiting) are attempted at once: no agent, they leave.
      if (fresh.webhook_url) await this.webhooks?.gone(fresh.id);
      this.ctx.logger.warn(
        { event: 'agent_deregistered', agent: fresh.id, address: fresh.address },
        'agent deregistered',
      );
      gone = fresh;
      return { deregistered: true, address: fresh.address, deregistered_at: isoTime(now) };
    });
    // Outside the agent's lock: the AID side may take it to follow the change.
    if (gone) await this.identity.followAmpDeregistration(gone);
    return out;
  }

  /** GET agents/me/card (§7.2): unsigned, provider-asserted. */
  card(agent: AgentRecord, host: string, proto: string): Record<string, unknown> {
    const now = Date.now();
    return {
      amp_agent_card: '1.0',
      id: agent.client_agent_id ?? agent.id,
      address: agent.address,
      alias: agent.alias ?? null,
      public_key: agent.public_key_pem,
      key_algorithm: 'Ed25519',
      fingerprint: agent.fingerprint,
      provider_endpoint: providerUrls(this.ctx.config, host, proto).endpoint,
      capabilities: agent.capabilities,
      issued_at: isoTime(now),
      expires_at: isoTime(now + CARD_LIFETIME_MS),
      signature: null,
      provider_asserted: true,
    };
  }

  /**
   * GET agents (§7.4): the caller's tenant only, by address, with an opaque cursor (base64url of
   * the last address listed: the next page seeks past it, so it stays valid across inserts and
   * deletes). Costs the page, not the tenant (the store's ordered index).
   */
  list(caller: AgentRecord, q: URLSearchParams): Record<string, unknown> {
    if (effectiveStatus(caller, Date.now()) === 'suspended')
      throw new AmpError('agent_suspended', 'This agent is suspended');
    const tenant = q.get('tenant');
    if (tenant !== null && tenant !== '' && tenant.toLowerCase() !== caller.tenant) {
      throw new AmpError('forbidden', 'Agents of other tenants cannot be listed', { field: 'tenant' });
    }
    const page = this.store.listAgentPage(caller.tenant, agentPageQuery(q));
    return {
      agents: page.agents.map((a) => ({
        address: a.address,
        alias: a.alias ?? null,
        online: this.sessions.isOnline(a.id),
      })),
      total: page.total,
      cursor: nextCursor(page),
      has_more: page.more,
    };
  }

  /** GET agents/resolve/{address} (§7.5): any agent on this provider, by full or short address. */
  resolve(caller: AgentRecord, raw: string): Record<string, unknown> {
    const { agent } = this.agents.resolveRecipient(raw, caller, 'address');
    return {
      address: agent.address,
      short_address: agent.short_address,
      alias: agent.alias ?? null,
      public_key: agent.public_key_pem,
      key_algorithm: 'Ed25519',
      fingerprint: agent.fingerprint,
      fingerprint_raw: agent.fingerprint_raw,
      online: this.sessions.isOnline(agent.id),
      capabilities: agent.capabilities,
    };
  }
}
