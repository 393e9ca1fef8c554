// What the relay core and the identity service need from storage, as three narrow interfaces: the
// queue, the directory of agents and keys, and the other records. LMDB (lmdb.ts) implements them
// in one environment; a NATS JetStream implementation for clusters stands beside it.

import type { QueuedMessage } from '../../proto/index.js';

export interface AgentRecord {
  id: string;
  name: string;
  tenant: string;
  platform?: string;
  repo?: string;
  /** Full address (with scope labels when registered with a scope). */
  address: string;
  /** `name@tenant.<domain>`. */
  short_address: string;
  alias?: string;
  public_key_pem: string;
  /** 64 lowercase hex. */
  public_key_hex: string;
  fingerprint: string;
  fingerprint_raw: string;
  prefer_websocket: boolean;
  /** §18: where messages are POSTed (checked by the SSRF rules when set), and the HMAC secret. */
  webhook_url?: string;
  webhook_secret?: string;
  /** JSON text, kept exactly as registered (a msgpack map would rename a `__proto__` key). */
  metadata_json: string;
  capabilities: string[];
  client_agent_id?: string;
  /** `pending`: registered under the `approval` mode, may not route until its AID approval. */
  status: 'active' | 'suspended' | 'pending';
  /** Set by an operator's suspension (§20); absent for an AID suspension. */
  suspension?: AgentSuspension;
  /** SHA-256 hex of every API key issued to the agent (for revocation). */
  key_hashes: string[];
  registered_at: number;
  last_seen_at?: number;
}

/** An operator's suspension of an agent (POST agents/{id}/suspend, §20). */
export interface AgentSuspension {
  reason: string;
  /** Suspended at (ms). */
  at: number;
  /** Lifted by itself at (ms); null = until an unsuspend. */
  until: number | null;
  /** The admin's e-mail. */
  by: string;
  /** The status the agent returns to when lifted ('suspended' when its AID registration is suspended too). */
  previous: AgentRecord['status'];
}

export interface ApiKeyRecord {
  agent_id: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
  last_used_at: number | null;
}

/** What is remembered of a routed message, after its ack too, for repeats, receipts and threads. */
export interface MessageRecord {
  recipientId: string;
  senderId: string;
  threadId: string;
  /** Relay expiry (ms). */
  expiresAt: number;
  /** Acked at (ms). */
  ackedAt?: number;
  /** The sender asked for a delivery receipt. */
  receiptRequested: boolean;
  deliveryReceiptSent: boolean;
  readReceiptSent: boolean;
}

export type ReceiptKind = 'delivery' | 'read';

export interface AppendInput {
  msg: QueuedMessage;
  /** `JSON.stringify(msg)`, computed once by the caller and reused for pushes. */
  json: string;
  expiresAtMs: number;
  senderId: string;
  receipt: boolean;
}

export interface Appended {
  /** Queue position; grows with every append, across restarts too. */
  seq: number;
  /**
   * Resolves once the append is committed and flushed; rejects with 507 `insufficient_storage`
   * (or 503) when the commit failed, and the message is then gone without a trace.
   */
  committed: Promise<void>;
}

/** A committed queue entry as catch-up reads it. */
export interface QueueEntry {
  seq: number;
  id: string;
  json: string;
  /** The sender asked for a delivery receipt. */
  receipt: boolean;
}

export type RevocationReason = 'key_compromise' | 'key_rotation' | 'agent_deregistered' | 'admin_action';

/** An entry of the key revocation list (§20), kept >= 90 days, found by either fingerprint form. */
export interface RevokedKey {
  fingerprint: string;
  fingerprint_raw: string;
  agent_address: string;
  revoked_at: number;
  reason: RevocationReason;
  superseded_by?: string;
}

/** What a route answered, kept for an idempotency key (§12.5). */
export interface IdempotencyRecord {
  /** Digest of the request's meaningful fields. */
  digest: string;
  /** The original answer. */
  result: Record<string, unknown>;
  /** Expiry (ms). */
  expiresAt: number;
}

/** What the store reports to operators' metrics and logs (ops/telemetry.ts); called on the hot path. */
export interface StoreObserver {
  /** A write transaction committed, `seconds` after its first write was issued. */
  committed(seconds: number): void;
  /** Queue entries of `agentId` were dropped because their relay expiry passed. */
  expired(agentId: string, ids: readonly string[]): void;
}

/** Queue depths for /metrics: the total, and the deepest queues. */
export interface QueueDepths {
  /** Entries in the queue database: pending messages, and expired ones the sweeper has not reached. */
  total: number;
  /** The `top` deepest queues among recipients the server has touched since it started, deepest first. */
  agents: Array<{ agentId: string; depth: number }>;
}

export interface SweepCounts {
  expiredMessages: number;
  forgottenIndexEntries: number;
  idempotencyRecords: number;
  outboxFrames: number;
  /** Some database was not walked to its end yet: call again. */
  more: boolean;
}

/** Collections of the identity service, stored as JSON text keyed by `tenant/...`. */
export type RecordKind = 'registrations' | 'audit' | 'attachment_audit' | 'admin_actions' | 'console_spent';

export type AckOutcome = 'acked' | 'already_acked' | 'unknown';

export interface PendingPage {
  messages: QueuedMessage[];
  /** Unacked, unexpired messages after this page. */
  remaining: number;
}

/** An agent's queue at a glance (admin views). */
export interface QueueHead {
  /** Unacked, unexpired messages. */
  depth: number;
  /** When the oldest of them was queued (ms); null when the queue is empty. */
  oldestQueuedAt: number | null;
}

/**
 * The relay queue: messages per recipient in order, acks, and what is remembered of each message.
 * Reads are synchronous: an implementation answers them from indexes it keeps in memory.
 */
export interface QueueStore {
  /** Unacked, unexpired messages queued for the agent. */
  pendingCount(agentId: string, nowMs: number): number;
  /** Whether message `id` is still queued for the agent: not acked, not expired (in-memory index). */
  isPending(agentId: string, id: string, nowMs: number): boolean;
  /** Depth and oldest message, from the in-memory index plus one read: no scan of the queue. */
  queueHead(agentId: string, nowMs: number): QueueHead;
  /** Append to the agent's queue; `committed` resolves once durable (a 2xx may then be sent). */
  append(agentId: string, input: AppendInput): Appended;
  /**
   * Committed entries with seq > afterSeq, oldest first: up to `limit` scanned, expired ones left
   * out. `scannedTo` is the last seq scanned; `more` says the scan stopped at the limit.
   */
  readFrom(
    agentId: string,
    afterSeq: number,
    limit: number,
    nowMs: number,
  ): { entries: QueueEntry[]; scannedTo: number; more: boolean };
  /**
   * The seq of a pending message, for stores whose `append` answers seq 0 (the cluster store numbers
   * messages when JetStream stores them): known once `committed` resolved.
   */
  seqOf?(agentId: string, id: string): number | undefined;
  /** Highest seq ever assigned to the agent's queue (0 if none). */
  lastSeq(agentId: string): number;
  /** Highest seq of the agent's queue known to be committed (0 if none). */
  committedSeq(agentId: string): number;
  /** Oldest first; a peek. */
  listPending(agentId: string, limit: number, nowMs: number): PendingPage;
  /** Resolves once the removals are durable; `owesReceipt` hears acked ids that asked for a receipt. */
  ack(
    agentId: string,
    ids: readonly string[],
    nowMs: number,
    owesReceipt?: (id: string) => void,
  ): Promise<AckOutcome[]>;
  message(id: string): MessageRecord | undefined;
  /** Mark a receipt as sent; true if it was not before (so each receipt goes once). */
  markReceipt(id: string, kind: ReceiptKind): boolean;
}

export interface AgentPageQuery {
  /** Only addresses after this one ('' = from the start). */
  after: string;
  limit: number;
  /** Lowercase substring of name, address or alias; '' matches every agent. */
  search: string;
  /** `search` may match the agent id too (operators' search). */
  byId?: boolean;
}

export interface AgentPage {
  agents: AgentRecord[];
  /** Every match in the tenant, not only this page. */
  total: number;
  /** More matches follow this page. */
  more: boolean;
}

/** Agents, their names and keys, API keys and the key revocation list. */
export interface DirectoryStore {
  getAgent(id: string): AgentRecord | undefined;
  findAgentByName(tenant: string, name: string): AgentRecord | undefined;
  findAgentByFingerprint(fingerprint: string): AgentRecord | undefined;
  /**
   * Insert or update; keeps the name and fingerprint indexes in step. Resolves once durable. A
   * shared store (cluster mode) may refuse a new name or key another node claimed first: 409
   * `name_taken` / `key_already_registered` (LMDB relies on the caller's checks).
   */
  putAgent(agent: AgentRecord): Promise<void>;
  /** Swap an agent's key: the fingerprint index follows. */
  replaceAgentKey(old: AgentRecord, updated: AgentRecord): Promise<void>;
  /** A tenant exists while it has an agent or an identity registration. */
  hasTenant(tenant: string): boolean;
  /** One page of a tenant's agents, ordered by address (§7.4): costs the page, not the tenant. */
  listAgentPage(tenant: string, q: AgentPageQuery): AgentPage;
  /** Remove an agent, its indexes, queue and outbox; hold its name until `holdUntil` (ms, 0 = no hold). */
  deleteAgent(agent: AgentRecord, holdUntil: number): Promise<void>;
  /** Until when (ms) a deregistered name stays taken; undefined when it is free. */
  nameHeldUntil(tenant: string, name: string, nowMs: number): number | undefined;
  revokeKey(entry: RevokedKey): Promise<void>;
  /** The revocation entry for either fingerprint form. */
  findRevokedKey(fingerprint: string): RevokedKey | undefined;
  getApiKey(hash: string): ApiKeyRecord | undefined;
  putApiKey(hash: string, rec: ApiKeyRecord): Promise<void>;
}

/** The rest that outlives a restart: idempotency, kept receipts, identity records, metadata. */
export interface RecordsStore {
  getIdempotency(senderId: string, key: string, nowMs: number): IdempotencyRecord | undefined;
  putIdempotency(senderId: string, key: string, rec: IdempotencyRecord): Promise<void>;
  /**
   * A store shared by several nodes (cluster mode): claim the key before delivering, atomically
   * across nodes (a pending marker living `claimMs`). 'claimed': this call delivers (its
   * putIdempotency replaces the marker; an expired record releases it). A record: the key's stored
   * answer (another node's, once it finished; waited for at most `claimMs`). 'pending': another
   * node still holds the claim after that wait. Absent on one node (the router's in-flight map).
   */
  claimIdempotency?(
    senderId: string,
    key: string,
    digest: string,
    claimMs: number,
  ): Promise<'claimed' | IdempotencyRecord | 'pending'>;
  /** Keep a frame for an offline agent (≤ cap, oldest dropped); returns how many were dropped. */
  pushOutbox(agentId: string, frameJson: string, expiresAtMs: number, cap: number): number;
  /** Take (and remove) the agent's kept frames, oldest first. */
  takeOutbox(agentId: string, nowMs: number): string[];
  /** Identity records (registrations, audit events): JSON values by key; durable once resolved. */
  putRecord(kind: RecordKind, key: string, value: unknown): Promise<void>;
  getRecord<T>(kind: RecordKind, key: string): T | undefined;
  /** Records whose key starts with `prefix`, in key order. */
  recordsWithPrefix<T>(kind: RecordKind, prefix: string): T[];
  /**
   * Write `value` under `key` only if the key is absent, atomically (two concurrent calls: exactly
   * one resolves true). Single-use ids (console sign-in links) are spent with it.
   */
  spendOnce(kind: RecordKind, key: string, value: unknown): Promise<boolean>;
  getMeta<T>(key: string): T | undefined;
  putMeta(key: string, value: unknown): Promise<void>;
  /** Resolves once every write issued so far is committed (range reads then see it). */
  settled(): Promise<void>;
}

/** Where an attachment is in its life (§22). */
export type AttachmentState = 'awaiting_upload' | 'uploaded' | 'confirmed';

/** An admin's decision on a held (suspicious) attachment. */
export interface AttachmentApproval {
  status: 'pending' | 'approved' | 'rejected';
  by?: string;
  /** ms */
  at?: number;
  ip?: string;
  reason?: string;
}

/** One attachment: what was declared, where it is in its life, what the scan said. Times in ms. */
export interface AttachmentRecord {
  id: string;
  ownerId: string;
  tenant: string;
  filename: string;
  contentType: string;
  size: number;
  /** `sha256:<64 lowercase hex>`: also where its bytes live (content-addressed). */
  digest: string;
  state: AttachmentState;
  /** Set at confirm: `pending` until the scan ends. */
  scanStatus?: string;
  scanReasons?: string[];
  /** The antivirus signature that matched. */
  signature?: string;
  approval?: AttachmentApproval;
  /** The bytes are on disk under the digest. */
  stored: boolean;
  createdAt: number;
  uploadExpiresAt: number;
  uploadedAt?: number;
  confirmedAt?: number;
  /** The one message carrying it, its recipient, and when it was routed. */
  messageId?: string;
  recipientId?: string;
  routedAt?: number;
  /** When the record (and its bytes) go. */
  expiresAt: number;
}

/** Attachments' metadata (the bytes are files beside the store, see src/attachments/blobs.ts). */
export interface AttachmentStore {
  getAttachment(id: string): AttachmentRecord | undefined;
  /** Insert or replace; resolves once durable. */
  putAttachment(rec: AttachmentRecord): Promise<void>;
  deleteAttachment(id: string): Promise<void>;
  /** Every attachment, in id order (restart: resume scans, count blob references; admin lists). */
  allAttachments(): Iterable<AttachmentRecord>;
}

export interface DataStats {
  fileBytes: number;
  dbs: Record<string, { entries: number; bytes: number }>;
}

/** Where an outbound item is: waiting for an attempt, or parked (kept, no more attempts until released). */
export type OutboundState = 'pending' | 'parked';

/**
 * One message waiting to leave this process for one target: a mesh peer (`mesh:<host id>`), a
 * federated provider (`fed:<domain>`) or a webhook (`webhook:<agent id>`). Times in ms.
 */
export interface OutboundItem {
  target: string;
  /** The message id: unique within a target (a second enqueue of it is a duplicate). */
  id: string;
  /** What to send (JSON text); adapters sign and address it at each attempt. */
  body: string;
  createdAt: number;
  /** Dropped unattempted from then on (the message's relay expiry); null = never. */
  expiresAt: number | null;
  /** Attempts that ended in a failure or a park (a success removes the item). */
  attempts: number;
  /** Not attempted before. */
  nextAt: number;
  state: OutboundState;
  /** Why the last attempt failed or why the item is parked. */
  lastError?: string;
}

export interface OutboundEnqueue {
  id: string;
  body: string;
  createdAt: number;
  expiresAt?: number | null;
  /** Default: createdAt (due at once). */
  nextAt?: number;
  /**
   * The ordering group (e.g. the sender): in an ordered due list, an item waits for the earlier
   * pending items of its group only. Absent: one group for the whole target.
   */
  group?: string;
}

/** A target's items at a glance. */
export interface OutboundCounts {
  pending: number;
  parked: number;
}

/**
 * Durable per-target outbound queues (src/outbound/ drives them). Reads are synchronous, from an
 * in-memory index of every item (bodies stay on disk); writes resolve once durable.
 */
export interface OutboundStore {
  /**
   * Queue an item; resolves once it is durable (a 2xx `queued` may then be sent). An id already
   * queued for the target (pending or parked) is left as it is: `added` false, that item returned.
   */
  outboundEnqueue(target: string, input: OutboundEnqueue): Promise<{ added: boolean; item: OutboundItem }>;
  /**
   * Pending items of the target due at `nowMs` (nextAt <= now), oldest enqueued first, at most
   * `limit`, leaving out those `skip` names (attempts in flight). `nextAt`: when the earliest
   * further pending, not skipped item is due (<= now when the limit cut the list); null if none.
   * `headOnly`: only the oldest pending item of each group (OutboundEnqueue.group) is considered;
   * while it is skipped (in flight) or not yet durable nothing of its group is due (its attempt's
   * end or its enqueue pumps again).
   */
  outboundDue(
    target: string,
    nowMs: number,
    limit: number,
    skip?: (id: string) => boolean,
    headOnly?: boolean,
  ): { items: OutboundItem[]; nextAt: number | null };
  /** One item (pending or parked), body included. */
  outboundGet(target: string, id: string): OutboundItem | undefined;
  /** Record a failed attempt: the new attempt count, when to try next, why. False if the item is gone. */
  outboundAttempted(target: string, id: string, attempts: number, nextAt: number, error: string): Promise<boolean>;
  /** Park the item: kept, no more attempts until `outboundRelease`. False if the item is gone. */
  outboundPark(target: string, id: string, attempts: number, reason: string): Promise<boolean>;
  /**
   * Parked items of the target become pending, due at `nowMs`; resolves with how many. With
   * `only`: just the items whose last reason (`lastError`) it accepts, parked ones and pending ones
   * not due before `nowMs` (deferred) alike.
   */
  outboundRelease(target: string, nowMs: number, only?: (reason: string | undefined) => boolean): Promise<number>;
  /** Remove an item (delivered, expired or no longer wanted); false if it was not there. */
  outboundRemove(target: string, id: string): Promise<boolean>;
  outboundCount(target: string): OutboundCounts;
  /** When the first pending item in queue order was enqueued (ms): its oldest; null when none is pending. */
  outboundOldest(target: string): number | null;
  /** Items (pending or parked) whose expiry is at or before `nowMs`, at most `limit` (for a sweep). */
  outboundExpired(nowMs: number, limit: number): Array<{ target: string; id: string }>;
  /** Targets that hold at least one item (restart recovery, queue depth metrics). */
  outboundTargets(): string[];
}

/** One storage engine behind the three interfaces (LMDB embedded; NATS JetStream for clusters). */
export interface Store extends QueueStore, DirectoryStore, RecordsStore, AttachmentStore, OutboundStore {
  /** Remove what has expired, at most `budget` entries of each kind per call. */
  sweep(nowMs: number, budget: number): SweepCounts;
  /** True while the store answers reads. */
  healthy(): boolean;
  /** Whether writes commit now (false from a failed commit until a commit succeeds again). */
  writeState(): { ok: true } | { ok: false; reason: string; since: number };
  /** Bytes the data file takes on disk; entries and bytes (pages in use) per database. For /metrics. */
  dataStats(): DataStats;
  /** The total queue depth and the `top` deepest queues, cheaply (no scan of the queue). For /metrics. */
  queueDepths(top: number): QueueDepths;
  close(): Promise<void>;
}
