// The embedded store: one LMDB environment under the data dir, named databases, msgpackr values.
// The only module that imports lmdb.
//
// Durability: the environment is opened with overlappingSync off, so LMDB fsyncs inside the
// commit and a write promise resolves only once its transaction is on disk. lmdb-js batches all
// writes issued in one event-loop turn into one transaction, which amortises the fsync.

import { open, type Database, type RootDatabase } from 'lmdb';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AmpError, type QueuedMessage } from '../../proto/index.js';
import type {
  AckOutcome,
  AgentRecord,
  ApiKeyRecord,
  AppendInput,
  Appended,
  IdempotencyRecord,
  MessageIndexEntry,
  PendingPage,
  QueueEntry,
  RecordKind,
  RevokedKey,
  Store,
  SweepCounts,
} from './types.js';

type QueueKey = [string, number];

interface QueueValue {
  /** relay expiry, ms */
  e: number;
  /** message id */
  i: string;
  /** delivery receipt requested */
  rc?: 1;
  /**
   * The queued message as JSON text. Not a msgpack map: msgpackr renames a `__proto__` key and
   * turns lone surrogates into U+FFFD, and a payload must come back exactly as signed (§8.2).
   */
  j: string;
}

/** In-memory view of one recipient's queue: insertion order of the Map is queue order. */
interface RecipientIndex {
  /** Pending messages by id; `rc` when the sender asked for a delivery receipt. */
  entries: Map<string, { seq: number; exp: number; rc?: true }>;
  lastSeq: number;
  committedSeq: number;
  /** Earliest expiry among entries; Infinity when empty. Lets counts skip a scan. */
  minExp: number;
}

const SEQ_MAX = Number.MAX_SAFE_INTEGER;
/** How long an acked message id still answers already_acked, at least. */
const ACK_MEMORY_MS = 24 * 3600 * 1000;

export interface LmdbStoreOptions {
  dataDir: string;
  /** Defaults to false: a resolved write is flushed to disk. Benchmarks may trade that away. */
  noSync?: boolean;
}

export class LmdbStore implements Store {
  private readonly root: RootDatabase;
  private readonly agents: Database<AgentRecord, string>;
  private readonly names: Database<string, string>;
  private readonly fingerprints: Database<string, string>;
  private readonly apikeys: Database<ApiKeyRecord, string>;
  private readonly queue: Database<QueueValue, QueueKey>;
  private readonly msgindex: Database<MessageIndexEntry, string>;
  private readonly meta: Database<unknown, string>;
  /** Receipts kept for senders that were offline: [agent id, seq] -> frame JSON. */
  private readonly outbox: Database<{ e: number; j: string }, QueueKey>;
  private readonly outboxIndex = new Map<string, number[]>();
  private readonly revoked: Database<RevokedKey, string>;
  private readonly holds: Database<number, string>;
  private readonly idem: Database<IdempotencyRecord, string>;
  private readonly records: Record<RecordKind, Database<string, string>>;
  /** Where each sweep left off, per database: sweeps walk the keys in slices. */
  private readonly sweepCursors = new Map<string, unknown>();
  private readonly recipients = new Map<string, RecipientIndex>();
  /** Sequence numbers grow with wall-clock microseconds, so they keep growing across restarts. */
  private nextSeq = Date.now() * 1000;
  private closed = false;

  constructor(opts: LmdbStoreOptions) {
    mkdirSync(opts.dataDir, { recursive: true });
    this.root = open({
      path: join(opts.dataDir, 'amp.lmdb'),
      maxDbs: 16,
      overlappingSync: false,
      noSync: opts.noSync ?? false,
      compression: false,
    });
    this.agents = this.root.openDB({ name: 'agents', cache: true });
    // Cached: every route resolves its recipient by name.
    this.names = this.root.openDB({ name: 'names', cache: true });
    this.fingerprints = this.root.openDB({ name: 'fingerprints' });
    this.apikeys = this.root.openDB({ name: 'apikeys', cache: true });
    this.queue = this.root.openDB({ name: 'queue' });
    // Cached so a put is visible to the next get before its commit (acks racing each other).
    this.msgindex = this.root.openDB({ name: 'msgindex', cache: true });
    this.meta = this.root.openDB({ name: 'meta' });
    this.outbox = this.root.openDB({ name: 'outbox' });
    this.revoked = this.root.openDB({ name: 'revoked', cache: true });
    this.holds = this.root.openDB({ name: 'holds' });
    this.idem = this.root.openDB({ name: 'idempotency', cache: true });
    this.records = {
      registrations: this.root.openDB({ name: 'aid_registrations', cache: true }),
      audit: this.root.openDB({ name: 'aid_audit' }),
    };
  }

  getAgent(id: string): AgentRecord | undefined {
    return this.agents.get(id);
  }

  findAgentByName(tenant: string, name: string): AgentRecord | undefined {
    const id = this.names.get(`${tenant}/${name}`);
    return id === undefined ? undefined : this.agents.get(id);
  }

  findAgentByFingerprint(fingerprint: string): AgentRecord | undefined {
    const id = this.fingerprints.get(fingerprint);
    return id === undefined ? undefined : this.agents.get(id);
  }

  /** Writes after close() would throw inside lmdb-js's write scheduler, outside any request. */
  private assertOpen(): void {
    if (this.closed)
      throw new AmpError('service_unavailable', 'The server is shutting down; retry shortly', { retryAfter: 1 });
  }

  async putAgent(agent: AgentRecord): Promise<void> {
    this.assertOpen();
    this.agents.put(agent.id, agent);
    this.names.put(`${agent.tenant}/${agent.name}`, agent.id);
    this.fingerprints.put(agent.fingerprint, agent.id);
    await this.fingerprints.put(agent.fingerprint_raw, agent.id);
  }

  async replaceAgentKey(old: AgentRecord, updated: AgentRecord): Promise<void> {
    this.assertOpen();
    this.fingerprints.remove(old.fingerprint);
    this.fingerprints.remove(old.fingerprint_raw);
    await this.putAgent(updated);
  }

  async putRecord(kind: RecordKind, key: string, value: unknown): Promise<void> {
    this.assertOpen();
    // JSON text, like queued messages: exact round trips, whatever the keys.
    await this.records[kind].put(key, JSON.stringify(value));
  }

  getRecord<T>(kind: RecordKind, key: string): T | undefined {
    const v = this.records[kind].get(key);
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }

  recordsWithPrefix<T>(kind: RecordKind, prefix: string): T[] {
    const out: T[] = [];
    for (const { value } of this.records[kind].getRange({ start: prefix, end: `${prefix}\uffff` }))
      out.push(JSON.parse(value) as T);
    return out;
  }

  hasTenant(tenant: string): boolean {
    for (const _ of this.names.getKeys({ start: `${tenant}/`, end: `${tenant}0`, limit: 1 })) return true;
    // A tenant whose agents all left still has its identity registrations and audit trail.
    for (const _ of this.records.registrations.getKeys({ start: `${tenant}/`, end: `${tenant}0`, limit: 1 }))
      return true;
    return false;
  }

  listAgents(tenant: string): AgentRecord[] {
    const out: AgentRecord[] = [];
    // Keys are `tenant/name`; '0' is the character after '/', so this is exactly the tenant.
    for (const { value: id } of this.names.getRange({ start: `${tenant}/`, end: `${tenant}0` })) {
      const a = this.agents.get(id);
      if (a) out.push(a);
    }
    return out;
  }

  async deleteAgent(agent: AgentRecord, holdUntil: number): Promise<void> {
    this.assertOpen();
    this.agents.remove(agent.id);
    this.names.remove(`${agent.tenant}/${agent.name}`);
    this.fingerprints.remove(agent.fingerprint);
    this.fingerprints.remove(agent.fingerprint_raw);
    for (const key of this.queue.getKeys({ start: [agent.id, 0], end: [agent.id, SEQ_MAX] })) this.queue.remove(key);
    for (const key of this.outbox.getKeys({ start: [agent.id, 0], end: [agent.id, SEQ_MAX] })) this.outbox.remove(key);
    this.recipients.delete(agent.id);
    this.outboxIndex.delete(agent.id);
    if (holdUntil > 0) this.holds.put(`${agent.tenant}/${agent.name}`, holdUntil);
    await this.root.committed;
  }

  nameHeldUntil(tenant: string, name: string, nowMs: number): number | undefined {
    const until = this.holds.get(`${tenant}/${name}`);
    return until !== undefined && until > nowMs ? until : undefined;
  }

  async revokeKey(entry: RevokedKey): Promise<void> {
    this.assertOpen();
    this.revoked.put(entry.fingerprint, entry);
    await this.revoked.put(entry.fingerprint_raw, entry);
  }

  findRevokedKey(fingerprint: string): RevokedKey | undefined {
    return this.revoked.get(fingerprint);
  }

  getIdempotency(senderId: string, key: string, nowMs: number): IdempotencyRecord | undefined {
    const rec = this.idem.get(`${senderId}\n${key}`);
    return rec && rec.e > nowMs ? rec : undefined;
  }

  async putIdempotency(senderId: string, key: string, rec: IdempotencyRecord): Promise<void> {
    this.assertOpen();
    await this.idem.put(`${senderId}\n${key}`, rec);
  }

  /** Walk up to `budget` keys of `db` from where the last sweep stopped, removing expired ones. */
  private sweepSlice<K extends string | QueueKey, V>(
    name: string,
    db: Database<V, K>,
    budget: number,
    expired: (key: K, value: V) => boolean,
  ): number {
    const start = this.sweepCursors.get(name) as K | undefined;
    let removed = 0;
    let seen = 0;
    let last: K | undefined;
    for (const { key, value } of db.getRange({ start, limit: budget })) {
      seen++;
      last = key;
      if (expired(key, value)) {
        db.remove(key).catch(() => {});
        removed++;
      }
    }
    // A short slice means the end was reached: start over next time.
    if (seen < budget || last === undefined) this.sweepCursors.delete(name);
    else this.sweepCursors.set(name, Array.isArray(last) ? [last[0], last[1] + 1] : `${String(last)}\u0000`);
    return removed;
  }

  sweep(nowMs: number, budget: number): SweepCounts {
    if (this.closed)
      return { expiredMessages: 0, forgottenIndexEntries: 0, idempotencyRecords: 0, outboxFrames: 0, more: false };
    const REVOCATION_MEMORY_MS = 90 * 24 * 3600 * 1000;
    const expiredMessages = this.sweepSlice('queue', this.queue, budget, (key, v) => {
      if (v.e > nowMs) return false;
      this.recipients.get(key[0])?.entries.delete(v.i);
      return true;
    });
    const forgottenIndexEntries = this.sweepSlice(
      'msgindex',
      this.msgindex,
      budget,
      (_k, v) => v.e <= nowMs && (v.a === undefined || v.a + ACK_MEMORY_MS <= nowMs),
    );
    const idempotencyRecords = this.sweepSlice('idem', this.idem, budget, (_k, v) => v.e <= nowMs);
    const outboxFrames = this.sweepSlice('outbox', this.outbox, budget, (key, v) => {
      if (v.e > nowMs) return false;
      const keys = this.outboxIndex.get(key[0]);
      if (keys)
        this.outboxIndex.set(
          key[0],
          keys.filter((k) => k !== key[1]),
        );
      return true;
    });
    this.sweepSlice('holds', this.holds, budget, (_k, until) => until <= nowMs);
    this.sweepSlice('revoked', this.revoked, budget, (_k, v) => v.revoked_at + REVOCATION_MEMORY_MS <= nowMs);
    return {
      expiredMessages,
      forgottenIndexEntries,
      idempotencyRecords,
      outboxFrames,
      more: this.sweepCursors.size > 0,
    };
  }

  getApiKey(hash: string): ApiKeyRecord | undefined {
    return this.apikeys.get(hash);
  }

  async putApiKey(hash: string, rec: ApiKeyRecord): Promise<void> {
    this.assertOpen();
    await this.apikeys.put(hash, rec);
  }

  private index(agentId: string): RecipientIndex {
    let ri = this.recipients.get(agentId);
    if (ri) return ri;
    ri = { entries: new Map(), lastSeq: 0, committedSeq: 0, minExp: Infinity };
    for (const { key, value } of this.queue.getRange({ start: [agentId, 0], end: [agentId, SEQ_MAX] })) {
      const seq = key[1];
      ri.entries.set(value.i, value.rc ? { seq, exp: value.e, rc: true } : { seq, exp: value.e });
      ri.lastSeq = seq;
      if (value.e < ri.minExp) ri.minExp = value.e;
    }
    ri.committedSeq = ri.lastSeq;
    this.recipients.set(agentId, ri);
    return ri;
  }

  /** Drop expired entries from the in-memory index and, lazily, from LMDB. */
  private prune(agentId: string, ri: RecipientIndex, nowMs: number): void {
    if (ri.minExp > nowMs) return;
    let minExp = Infinity;
    for (const [id, ent] of ri.entries) {
      if (ent.exp <= nowMs) {
        ri.entries.delete(id);
        // Best effort: a failed removal is retried by the next prune after a restart.
        this.queue.remove([agentId, ent.seq]).catch(() => {});
      } else if (ent.exp < minExp) {
        minExp = ent.exp;
      }
    }
    ri.minExp = minExp;
  }

  pendingCount(agentId: string, nowMs: number): number {
    const ri = this.index(agentId);
    this.prune(agentId, ri, nowMs);
    return ri.entries.size;
  }

  append(agentId: string, input: AppendInput): Appended {
    this.assertOpen();
    const { msg, expiresAtMs } = input;
    const ri = this.index(agentId);
    const seq = Math.max(this.nextSeq++, ri.lastSeq + 1);
    ri.lastSeq = seq;
    ri.entries.set(msg.id, input.receipt ? { seq, exp: expiresAtMs, rc: true } : { seq, exp: expiresAtMs });
    if (expiresAtMs < ri.minExp) ri.minExp = expiresAtMs;
    const qv: QueueValue = { e: expiresAtMs, i: msg.id, j: input.json };
    if (input.receipt) qv.rc = 1;
    this.queue.put([agentId, seq], qv);
    const idx: MessageIndexEntry = { r: agentId, f: input.senderId, s: seq, t: msg.envelope.thread_id, e: expiresAtMs };
    if (input.receipt) idx.rc = 1;
    // Commits complete in order, so committedSeq only grows. It is updated before the caller's
    // continuation runs, which then sees this entry as committed.
    const committed = this.msgindex.put(msg.id, idx).then(() => {
      if (seq > ri.committedSeq) ri.committedSeq = seq;
    });
    return { seq, committed };
  }

  readFrom(
    agentId: string,
    afterSeq: number,
    limit: number,
    nowMs: number,
  ): { entries: QueueEntry[]; scannedTo: number; more: boolean } {
    const entries: QueueEntry[] = [];
    let scanned = 0;
    let scannedTo = afterSeq;
    for (const { key, value } of this.queue.getRange({
      start: [agentId, afterSeq + 1],
      end: [agentId, SEQ_MAX],
      limit,
    })) {
      scanned++;
      scannedTo = key[1];
      if (value.e > nowMs) entries.push({ seq: key[1], id: value.i, json: value.j, receipt: value.rc === 1 });
    }
    return { entries, scannedTo, more: scanned === limit };
  }

  lastSeq(agentId: string): number {
    return this.index(agentId).lastSeq;
  }

  committedSeq(agentId: string): number {
    return this.index(agentId).committedSeq;
  }

  listPending(agentId: string, limit: number, nowMs: number): PendingPage {
    const ri = this.index(agentId);
    this.prune(agentId, ri, nowMs);
    const messages: QueuedMessage[] = [];
    for (const ent of ri.entries.values()) {
      if (messages.length >= limit) break;
      const v = this.queue.get([agentId, ent.seq]);
      if (v) messages.push(JSON.parse(v.j) as QueuedMessage);
    }
    return { messages, remaining: ri.entries.size - messages.length };
  }

  /**
   * A pending message is found in the in-memory index (its seq, no read) and removed from the
   * queue; that removal is the durable ack. An id that is not pending is looked up in msgindex:
   * the recipient's own is already acked, unless it expired unacked (unknown). msgindex is
   * written only for a message expiring within ACK_MEMORY_MS, whose entry must outlive its
   * expiry to answer already_acked for a day (the sweeper keeps entries until max(expiry,
   * ack + a day)).
   */
  async ack(
    agentId: string,
    ids: readonly string[],
    nowMs: number,
    owesReceipt?: (id: string) => void,
  ): Promise<AckOutcome[]> {
    this.assertOpen();
    const ri = this.index(agentId);
    const outcomes: AckOutcome[] = [];
    let last: Promise<unknown> | undefined;
    for (const id of ids) {
      const ent = ri.entries.get(id);
      if (!ent) {
        // Not pending: acked, or expired. An expired message was acked only if it bears the mark.
        const idx = this.msgindex.get(id);
        outcomes.push(idx && idx.r === agentId && (idx.e > nowMs || idx.a !== undefined) ? 'already_acked' : 'unknown');
        continue;
      }
      ri.entries.delete(id);
      last = this.queue.remove([agentId, ent.seq]);
      if (ent.exp < nowMs + ACK_MEMORY_MS) {
        const idx = this.msgindex.get(id);
        if (idx) last = this.msgindex.put(id, { ...idx, a: nowMs });
      }
      if (ent.rc) owesReceipt?.(id);
      outcomes.push('acked');
    }
    if (last) await last;
    return outcomes;
  }

  getMessageIndex(id: string): MessageIndexEntry | undefined {
    return this.msgindex.get(id);
  }

  markReceipt(id: string, flag: 'rd' | 'rr'): boolean {
    const idx = this.msgindex.get(id);
    if (!idx || idx[flag] === 1 || this.closed) return false;
    // Visible at once through the cache; losing it in a crash only means a repeated receipt.
    this.msgindex.put(id, { ...idx, [flag]: 1 }).catch(() => {});
    return true;
  }

  /** Outbox keys (seq) per agent in order, loaded on first use; eviction and counts are exact. */
  private outboxKeys(agentId: string): number[] {
    let keys = this.outboxIndex.get(agentId);
    if (!keys) {
      keys = [...this.outbox.getKeys({ start: [agentId, 0], end: [agentId, SEQ_MAX] })].map((k) => k[1]);
      this.outboxIndex.set(agentId, keys);
    }
    return keys;
  }

  pushOutbox(agentId: string, frameJson: string, expiresAtMs: number, cap: number): number {
    this.assertOpen();
    const keys = this.outboxKeys(agentId);
    let dropped = 0;
    while (keys.length >= cap) {
      this.outbox.remove([agentId, keys.shift()!]).catch(() => {});
      dropped++;
    }
    const seq = this.nextSeq++;
    keys.push(seq);
    this.outbox.put([agentId, seq], { e: expiresAtMs, j: frameJson }).catch(() => {});
    return dropped;
  }

  takeOutbox(agentId: string, nowMs: number): string[] {
    const frames: string[] = [];
    const taken = new Set<number>();
    for (const { key, value } of this.outbox.getRange({ start: [agentId, 0], end: [agentId, SEQ_MAX] })) {
      if (value.e > nowMs) frames.push(value.j);
      taken.add(key[1]);
      if (!this.closed) this.outbox.remove(key).catch(() => {});
    }
    const keys = this.outboxIndex.get(agentId);
    if (keys)
      this.outboxIndex.set(
        agentId,
        keys.filter((k) => !taken.has(k)),
      );
    return frames;
  }

  getMeta<T>(key: string): T | undefined {
    return this.meta.get(key) as T | undefined;
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    this.assertOpen();
    await this.meta.put(key, value);
  }

  async settled(): Promise<void> {
    await this.root.committed;
  }

  healthy(): boolean {
    if (this.closed) return false;
    try {
      this.meta.get('health');
      return true;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.root.committed;
    await this.root.close();
  }
}
