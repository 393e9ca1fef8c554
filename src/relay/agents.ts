// Agents: registration (§4), key recovery (§4.3), API-key authentication (§1, §6), self view (§7.1)
// and resolving addresses on our own provider (§2).

import {
  AmpError,
  API_KEY_RE,
  CLOSE,
  MAX_ADDRESS_CHARS,
  MAX_FUTURE_SKEW_S,
  PROOF_REPLAY_TTL_S,
  PROOF_WINDOW_S,
  decodeRegisterBody,
  expandAddress,
  formatAddress,
  invalidField,
  isoTime,
  localParts,
  newAgentId,
  newApiKey,
  parseAddress,
  registerProofString,
  wsAuthString,
  decodeSignature,
} from '../../proto/index.js';
import { safeEqual } from '../crypto/hash.js';
import { hashApiKey, parsePublicKeyPem } from '../crypto/keys.js';
import { ReplayCache } from '../crypto/replay.js';
import type { Ed25519Verifier } from '../crypto/verifier.js';
import { KeyedLock } from '../store/keyed-lock.js';
import type { AgentRecord, DirectoryStore } from '../store/types.js';
import type { Sessions } from './sessions.js';
import { providerUrls, type RelayContext } from './context.js';
import { nameSuggestions } from './suggestions.js';
import type { AllowList } from '../outbound/index.js';
import { checkWebhookUrl, webhookAllowList } from './webhook-url.js';

const LAST_USED_WRITE_INTERVAL_MS = 60_000;
const WS_AUTH_WINDOW_S = 60;
const WS_AUTH_REPLAY_CACHE_S = 120;

export type SignedAuthFailure = 'invalid_token' | 'signature_invalid' | 'timestamp_out_of_window' | 'replay_detected';

export interface RegisterOutcome {
  status: 200 | 201;
  body: Record<string, unknown>;
}

export class Agents {
  /** Names and fingerprints being registered right now (between the checks and the commit). */
  private readonly reserved = new Set<string>();
  /** Key-recovery proofs already used, by signature. */
  private readonly usedProofs = new ReplayCache(PROOF_REPLAY_TTL_S * 1000);
  private readonly agentLocks = new KeyedLock();
  /** Signed WebSocket auth frames already used. */
  private readonly usedWsAuth = new ReplayCache(WS_AUTH_REPLAY_CACHE_S * 1000);

  constructor(
    private readonly ctx: RelayContext,
    private readonly store: DirectoryStore,
    private readonly sessions: Sessions,
    /** The server's one verifier; it keeps agents' keys parsed. */
    readonly verifier: Ed25519Verifier,
  ) {
    this.webhookAllow = webhookAllowList(ctx.config.webhookAllowHosts);
  }

  /** AMP_WEBHOOK_ALLOW_HOSTS, parsed. */
  readonly webhookAllow: AllowList;

  /** The agent as stored now, if it still exists. */
  find(id: string): AgentRecord | undefined {
    return this.store.getAgent(id);
  }

  /** The agent behind an `Authorization` (or `X-API-Key`) header value, or 401. */
  authenticate(authorization: string, xApiKey = ''): AgentRecord {
    return this.authenticateKey(authorization, xApiKey).agent;
  }

  /** Like authenticate(), also naming the key (sessions remember it for revocation). */
  authenticateKey(authorization: string, xApiKey = ''): { agent: AgentRecord; keyHash: string } {
    const key = extractApiKey(authorization) ?? (API_KEY_RE.test(xApiKey.trim()) ? xApiKey.trim() : undefined);
    if (!key) throw new AmpError('unauthorized', 'Missing API key: send Authorization: Bearer <api_key>');
    const hash = hashApiKey(key);
    const rec = this.store.getApiKey(hash);
    const now = Date.now();
    if (!rec || rec.revoked_at !== null || (rec.expires_at !== null && rec.expires_at <= now)) {
      throw new AmpError('unauthorized', 'Invalid or expired API key');
    }
    const agent = this.store.getAgent(rec.agent_id);
    if (!agent) throw new AmpError('unauthorized', 'Invalid or expired API key');
    if (rec.last_used_at === null || now - rec.last_used_at > LAST_USED_WRITE_INTERVAL_MS) {
      // Bookkeeping only: a lost last_used_at write must not fail the request.
      this.store.putApiKey(hash, { ...rec, last_used_at: now }).catch(() => {});
    }
    return { agent, keyHash: hash };
  }

  /**
   * §17.1 signed session: Ed25519 by the agent's key over `amp-ws-auth\n{timestamp}\n{address}`,
   * `{address}` exactly as sent (full or short), |now - t| <= 60 s, each (address, t, signature)
   * accepted once. Resolves to the agent or to the close reason.
   */
  async authenticateSigned(
    address: string,
    timestamp: string,
    signature: string,
  ): Promise<AgentRecord | SignedAuthFailure> {
    const now = Date.now();
    const agent = this.findByAddress(address);
    if (!agent) return 'invalid_token';
    if (Math.abs(now / 1000 - Number(timestamp)) > WS_AUTH_WINDOW_S) return 'timestamp_out_of_window';
    const sig = decodeSignature(signature);
    if (!sig) return 'signature_invalid';
    const replayKey = [address, timestamp, sig];
    // Claimed before the await so two concurrent uses cannot both pass; released if it fails.
    if (!this.usedWsAuth.claim(replayKey, now)) return 'replay_detected';
    const ok = await this.verifier.verify(
      agent.public_key_pem,
      Buffer.from(wsAuthString(timestamp, address), 'utf8'),
      sig,
    );
    if (!ok) this.usedWsAuth.release(replayKey);
    return ok ? agent : 'signature_invalid';
  }

  /** The agent whose full or short address this is (case-insensitive), if it lives here. */
  findByAddress(raw: string): AgentRecord | undefined {
    const address = raw.toLowerCase();
    if (!/^[\x21-\x7e]+$/.test(raw)) return undefined;
    const parsed = parseAddress(address, this.ctx.knownProviders);
    if (!parsed.provider || !this.ctx.knownProviders.includes(parsed.provider)) return undefined;
    const parts = localParts(address, parsed.provider);
    const agent = parts && this.store.findAgentByName(parts.tenant, parts.name);
    return agent && (agent.address === address || agent.short_address === address) ? agent : undefined;
  }

  /** The public key parsed, or 400 (a private key, a bad format) or key_revoked. */
  private registrableKey(publicKey: string) {
    const key = parsePublicKeyPem(publicKey);
    if (key === 'private_key') {
      throw invalidField(
        'public_key',
        'This is a private key. Never send it: send the public key instead (openssl pkey -in private.pem -pubout)',
      );
    }
    if (typeof key === 'string') throw invalidField('public_key', 'Invalid public key format');
    if (this.store.findRevokedKey(key.fingerprint)) {
      throw new AmpError('key_revoked', 'This key has been revoked and cannot be registered; generate a new keypair', {
        field: 'public_key',
      });
    }
    return key;
  }

  async register(body: unknown, host: string, forwardedProto: string, registrationKey = ''): Promise<RegisterOutcome> {
    const { config } = this.ctx;
    const store = this.store;
    const req = decodeRegisterBody(body, config.defaultTenant);
    const keyFromBody = (body as Record<string, unknown>).registration_key;
    this.checkRegistrationPolicy(req.tenant, registrationKey || (typeof keyFromBody === 'string' ? keyFromBody : ''));
    const key = this.registrableKey(req.public_key);
    // After the policy and key checks: the SSRF check resolves the name (§18).
    if (req.webhook) await checkWebhookUrl(req.webhook.url, this.webhookAllow);

    const address = formatAddress(req.name, req.tenant, config.providerDomain, req.scope);
    if (address.length > MAX_ADDRESS_CHARS) {
      throw invalidField(
        req.scope ? 'scope' : 'name',
        `The address would be ${address.length} characters long; at most ${MAX_ADDRESS_CHARS} are allowed`,
      );
    }
    const shortAddress = formatAddress(req.name, req.tenant, config.providerDomain);
    const urls = providerUrls(config, host, forwardedProto);

    const existing = store.findAgentByName(req.tenant, req.name);
    if (existing) {
      if (req.proof && existing.fingerprint === key.fingerprint) return this.recover(existing, req.proof, urls);
      throw this.nameTaken(req.name, req.tenant);
    }
    if (store.nameHeldUntil(req.tenant, req.name, Date.now()) !== undefined) throw this.nameTaken(req.name, req.tenant);
    const nameKey = `name:${req.tenant}/${req.name}`;
    const fpKey = `fp:${key.fingerprint}`;
    if (this.reserved.has(nameKey)) throw this.nameTaken(req.name, req.tenant);
    if (store.findAgentByFingerprint(key.fingerprint) || this.reserved.has(fpKey)) {
      throw new AmpError('key_already_registered', 'This public key is already registered to another agent', {
        field: 'public_key',
        details: { fingerprint: key.fingerprint },
      });
    }

    this.reserved.add(nameKey).add(fpKey);
    try {
      const now = Date.now();
      const agent: AgentRecord = {
        id: newAgentId(),
        name: req.name,
        tenant: req.tenant,
        address,
        short_address: shortAddress,
        ...{ public_key_pem: key.pem, public_key_hex: key.raw.toString('hex') },
        fingerprint: key.fingerprint,
        fingerprint_raw: key.fingerprintRaw,
        prefer_websocket: req.prefer_websocket,
        ...(req.webhook && { webhook_url: req.webhook.url, webhook_secret: req.webhook.secret }),
        metadata_json: JSON.stringify(req.metadata),
        capabilities: req.capabilities,
        status: config.registrationMode === 'approval' ? 'pending' : 'active',
        key_hashes: [],
        registered_at: now,
      };
      if (req.scope) {
        agent.platform = req.scope.platform;
        agent.repo = req.scope.repo;
      }
      if (req.alias !== undefined) agent.alias = req.alias;
      if (req.client_agent_id !== undefined) agent.client_agent_id = req.client_agent_id;
      const apiKey = await this.issueKey(agent, now).catch((e: unknown) => {
        // A shared store (cluster mode) may refuse the name itself: another node registered it
        // between the checks above and this write. Answer as the checks do (with suggestions).
        if (e instanceof AmpError && e.code === 'name_taken') throw this.nameTaken(req.name, req.tenant);
        throw e;
      });
      this.ctx.logger.info({ agent: agent.id, address: agent.address }, 'agent registered');
      return { status: 201, body: this.registrationBody(agent, apiKey, urls) };
    } finally {
      this.reserved.delete(nameKey);
      this.reserved.delete(fpKey);
    }
  }

  /**
   * §4.3: a signed re-registration re-issues the API key and revokes all earlier ones. The proof
   * is claimed before the signature check awaits, and recoveries of one agent run one at a time,
   * so a proof works once and at most one key survives concurrent recoveries.
   */
  private async recover(
    stale: AgentRecord,
    proof: { timestamp: string; signature: string },
    urls: ReturnType<typeof providerUrls>,
  ): Promise<RegisterOutcome> {
    const now = Date.now();
    const fail = (why: string) => {
      this.ctx.logger.warn({ agent: stale.id, why }, 'key recovery refused');
      return new AmpError('signature_invalid', `Key recovery proof refused: ${why}`, { field: 'proof' });
    };
    if (Number(proof.timestamp) > now / 1000 + MAX_FUTURE_SKEW_S) {
      throw new AmpError(
        'timestamp_future',
        `proof.timestamp is more than ${MAX_FUTURE_SKEW_S} s ahead of the server clock`,
        { field: 'proof.timestamp' },
      );
    }
    if (now / 1000 - Number(proof.timestamp) > PROOF_WINDOW_S) throw fail(`timestamp older than ${PROOF_WINDOW_S} s`);
    const sig = decodeSignature(proof.signature);
    if (!sig) throw fail('signature is not a 64-byte base64 Ed25519 signature');
    if (!this.usedProofs.claim([sig], now)) throw fail('proof already used');

    const ok = await this.verifier.verify(
      stale.public_key_pem,
      Buffer.from(registerProofString(proof.timestamp, stale.address)),
      sig,
    );
    if (!ok) throw fail('signature does not verify with the registered key');

    return this.serialized(stale.id, async () => {
      const agent = this.current(stale.id);
      if (agent.fingerprint !== stale.fingerprint) throw fail('the key changed while the proof was checked');
      const at = Date.now();
      const revoked = this.revokeApiKeys(agent, at);
      const apiKey = await this.issueKey(agent, at);
      await revoked;
      this.closeSessionsOfKeys(agent.id, new Set(agent.key_hashes.slice(0, -1)), 'key_revoked');
      this.ctx.logger.info(
        { agent: agent.id, event: 'api_key_recovered' },
        'api key recovered with a signed proof; earlier keys revoked',
      );
      return { status: 200 as const, body: this.registrationBody(agent, apiKey, urls) };
    });
  }

  /** Revoke every API key of the agent that is still valid; resolves once durable. */
  async revokeApiKeys(agent: AgentRecord, at: number): Promise<void> {
    const store = this.store;
    const writes: Promise<void>[] = [];
    for (const h of agent.key_hashes) {
      const rec = store.getApiKey(h);
      if (rec && rec.revoked_at === null) writes.push(store.putApiKey(h, { ...rec, revoked_at: at }));
    }
    await Promise.all(writes);
  }

  /** A fingerprint a registration is claiming right now. */
  isReserved(fingerprint: string): boolean {
    return this.reserved.has(`fp:${fingerprint}`);
  }

  /** Close the agent's sessions that were opened with one of these (now revoked) API keys. */
  closeSessionsOfKeys(agentId: string, keyHashes: ReadonlySet<string>, reason: string): void {
    this.sessions.closeAgent(
      agentId,
      CLOSE.AUTH_FAILED,
      reason,
      (s) => s.keyHash !== undefined && keyHashes.has(s.keyHash),
    );
  }

  /**
   * The agent's record as stored now, for use inside `serialized`: a deregistered agent is gone
   * (401), never written back from a stale copy.
   */
  current(agentId: string): AgentRecord {
    const a = this.store.getAgent(agentId);
    if (!a) throw new AmpError('unauthorized', 'This agent no longer exists');
    return { ...a };
  }

  /** Run `fn` after every earlier call for the same agent has settled. */
  serialized<T>(agentId: string, fn: () => Promise<T>): Promise<T> {
    return this.agentLocks.run(agentId, fn);
  }

  async issueKey(agent: AgentRecord, now: number): Promise<string> {
    const apiKey = newApiKey();
    const hash = hashApiKey(apiKey);
    agent.key_hashes = [...agent.key_hashes, hash];
    await Promise.all([
      this.store.putApiKey(hash, {
        agent_id: agent.id,
        created_at: now,
        expires_at: null,
        revoked_at: null,
        last_used_at: null,
      }),
      this.store.putAgent(agent),
    ]);
    return apiKey;
  }

  /** Tenant allow-list (any mode), and the tenant registration key in mode `key`. */
  private checkRegistrationPolicy(tenant: string, presentedKey: string): void {
    const { config } = this.ctx;
    if (config.registrationTenants.length > 0 && !config.registrationTenants.includes(tenant)) {
      throw new AmpError('tenant_access_denied', `Registration is not open in tenant '${tenant}'`, { field: 'tenant' });
    }
    if (config.registrationMode !== 'key') return;
    const valid = config.registrationKeys.some((entry) => {
      const i = entry.indexOf(':');
      const t = entry.slice(0, i);
      return (t === '*' || t === tenant) && safeEqual(presentedKey, entry.slice(i + 1));
    });
    if (!valid) {
      this.ctx.logger.warn(
        { event: 'registration_key_refused', tenant },
        'registration refused: missing or wrong registration key',
      );
      throw new AmpError(
        'tenant_access_denied',
        `Registration in tenant '${tenant}' needs a valid registration key (X-Registration-Key header)`,
        { field: 'registration_key' },
      );
    }
  }

  private nameTaken(name: string, tenant: string): AmpError {
    const now = Date.now();
    const suggestions = nameSuggestions(
      name,
      (n) =>
        !this.store.findAgentByName(tenant, n) &&
        !this.reserved.has(`name:${tenant}/${n}`) &&
        this.store.nameHeldUntil(tenant, n, now) === undefined,
    );
    return new AmpError('name_taken', `Agent name '${name}' is already registered in tenant '${tenant}'`, {
      field: 'name',
      suggestions,
      details: { suggestions },
    });
  }

  private registrationBody(
    agent: AgentRecord,
    apiKey: string,
    urls: ReturnType<typeof providerUrls>,
  ): Record<string, unknown> {
    return {
      address: agent.address,
      short_address: agent.short_address,
      local_name: agent.name,
      agent_id: agent.id,
      tenant_id: agent.tenant,
      tenant: agent.tenant,
      api_key: apiKey,
      provider: { name: this.ctx.config.providerDomain, endpoint: urls.endpoint, route_url: urls.route_url },
      fingerprint: agent.fingerprint,
      registered_at: isoTime(agent.registered_at),
    };
  }

  /** §7.1 `GET agents/me`. */
  self(agent: AgentRecord): Record<string, unknown> {
    const body: Record<string, unknown> = {
      agent_id: agent.id,
      address: agent.address,
      short_address: agent.short_address,
      tenant: agent.tenant,
      alias: agent.alias ?? null,
      status: agent.status,
      delivery: {
        webhook_url: agent.webhook_url ?? null,
        webhook_secret_set: agent.webhook_secret !== undefined,
        prefer_websocket: agent.prefer_websocket,
      },
      key_algorithm: 'Ed25519',
      fingerprint: agent.fingerprint,
      capabilities: agent.capabilities,
      metadata: JSON.parse(agent.metadata_json) as unknown,
      online: this.sessions.isOnline(agent.id),
      registered_at: isoTime(agent.registered_at),
      last_seen_at: agent.last_seen_at !== undefined ? isoTime(agent.last_seen_at) : null,
    };
    return body;
  }

  /**
   * Expand and resolve a recipient address written by `sender`. Own-domain addresses resolve by
   * (tenant, name); extra scope labels must equal the agent's platform/repo.
   */
  resolveRecipient(raw: string, sender: AgentRecord, field = 'to'): { agent: AgentRecord; address: string } {
    return this.resolveExpanded(this.expandRecipient(raw, sender, field), field);
  }

  /** §4 expansion of a recipient address (400 when malformed) and its provider part. */
  expandRecipient(raw: string, sender: AgentRecord, field = 'to'): { address: string; provider: string } {
    const { config } = this.ctx;
    const exp = expandAddress(raw, { senderTenant: sender.tenant, domain: config.providerDomain });
    if (!exp.ok) {
      throw exp.problem === 'no_tenant'
        ? invalidField(field, `Address '${raw}' has no tenant; write name@tenant.${config.providerDomain}`)
        : invalidField(field, `'${raw}' is not a valid AMP address (name@tenant.provider)`);
    }
    return { address: exp.address, provider: parseAddress(exp.address, this.ctx.knownProviders).provider! };
  }

  /** Why an address on another provider gets no answer here: for a route, or for a resolve. */
  private foreignText(address: string, provider: string, field: string): string {
    const { config } = this.ctx;
    if (field !== 'to') {
      return `'${address}' is on provider '${provider}'; this provider resolves its own agents only (ask that provider)`;
    }
    const why =
      config.federationPins && config.federationMode !== 'closed'
        ? 'this provider does not federate with it'
        : "federation is not enabled here; send it to that provider's route_url";
    return `Recipient is on provider '${provider}', and ${why}`;
  }

  /** The agent of an expanded address: 422 `external_provider` when not ours, else 404 when unknown. */
  resolveExpanded(exp: { address: string; provider: string }, field = 'to'): { agent: AgentRecord; address: string } {
    const store = this.store;
    const { provider } = exp;
    if (!this.ctx.knownProviders.includes(provider)) {
      throw new AmpError('external_provider', this.foreignText(exp.address, provider, field), {
        field,
        details: { provider },
      });
    }
    const parts = localParts(exp.address, provider);
    const agent = parts && store.findAgentByName(parts.tenant, parts.name);
    if (
      !parts ||
      !agent ||
      (parts.platform !== undefined && (parts.platform !== agent.platform || parts.repo !== agent.repo))
    ) {
      throw new AmpError('not_found', 'Agent not found', { field, details: { address: exp.address } });
    }
    return { agent, address: exp.address };
  }
}

/** `Bearer <key>` (scheme case-insensitive) or a bare key in the §6 format. */
export function extractApiKey(header: string): string | undefined {
  const h = header.trim();
  if (!h) return undefined;
  const m = /^bearer\s+(\S+)$/i.exec(h);
  if (m) return m[1];
  return API_KEY_RE.test(h) ? h : undefined;
}
