// The directory in cluster mode: agents, their names and key fingerprints, API keys and the key
// revocation list in JetStream KV buckets, each held in memory by a watch (kv-mirror.ts) so reads
// stay synchronous. Names and fingerprints are unique across nodes by compare-and-set claims
// (claims.ts): of two nodes registering one name at once, one write succeeds and the other is
// refused with 409 `name_taken` (a fingerprint: 409 `key_already_registered`), as LMDB mode answers.
//
// Buckets (`${prefix}_...`): AGENTS (agent id -> AgentRecord), NAMES (`<tenant>.<name>` ->
// {agent_id} or {held_until}), FPRINTS (either fingerprint form -> agent id), APIKEYS (hash ->
// ApiKeyRecord), REVOKED (either fingerprint form -> RevokedKey; TTL 90 days). The indexes the hot
// path reads (by name, by fingerprint, the listing) are built from AGENTS alone, so a reader sees an
// agent and its indexes change together; NAMES and FPRINTS only arbitrate claims (and holds).
//
// Not here: an agent's queue and outbox (deleteAgent leaves them to the composite store).

import { AmpError } from '../../../proto/index.js';
import { AgentListing } from '../lmdb-directory.js';
import type { AgentPage, AgentPageQuery, AgentRecord, ApiKeyRecord, DirectoryStore, RevokedKey } from '../types.js';
import { claim, type Rollback, rollBack, type Verdict } from './claims.js';
import { decodeToken, encodeToken as enc } from './kv-keys.js';
import { type KvEntryOf, KvMirror } from './kv-mirror.js';
import type { NatsParts } from './parts.js';

const REVOCATION_MEMORY_MS = 90 * 24 * 3600 * 1000;
/** A claim whose agent record never appeared (its writer died between the two writes) is stale after this. */
const ORPHAN_CLAIM_MS = 60_000;

export interface NatsDirectoryOptions {
  /** A tenant also exists while it has identity registrations (wired to NatsRecords.hasPrefix). */
  tenantHasRecords?: (tenant: string) => boolean;
  /** Override ORPHAN_CLAIM_MS (tests). */
  orphanClaimMs?: number;
}

/** A NAMES value: the agent holding the name, or until when a deregistered name stays taken. */
interface NameClaim {
  agent_id?: string;
  held_until?: number;
}

export type AgentChanged = (agentId: string, agent: AgentRecord | undefined) => void;

const nameKey = (tenant: string, name: string) => `${enc(tenant)}.${enc(name)}`;
const fingerprintsOf = (a: AgentRecord) => [...new Set([a.fingerprint, a.fingerprint_raw])];

export class NatsDirectory implements DirectoryStore {
  private readonly agents: KvMirror<AgentRecord>;
  private readonly names: KvMirror<NameClaim>;
  private readonly fprints: KvMirror<string>;
  private readonly apikeys: KvMirror<ApiKeyRecord>;
  private readonly revoked: KvMirror<RevokedKey>;
  /** `tenant/name` -> agent id, from AGENTS. */
  private readonly byName = new Map<string, string>();
  /** Either fingerprint form -> agent id, from AGENTS. */
  private readonly byFingerprint = new Map<string, string>();
  private readonly tenantAgents = new Map<string, number>();
  private listing = new AgentListing([], () => undefined);
  private readonly listeners = new Set<AgentChanged>();
  private readonly apiKeyListeners = new Set<(hash: string, rec: ApiKeyRecord | undefined) => void>();
  private readonly revokedListeners = new Set<(fingerprint: string, entry: RevokedKey) => void>();
  private readonly orphanClaimMs: number;

  constructor(
    parts: NatsParts,
    private readonly opts: NatsDirectoryOptions = {},
  ) {
    const p = parts.prefix;
    this.orphanClaimMs = opts.orphanClaimMs ?? ORPHAN_CLAIM_MS;
    this.agents = new KvMirror<AgentRecord>(parts, {
      bucket: `${p}_AGENTS`,
      onChange: (_k, agent, prev, loading) => this.applyAgent(agent, prev, loading),
    });
    this.names = new KvMirror(parts, { bucket: `${p}_NAMES` });
    this.fprints = new KvMirror(parts, { bucket: `${p}_FPRINTS` });
    this.apikeys = new KvMirror<ApiKeyRecord>(parts, {
      bucket: `${p}_APIKEYS`,
      onChange: (k, rec, _prev, loading) => {
        if (!loading) notify(this.apiKeyListeners, decodeToken(k), rec);
      },
    });
    this.revoked = new KvMirror<RevokedKey>(parts, {
      bucket: `${p}_REVOKED`,
      ttlMs: REVOCATION_MEMORY_MS,
      onChange: (k, entry, _prev, loading) => {
        if (!loading && entry) notify(this.revokedListeners, decodeToken(k), entry);
      },
    });
  }

  /** Create or adopt the buckets and load them; resolves once the mirror is current. */
  async open(): Promise<void> {
    await Promise.all([this.agents, this.names, this.fprints, this.apikeys, this.revoked].map((m) => m.open()));
    const all: AgentRecord[] = [];
    for (const [, e] of this.agents.entries()) all.push(e.value);
    this.listing = new AgentListing(all, (id) => this.getAgent(id));
  }

  close(): void {
    for (const m of [this.agents, this.names, this.fprints, this.apikeys, this.revoked]) m.close();
    this.listeners.clear();
    this.apiKeyListeners.clear();
    this.revokedListeners.clear();
  }

  /**
   * `cb` hears every agent change the watch applies, whichever node wrote it (this one too):
   * the record as it is now, undefined once deleted. Returns an unsubscribe function.
   */
  onAgentChanged(cb: AgentChanged): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** `cb` hears every API key record the watch applies (issued, revoked, used), from any node. */
  onApiKeyChanged(cb: (hash: string, rec: ApiKeyRecord | undefined) => void): () => void {
    this.apiKeyListeners.add(cb);
    return () => this.apiKeyListeners.delete(cb);
  }

  /** `cb` hears every key revocation the watch applies (once per fingerprint form), from any node. */
  onKeyRevoked(cb: (fingerprint: string, entry: RevokedKey) => void): () => void {
    this.revokedListeners.add(cb);
    return () => this.revokedListeners.delete(cb);
  }

  // --- reads (the mirror) ---

  getAgent(id: string): AgentRecord | undefined {
    return this.agents.get(enc(id));
  }

  findAgentByName(tenant: string, name: string): AgentRecord | undefined {
    const id = this.byName.get(`${tenant}/${name}`);
    return id === undefined ? undefined : this.getAgent(id);
  }

  findAgentByFingerprint(fingerprint: string): AgentRecord | undefined {
    const id = this.byFingerprint.get(fingerprint);
    return id === undefined ? undefined : this.getAgent(id);
  }

  hasTenant(tenant: string): boolean {
    return this.tenantAgents.has(tenant) || (this.opts.tenantHasRecords?.(tenant) ?? false);
  }

  listAgentPage(tenant: string, q: AgentPageQuery): AgentPage {
    return this.listing.page(tenant, q);
  }

  nameHeldUntil(tenant: string, name: string, nowMs: number): number | undefined {
    const until = this.names.get(nameKey(tenant, name))?.held_until;
    return until !== undefined && until > nowMs ? until : undefined;
  }

  findRevokedKey(fingerprint: string): RevokedKey | undefined {
    return this.revoked.get(enc(fingerprint));
  }

  getApiKey(hash: string): ApiKeyRecord | undefined {
    return this.apikeys.get(enc(hash));
  }

  // --- writes ---

  putAgent(agent: AgentRecord): Promise<void> {
    return this.write(agent, this.getAgent(agent.id));
  }

  async replaceAgentKey(old: AgentRecord, updated: AgentRecord): Promise<void> {
    await this.write(updated, old);
  }

  async deleteAgent(agent: AgentRecord, holdUntil: number): Promise<void> {
    const key = nameKey(agent.tenant, agent.name);
    const name = this.names.entry(key);
    const ours = name !== undefined && name.value.agent_id === agent.id;
    const writes: Promise<unknown>[] = [this.agents.delete(enc(agent.id)), ...this.releaseFingerprints(agent)];
    if (holdUntil > 0) {
      const hold: NameClaim = { held_until: holdUntil };
      writes.push(
        ours ? this.names.update(key, hold, name.revision) : name ? Promise.resolve() : this.names.create(key, hold),
      );
    } else if (ours) {
      writes.push(this.names.delete(key, name.revision));
    }
    await Promise.all(writes);
  }

  async revokeKey(entry: RevokedKey): Promise<void> {
    await Promise.all([
      this.revoked.put(enc(entry.fingerprint), entry),
      this.revoked.put(enc(entry.fingerprint_raw), entry),
    ]);
  }

  async putApiKey(hash: string, rec: ApiKeyRecord): Promise<void> {
    await this.apikeys.put(enc(hash), rec);
  }

  /** Forget revocations past their 90 days (the bucket's TTL removed them; KV tells no one). */
  sweep(nowMs: number, budget: number): number {
    let n = 0;
    for (const [k, e] of this.revoked.entries()) {
      if (n >= budget) break;
      if (e.value.revoked_at + REVOCATION_MEMORY_MS <= nowMs) {
        this.revoked.forget(k);
        n++;
      }
    }
    return n;
  }

  /**
   * Claim what is new in `agent` against `prev` (its name, its fingerprints), then store the
   * record; a refused claim rolls back the others and rejects with LMDB mode's 409 codes.
   */
  private async write(agent: AgentRecord, prev: AgentRecord | undefined): Promise<void> {
    const claims: Array<{ kind: 'name' | 'key'; p: Promise<Rollback | null | 'taken'> }> = [];
    const nameChanged = !prev || prev.tenant !== agent.tenant || prev.name !== agent.name;
    if (nameChanged) {
      claims.push({
        kind: 'name',
        p: claim(this.names, nameKey(agent.tenant, agent.name), { agent_id: agent.id }, (cur) =>
          this.judgeName(cur, agent.id),
        ),
      });
    }
    const prevFps = new Set(prev ? fingerprintsOf(prev) : []);
    for (const fp of fingerprintsOf(agent)) {
      if (prevFps.has(fp)) continue;
      claims.push({
        kind: 'key',
        p: claim(this.fprints, enc(fp), agent.id, (cur) => this.judgeFingerprint(cur, fp, agent.id)),
      });
    }
    const settled = await Promise.allSettled(claims.map((c) => c.p));
    const rollbacks: Rollback[] = [];
    for (const s of settled) if (s.status === 'fulfilled' && typeof s.value === 'function') rollbacks.push(s.value);
    const failed = settled.findIndex((s) => s.status === 'rejected' || s.value === 'taken');
    if (failed >= 0) {
      await rollBack(rollbacks);
      const s = settled[failed];
      if (s.status === 'rejected') throw s.reason;
      // The name is reported first, as the single-node register checks it first.
      const nameLost = claims.some(
        (c, i) => c.kind === 'name' && settled[i].status === 'fulfilled' && settled[i].value === 'taken',
      );
      throw nameLost ? nameTaken(agent) : keyTaken(agent);
    }
    try {
      await this.agents.put(enc(agent.id), agent);
    } catch (e) {
      await rollBack(rollbacks);
      throw e;
    }
    if (prev) {
      const releases = agent.fingerprint === prev.fingerprint ? [] : this.releaseFingerprints(prev, agent);
      if (nameChanged) releases.push(this.releaseName(prev));
      await Promise.all(releases.map((r) => r.catch(() => {})));
    }
  }

  private judgeName(cur: KvEntryOf<NameClaim>, agentId: string): Verdict {
    const { agent_id, held_until } = cur.value;
    if (agent_id === agentId) return 'mine';
    if (held_until !== undefined) return held_until <= Date.now() ? 'free' : 'taken';
    const holder = agent_id === undefined ? undefined : this.getAgent(agent_id);
    if (holder) return 'taken';
    return Date.now() - cur.at > this.orphanClaimMs ? 'free' : 'taken';
  }

  private judgeFingerprint(cur: KvEntryOf<string>, fp: string, agentId: string): Verdict {
    if (cur.value === agentId) return 'mine';
    const holder = this.getAgent(cur.value);
    if (holder && (holder.fingerprint === fp || holder.fingerprint_raw === fp)) return 'taken';
    // The holder never appeared or moved to another key: stale once old enough (a claim is
    // written before its agent record, so a young one may be a registration in flight).
    return Date.now() - cur.at > this.orphanClaimMs ? 'free' : 'taken';
  }

  /** Delete the agent's fingerprint claims that are still its own (not those `keep` uses). */
  private releaseFingerprints(agent: AgentRecord, keep?: AgentRecord): Promise<unknown>[] {
    const kept = new Set(keep ? fingerprintsOf(keep) : []);
    const out: Promise<unknown>[] = [];
    for (const fp of fingerprintsOf(agent)) {
      if (kept.has(fp)) continue;
      const e = this.fprints.entry(enc(fp));
      if (e && e.value === agent.id) out.push(this.fprints.delete(enc(fp), e.revision));
    }
    return out;
  }

  private releaseName(agent: AgentRecord): Promise<unknown> {
    const key = nameKey(agent.tenant, agent.name);
    const e = this.names.entry(key);
    return e && e.value.agent_id === agent.id ? this.names.delete(key, e.revision) : Promise.resolve();
  }

  /** The watch applied a change to an agent (any node's write): indexes, listing, listeners. */
  private applyAgent(agent: AgentRecord | undefined, prev: AgentRecord | undefined, loading: boolean): void {
    if (prev) {
      const nk = `${prev.tenant}/${prev.name}`;
      if (this.byName.get(nk) === prev.id) this.byName.delete(nk);
      for (const fp of fingerprintsOf(prev)) if (this.byFingerprint.get(fp) === prev.id) this.byFingerprint.delete(fp);
      const n = (this.tenantAgents.get(prev.tenant) ?? 1) - 1;
      if (n > 0) this.tenantAgents.set(prev.tenant, n);
      else this.tenantAgents.delete(prev.tenant);
      if (!loading && (!agent || agent.address !== prev.address)) this.listing.remove(prev);
    }
    if (agent) {
      this.byName.set(`${agent.tenant}/${agent.name}`, agent.id);
      for (const fp of fingerprintsOf(agent)) this.byFingerprint.set(fp, agent.id);
      this.tenantAgents.set(agent.tenant, (this.tenantAgents.get(agent.tenant) ?? 0) + 1);
      if (!loading) this.listing.put(agent);
    }
    if (!loading) notify(this.listeners, (agent ?? prev)!.id, agent);
  }
}

/** Tell every listener; a listener's failure is its own, the mirror goes on. */
function notify<A, B>(listeners: ReadonlySet<(a: A, b: B) => void>, a: A, b: B): void {
  for (const cb of listeners) {
    try {
      cb(a, b);
    } catch {
      // ignored
    }
  }
}

function nameTaken(agent: AgentRecord): AmpError {
  return new AmpError('name_taken', `Agent name '${agent.name}' is already registered in tenant '${agent.tenant}'`, {
    field: 'name',
  });
}

function keyTaken(agent: AgentRecord): AmpError {
  return new AmpError('key_already_registered', 'This public key is already registered to another agent', {
    field: 'public_key',
    details: { fingerprint: agent.fingerprint },
  });
}
