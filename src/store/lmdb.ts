// The embedded store: one LMDB environment under the data dir, named databases, msgpackr values.
// The only module (with its lmdb-*.ts parts) that imports lmdb.
//
// Durability: the environment is opened with overlappingSync off, so LMDB fsyncs inside the
// commit and a write promise resolves only once its transaction is on disk. lmdb-js batches all
// writes issued in one event-loop turn into one transaction, which amortises the fsync.
//
// Failed commits (full disk, full map): every write goes through `Writes` (write-health.ts), which
// answers 507 `insufficient_storage`, takes back what the read cache shows of the failed write and
// reports the store as not writable until a commit succeeds again. No write is left unobserved.

import { mkdirSync, statfsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type Database, type Key, open, type RootDatabase } from 'lmdb';
import { AmpError } from '../../proto/index.js';
import { AgentListing } from './lmdb-directory.js';
import { LmdbOutbound } from './lmdb-outbound.js';
import { LmdbQueue } from './lmdb-queue.js';
import { SliceSweeper } from './lmdb-sweep.js';
import { guardLmdbRejections, Writes, type WriteState } from './write-health.js';
import type {
  AckOutcome,
  AgentPage,
  AgentPageQuery,
  AgentRecord,
  ApiKeyRecord,
  AttachmentRecord,
  Appended,
  DataStats,
  AppendInput,
  IdempotencyRecord,
  MessageRecord,
  OutboundCounts,
  OutboundEnqueue,
  OutboundItem,
  PendingPage,
  QueueDepths,
  QueueEntry,
  QueueHead,
  ReceiptKind,
  RecordKind,
  RevokedKey,
  Store,
  StoreObserver,
  SweepCounts,
} from './types.js';

type OutboxKey = [string, number];

/** What lmdb-js's getStats() reports of one database (mdb_stat). */
interface LmdbDbStats {
  pageSize: number;
  treeBranchPageCount: number;
  treeLeafPageCount: number;
  overflowPages: number;
  entryCount: number;
}

/** An IdempotencyRecord as stored. */
interface StoredIdempotency {
  d: string;
  r: Record<string, unknown>;
  e: number;
}

const SEQ_MAX = Number.MAX_SAFE_INTEGER;
const REVOCATION_MEMORY_MS = 90 * 24 * 3600 * 1000;
/**
 * New data is refused (507) while the data dir's file system has less free space than this: LMDB
 * must never meet a full disk (see write-health.ts). 16 of the largest stored messages (512 KiB).
 */
const DISK_FREE_FLOOR_BYTES = 8 * 1024 * 1024;
/** Writable again from floor + this, so that readiness does not flap at the floor. */
const DISK_RESUME_MARGIN_BYTES = 2 * 1024 * 1024;

export interface LmdbStoreOptions {
  dataDir: string;
  /** Defaults to false: a resolved write is flushed to disk. Benchmarks may trade that away. */
  noSync?: boolean;
  /** Free bytes below which new data is refused (507); default 8 MiB. */
  diskFreeFloorBytes?: number;
  /** Told commit latencies and expired messages (metrics, debug logs). */
  observer?: StoreObserver;
}

export class LmdbStore implements Store {
  private readonly root: RootDatabase;
  private readonly queue: LmdbQueue;
  private readonly outq: LmdbOutbound;
  private readonly agents: Database<AgentRecord, string>;
  private readonly names: Database<string, string>;
  private readonly fingerprints: Database<string, string>;
  private readonly apikeys: Database<ApiKeyRecord, string>;
  private readonly meta: Database<unknown, string>;
  /** Receipts kept for senders that were offline: [agent id, seq] -> frame JSON. */
  private readonly outbox: Database<{ e: number; j: string }, OutboxKey>;
  private readonly outboxIndex = new Map<string, number[]>();
  private nextOutboxSeq = Date.now() * 1000;
  private readonly revoked: Database<RevokedKey, string>;
  private readonly holds: Database<number, string>;
  private readonly idem: Database<StoredIdempotency, string>;
  private readonly records: Record<RecordKind, Database<string, string>>;
  private readonly attachments: Database<AttachmentRecord, string>;
  private readonly sweeper: SliceSweeper;
  private readonly w: Writes;
  private readonly path: string;
  private readonly listing: AgentListing;
  private closed = false;

  constructor(opts: LmdbStoreOptions) {
    mkdirSync(opts.dataDir, { recursive: true });
    guardLmdbRejections();
    this.path = join(opts.dataDir, 'amp.lmdb');
    this.root = open({
      path: this.path,
      maxDbs: 32,
      overlappingSync: false,
      noSync: opts.noSync ?? false,
      compression: false,
      // Files 0600 (message bodies, key hashes): lmdb-js's native open reads this; its typings lack it.
      ...({ permissionsMode: 0o600 } as object),
    });
    const freeBytes = () => {
      try {
        const fs = statfsSync(opts.dataDir);
        return fs.bavail * fs.bsize;
      } catch {
        return undefined; // cannot tell: commits decide
      }
    };
    this.w = new Writes(() => this.meta.put('write-probe', Date.now()), {
      freeBytes,
      floorBytes: opts.diskFreeFloorBytes ?? DISK_FREE_FLOOR_BYTES,
      resumeBytes: (opts.diskFreeFloorBytes ?? DISK_FREE_FLOOR_BYTES) + DISK_RESUME_MARGIN_BYTES,
    });
    this.sweeper = new SliceSweeper(this.w);
    const observer = opts.observer;
    if (observer) this.w.onCommit = (s) => observer.committed(s);
    this.queue = new LmdbQueue(
      this.root,
      this.w,
      () => this.assertOpen(),
      () => this.closed,
      observer && ((agentId, ids) => observer.expired(agentId, ids)),
    );
    this.outq = new LmdbOutbound(this.root, this.w, () => this.assertOpen());
    this.agents = this.root.openDB({ name: 'agents', cache: true });
    // Cached: every route resolves its recipient by name.
    this.names = this.root.openDB({ name: 'names', cache: true });
    this.fingerprints = this.root.openDB({ name: 'fingerprints' });
    this.apikeys = this.root.openDB({ name: 'apikeys', cache: true });
    this.meta = this.root.openDB({ name: 'meta' });
    this.outbox = this.root.openDB({ name: 'outbox' });
    this.revoked = this.root.openDB({ name: 'revoked', cache: true });
    this.holds = this.root.openDB({ name: 'holds' });
    this.idem = this.root.openDB({ name: 'idempotency', cache: true });
    this.listing = new AgentListing(
      (function* (agents) {
        for (const { value } of agents.getRange()) yield value;
      })(this.agents),
      (id) => this.agents.get(id),
    );
    this.records = {
      registrations: this.root.openDB({ name: 'aid_registrations', cache: true }),
      audit: this.root.openDB({ name: 'aid_audit' }),
      attachment_audit: this.root.openDB({ name: 'attachment_audit' }),
      admin_actions: this.root.openDB({ name: 'admin_actions' }),
      console_spent: this.root.openDB({ name: 'console_spent' }),
    };
    this.attachments = this.root.openDB({ name: 'attachments', cache: true });
  }

  /** Writes after close() would throw inside lmdb-js's write scheduler, outside any request. */
  private assertOpen(): void {
    if (this.closed) {
      throw new AmpError('service_unavailable', 'The server is shutting down; retry shortly', { retryAfter: 1 });
    }
  }

  // --- QueueStore (lmdb-queue.ts) ---

  pendingCount(agentId: string, nowMs: number): number {
    return this.queue.pendingCount(agentId, nowMs);
  }

  isPending(agentId: string, id: string, nowMs: number): boolean {
    return this.queue.isPending(agentId, id, nowMs);
  }

  queueHead(agentId: string, nowMs: number): QueueHead {
    return this.queue.queueHead(agentId, nowMs);
  }

  append(agentId: string, input: AppendInput): Appended {
    return this.queue.append(agentId, input);
  }

  readFrom(agentId: string, afterSeq: number, limit: number, nowMs: number) {
    return this.queue.readFrom(agentId, afterSeq, limit, nowMs) as {
      entries: QueueEntry[];
      scannedTo: number;
      more: boolean;
    };
  }

  lastSeq(agentId: string): number {
    return this.queue.lastSeq(agentId);
  }

  committedSeq(agentId: string): number {
    return this.queue.committedSeq(agentId);
  }

  listPending(agentId: string, limit: number, nowMs: number): PendingPage {
    return this.queue.listPending(agentId, limit, nowMs);
  }

  ack(agentId: string, ids: readonly string[], nowMs: number, owes?: (id: string) => void): Promise<AckOutcome[]> {
    return this.queue.ack(agentId, ids, nowMs, owes);
  }

  message(id: string): MessageRecord | undefined {
    return this.queue.message(id);
  }

  markReceipt(id: string, kind: ReceiptKind): boolean {
    return this.queue.markReceipt(id, kind);
  }

  // --- OutboundStore (lmdb-outbound.ts) ---

  outboundEnqueue(target: string, input: OutboundEnqueue): Promise<{ added: boolean; item: OutboundItem }> {
    return this.outq.outboundEnqueue(target, input);
  }

  outboundDue(target: string, nowMs: number, limit: number, skip?: (id: string) => boolean, headOnly?: boolean) {
    return this.outq.outboundDue(target, nowMs, limit, skip, headOnly);
  }

  outboundGet(target: string, id: string): OutboundItem | undefined {
    return this.outq.outboundGet(target, id);
  }

  outboundAttempted(target: string, id: string, attempts: number, nextAt: number, error: string): Promise<boolean> {
    return this.outq.outboundAttempted(target, id, attempts, nextAt, error);
  }

  outboundPark(target: string, id: string, attempts: number, reason: string): Promise<boolean> {
    return this.outq.outboundPark(target, id, attempts, reason);
  }

  outboundRelease(target: string, nowMs: number, only?: (reason: string | undefined) => boolean): Promise<number> {
    return this.outq.outboundRelease(target, nowMs, only);
  }

  outboundRemove(target: string, id: string): Promise<boolean> {
    return this.outq.outboundRemove(target, id);
  }

  outboundCount(target: string): OutboundCounts {
    return this.outq.outboundCount(target);
  }

  outboundOldest(target: string): number | null {
    return this.outq.outboundOldest(target);
  }

  outboundExpired(nowMs: number, limit: number): Array<{ target: string; id: string }> {
    return this.outq.outboundExpired(nowMs, limit);
  }

  outboundTargets(): string[] {
    return this.outq.outboundTargets();
  }

  // --- DirectoryStore ---

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

  async putAgent(agent: AgentRecord): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    const { w } = this;
    await Promise.all([
      w.put(this.agents, agent.id, agent),
      w.put(this.names, `${agent.tenant}/${agent.name}`, agent.id),
      w.put(this.fingerprints, agent.fingerprint, agent.id),
      w.put(this.fingerprints, agent.fingerprint_raw, agent.id),
    ]);
    // Listed once committed: a failed write lists nothing.
    this.listing.put(agent);
  }

  async replaceAgentKey(old: AgentRecord, updated: AgentRecord): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    const removed = [
      this.w.remove(this.fingerprints, old.fingerprint),
      this.w.remove(this.fingerprints, old.fingerprint_raw),
    ];
    await Promise.all([...removed, this.putAgent(updated)]);
  }

  hasTenant(tenant: string): boolean {
    // Keys are `tenant/...`; '0' is the character after '/', so the range is exactly the tenant.
    for (const _ of this.names.getKeys({ start: `${tenant}/`, end: `${tenant}0`, limit: 1 })) return true;
    // A tenant whose agents all left still has its identity registrations and audit trail.
    const registrations = this.records.registrations;
    for (const _ of registrations.getKeys({ start: `${tenant}/`, end: `${tenant}0`, limit: 1 })) return true;
    return false;
  }

  listAgentPage(tenant: string, q: AgentPageQuery): AgentPage {
    return this.listing.page(tenant, q);
  }

  async deleteAgent(agent: AgentRecord, holdUntil: number): Promise<void> {
    this.assertOpen();
    const { w } = this;
    const writes = [
      w.remove(this.agents, agent.id),
      w.remove(this.names, `${agent.tenant}/${agent.name}`),
      w.remove(this.fingerprints, agent.fingerprint),
      w.remove(this.fingerprints, agent.fingerprint_raw),
      ...this.queue.dropAgent(agent.id),
    ];
    for (const key of this.outbox.getKeys({ start: [agent.id, 0], end: [agent.id, SEQ_MAX] })) {
      writes.push(w.remove(this.outbox, key));
    }
    this.outboxIndex.delete(agent.id);
    if (holdUntil > 0) writes.push(w.put(this.holds, `${agent.tenant}/${agent.name}`, holdUntil));
    await Promise.all(writes);
    this.listing.remove(agent);
  }

  nameHeldUntil(tenant: string, name: string, nowMs: number): number | undefined {
    const until = this.holds.get(`${tenant}/${name}`);
    return until !== undefined && until > nowMs ? until : undefined;
  }

  async revokeKey(entry: RevokedKey): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    await Promise.all([
      this.w.put(this.revoked, entry.fingerprint, entry),
      this.w.put(this.revoked, entry.fingerprint_raw, entry),
    ]);
  }

  findRevokedKey(fingerprint: string): RevokedKey | undefined {
    return this.revoked.get(fingerprint);
  }

  getApiKey(hash: string): ApiKeyRecord | undefined {
    return this.apikeys.get(hash);
  }

  async putApiKey(hash: string, rec: ApiKeyRecord): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    await this.w.put(this.apikeys, hash, rec);
  }

  // --- AttachmentStore ---

  getAttachment(id: string): AttachmentRecord | undefined {
    return this.attachments.get(id);
  }

  async putAttachment(rec: AttachmentRecord): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    await this.w.put(this.attachments, rec.id, rec);
  }

  async deleteAttachment(id: string): Promise<void> {
    this.assertOpen();
    await this.w.remove(this.attachments, id);
  }

  *allAttachments(): Iterable<AttachmentRecord> {
    for (const { value } of this.attachments.getRange()) yield value;
  }

  // --- RecordsStore ---

  getIdempotency(senderId: string, key: string, nowMs: number): IdempotencyRecord | undefined {
    const rec = this.idem.get(`${senderId}\n${key}`);
    return rec && rec.e > nowMs ? { digest: rec.d, result: rec.r, expiresAt: rec.e } : undefined;
  }

  async putIdempotency(senderId: string, key: string, rec: IdempotencyRecord): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    await this.w.put(this.idem, `${senderId}\n${key}`, { d: rec.digest, r: rec.result, e: rec.expiresAt });
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
      this.w.background(this.w.remove(this.outbox, [agentId, keys.shift()!]));
      dropped++;
    }
    const seq = this.nextOutboxSeq++;
    keys.push(seq);
    this.w.background(this.w.put(this.outbox, [agentId, seq], { e: expiresAtMs, j: frameJson }));
    return dropped;
  }

  takeOutbox(agentId: string, nowMs: number): string[] {
    const frames: string[] = [];
    const taken = new Set<number>();
    for (const { key, value } of this.outbox.getRange({ start: [agentId, 0], end: [agentId, SEQ_MAX] })) {
      if (value.e > nowMs) frames.push(value.j);
      taken.add(key[1]);
      if (!this.closed) this.w.background(this.w.remove(this.outbox, key));
    }
    const keys = this.outboxIndex.get(agentId);
    if (keys)
      this.outboxIndex.set(
        agentId,
        keys.filter((k) => !taken.has(k)),
      );
    return frames;
  }

  async putRecord(kind: RecordKind, key: string, value: unknown): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    // JSON text, like queued messages: exact round trips, whatever the keys.
    await this.w.put(this.records[kind], key, JSON.stringify(value));
  }

  getRecord<T>(kind: RecordKind, key: string): T | undefined {
    const v = this.records[kind].get(key);
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }

  recordsWithPrefix<T>(kind: RecordKind, prefix: string): T[] {
    const out: T[] = [];
    for (const { value } of this.records[kind].getRange({ start: prefix, end: `${prefix}\uffff` })) {
      out.push(JSON.parse(value) as T);
    }
    return out;
  }

  async spendOnce(kind: RecordKind, key: string, value: unknown): Promise<boolean> {
    this.assertOpen();
    this.w.assertRoom();
    const db = this.records[kind];
    if (db.get(key) !== undefined) return false;
    // The condition is checked in the write transaction, in issue order: of two spends, one wins.
    const won = db.ifNoExists(key, () => {
      db.put(key, JSON.stringify(value));
    });
    this.w.timed(won);
    try {
      return await won;
    } catch (e) {
      return this.w.failure(e);
    }
  }

  getMeta<T>(key: string): T | undefined {
    return this.meta.get(key) as T | undefined;
  }

  async putMeta(key: string, value: unknown): Promise<void> {
    this.assertOpen();
    this.w.assertRoom();
    await this.w.put(this.meta, key, value);
  }

  /** Resolves once every write issued so far has committed or failed (its writer heard which). */
  async settled(): Promise<void> {
    await this.w.guard(this.root.committed).catch(() => {});
  }

  // --- the engine ---

  sweep(nowMs: number, budget: number): SweepCounts {
    if (this.closed) {
      return { expiredMessages: 0, forgottenIndexEntries: 0, idempotencyRecords: 0, outboxFrames: 0, more: false };
    }
    const s = this.sweeper;
    const queue = this.queue.sweep(s, nowMs, budget);
    const idempotencyRecords = s.slice('idem', this.idem, budget, (_k, v) => v.e <= nowMs);
    const outboxFrames = s.slice('outbox', this.outbox, budget, (key, v) => {
      if (v.e > nowMs) return false;
      const keys = this.outboxIndex.get(key[0]);
      if (keys)
        this.outboxIndex.set(
          key[0],
          keys.filter((k) => k !== key[1]),
        );
      return true;
    });
    s.slice('holds', this.holds, budget, (_k, until) => until <= nowMs);
    s.slice('revoked', this.revoked, budget, (_k, v) => v.revoked_at + REVOCATION_MEMORY_MS <= nowMs);
    // Spent console sign-in ids are kept until their link would have expired anyway.
    s.slice('console_spent', this.records.console_spent, budget, (_k, v) => spentUntil(v) <= nowMs);
    return {
      expiredMessages: queue.messages,
      forgottenIndexEntries: queue.indexEntries,
      idempotencyRecords,
      outboxFrames,
      more: s.unfinished,
    };
  }

  writeState(): WriteState {
    return this.w.writeState();
  }

  /** Entry counts come from LMDB's page headers (mdb_stat): no walk over the data. */
  dataStats(): DataStats {
    const stat = (db: Database<unknown, Key>) => {
      const s = db.getStats() as LmdbDbStats;
      const pages = s.treeBranchPageCount + s.treeLeafPageCount + s.overflowPages;
      return { entries: s.entryCount, bytes: pages * s.pageSize };
    };
    return {
      fileBytes: statSync(this.path, { throwIfNoEntry: false })?.size ?? 0,
      dbs: {
        ...this.queue.dbStats(stat),
        agents: stat(this.agents),
        idempotency: stat(this.idem),
        outbox: stat(this.outbox),
        outbound: this.outq.stat(stat),
        aid_audit: stat(this.records.audit),
      },
    };
  }

  queueDepths(top: number): QueueDepths {
    return this.queue.depths(top);
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
    this.w.close();
    await this.settled();
    await this.root.close();
  }
}

/** A spent id's record `{exp}` (unix seconds) as ms; unreadable ones go at once. */
function spentUntil(v: string): number {
  try {
    const exp = (JSON.parse(v) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}
