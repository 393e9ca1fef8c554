// The store of cluster mode (AMP_STORE=nats): the queue, the directory and the shared records on
// NATS JetStream (NatsQueue, NatsDirectory, NatsRecords: every node mirrors them in memory and
// reads synchronously), the outbox of kept receipts (NatsOutbox, shared too), and a node-local
// LmdbStore on the node's data dir for what stays per node: attachments, outbound queues (local.ts).
//
// Writes to the shared parts resolve only once JetStream acknowledged them; NATS unreachable
// rejects them with 503 `store_unavailable`. While the connection is down writeState() is not ok
// (so /ready answers 503); reads keep answering from the mirrors.

import { LmdbStore } from '../lmdb.js';
import type {
  AckOutcome,
  AgentPage,
  AgentPageQuery,
  AgentRecord,
  ApiKeyRecord,
  Appended,
  AppendInput,
  DataStats,
  IdempotencyRecord,
  MessageRecord,
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
} from '../types.js';
import type { WriteState } from '../write-health.js';
import { type NatsDoor, type NatsStatus, openNats } from './door.js';
import { NatsDirectory } from './directory.js';
import { NodeLocalParts } from './local.js';
import type { NatsParts } from './parts.js';
import { NatsOutbox } from './outbox.js';
import { NatsPresence } from './presence.js';
import { NatsQueue } from './queue.js';
import { NatsRecords } from './records.js';
import { isTransient } from './retry.js';

/** The settings NatsStore reads (a subset of the server's Config). */
export interface NatsStoreConfig {
  readonly dataDir: string;
  readonly natsUrl: readonly string[];
  readonly natsToken: string;
  readonly natsCreds: string;
  readonly natsReplicas: number;
  readonly natsPrefix: string;
  readonly maxQueue: number;
  /** Seconds. */
  readonly relayTtl: number;
  /** Seconds. */
  readonly idempotencyTtl: number;
  /** Seconds a presence entry lives without a heartbeat. */
  readonly natsPresenceTtl: number;
}

/** How long a node keeps trying to open the shared store while NATS is not ready yet (a fresh cluster). */
const START_RETRY_MS = 60_000;

export interface NatsStoreOptions {
  /** This node's name (the NATS client name). */
  nodeId: string;
  observer?: StoreObserver;
  /** Failures of background writes, for the log. */
  onBackgroundError?: (what: string, err: unknown) => void;
  /** Failures worth a debug line only. */
  onDebug?: (what: string, err: unknown) => void;
}

export class NatsStore extends NodeLocalParts implements Store {
  private closed = false;
  private downSince = 0;

  private constructor(
    private readonly door: NatsDoor,
    local: LmdbStore,
    readonly queue: NatsQueue,
    readonly directory: NatsDirectory,
    readonly records: NatsRecords,
    /** Which agents have sessions on which node (the relay's `ClusterPresence`). */
    readonly presence: NatsPresence,
    readonly outbox: NatsOutbox,
  ) {
    super(local);
    door.onStatus((s) => {
      if (s !== 'connected' && this.downSince === 0) this.downSince = Date.now();
      if (s === 'connected') this.downSince = 0;
    });
  }

  /** Connects, creates or updates the streams and buckets, and loads their mirrors. */
  static async open(config: NatsStoreConfig, opts: NatsStoreOptions): Promise<NatsStore> {
    const door = await openNats({
      servers: [...config.natsUrl],
      token: config.natsToken || undefined,
      credsFile: config.natsCreds || undefined,
      name: opts.nodeId,
      replicas: config.natsReplicas,
      prefix: config.natsPrefix,
    });
    if (opts.onBackgroundError) door.warn = opts.onBackgroundError;
    const local = new LmdbStore({ dataDir: config.dataDir, observer: opts.observer });
    try {
      // A NATS cluster that has just started may still be electing the leaders of the streams it
      // creates: the whole set is opened again (fresh objects) while the failure is transient.
      const deadline = Date.now() + START_RETRY_MS;
      for (let attempt = 1; ; attempt++) {
        const parts = NatsStore.parts(door, config, opts);
        try {
          await Promise.all(
            [parts.records, parts.directory, parts.queue, parts.presence, parts.outbox].map((p) => p.open()),
          );
          const { queue, directory, records, presence, outbox } = parts;
          return new NatsStore(door, local, queue, directory, records, presence, outbox);
        } catch (e) {
          await NatsStore.closeParts(parts);
          if (!isTransient(e) || Date.now() + attempt * 500 >= deadline) throw e;
          opts.onBackgroundError?.('opening the cluster store (trying again)', e);
          await new Promise((r) => setTimeout(r, attempt * 500));
        }
      }
    } catch (e) {
      await local.close();
      await door.close();
      throw e;
    }
  }

  /** The shared parts, not opened yet. */
  private static parts(door: NatsDoor, config: NatsStoreConfig, opts: NatsStoreOptions) {
    const records = new NatsRecords(door, { idempotencyTtlMs: config.idempotencyTtl * 1000 });
    const directory = new NatsDirectory(door, {
      tenantHasRecords: (t) => records.hasPrefix('registrations', `${t}/`),
    });
    const queue = new NatsQueue(door, {
      maxQueue: config.maxQueue,
      relayTtlS: config.relayTtl,
      tenantOf: (id) => directory.getAgent(id)?.tenant,
      onExpired: opts.observer && ((agentId, ids) => opts.observer!.expired(agentId, ids)),
      onBackgroundError: opts.onBackgroundError,
      onDebug: opts.onDebug,
    });
    const presence = new NatsPresence(door, {
      nodeId: opts.nodeId,
      ttlMs: config.natsPresenceTtl * 1000,
      onError: opts.onBackgroundError,
    });
    const outbox = new NatsOutbox(door, { onBackgroundError: opts.onBackgroundError });
    return { records, directory, queue, presence, outbox };
  }

  /** Close parts whose opening failed; their own failures to close are of no interest then. */
  private static async closeParts(p: ReturnType<typeof NatsStore.parts>): Promise<void> {
    const quietly = (f: () => unknown) =>
      Promise.resolve()
        .then(f)
        .catch(() => undefined);
    await Promise.all([
      quietly(() => p.queue.close()),
      quietly(() => p.presence.close()),
      quietly(() => p.directory.close()),
      quietly(() => p.records.close()),
      quietly(() => p.outbox.close()),
    ]);
  }

  /** The connection and JetStream handles (shared secrets use them). */
  get parts(): NatsParts {
    return this.door;
  }

  status(): NatsStatus {
    return this.door.status();
  }

  /** After the mirror applied new messages for an agent, from any node. */
  onQueued(cb: (agentId: string) => void): () => void {
    return this.queue.onQueued(cb);
  }

  /** After a frame kept for an agent (a receipt) landed in the outbox's mirror, from any node. */
  onOutbox(cb: (agentId: string) => void): () => void {
    return this.outbox.onOutbox(cb);
  }

  /** After the mirror applied a change to an agent record, from any node (undefined: deleted). */
  onAgentChanged(cb: (agentId: string, agent: AgentRecord | undefined) => void): () => void {
    return this.directory.onAgentChanged(cb);
  }

  /** After the mirror applied a change to one of the agent's API key records (e.g. a revocation). */
  onApiKeyChanged(cb: (agentId: string) => void): () => void {
    return this.directory.onApiKeyChanged((_hash, rec) => {
      if (rec) cb(rec.agent_id);
    });
  }

  // --- QueueStore (NatsQueue) ---
  pendingCount(agentId: string, nowMs: number): number {
    return this.queue.pendingCount(agentId, nowMs);
  }

  seqOf(agentId: string, id: string): number | undefined {
    return this.queue.seqOf(agentId, id);
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

  readFrom(
    agentId: string,
    afterSeq: number,
    limit: number,
    nowMs: number,
  ): { entries: QueueEntry[]; scannedTo: number; more: boolean } {
    return this.queue.readFrom(agentId, afterSeq, limit, nowMs);
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

  // --- DirectoryStore (NatsDirectory) ---
  getAgent(id: string): AgentRecord | undefined {
    return this.directory.getAgent(id);
  }

  findAgentByName(tenant: string, name: string): AgentRecord | undefined {
    return this.directory.findAgentByName(tenant, name);
  }

  findAgentByFingerprint(fingerprint: string): AgentRecord | undefined {
    return this.directory.findAgentByFingerprint(fingerprint);
  }

  putAgent(agent: AgentRecord): Promise<void> {
    return this.directory.putAgent(agent);
  }

  replaceAgentKey(old: AgentRecord, updated: AgentRecord): Promise<void> {
    return this.directory.replaceAgentKey(old, updated);
  }

  hasTenant(tenant: string): boolean {
    return this.directory.hasTenant(tenant);
  }

  listAgentPage(tenant: string, q: AgentPageQuery): AgentPage {
    return this.directory.listAgentPage(tenant, q);
  }

  /** The agent and its name and keys, its queue, its outbox (all shared), and what this node keeps of it. */
  async deleteAgent(agent: AgentRecord, holdUntil: number): Promise<void> {
    await this.directory.deleteAgent(agent, holdUntil);
    await Promise.all([
      this.queue.dropAgent(agent.id),
      this.outbox.dropAgent(agent.id),
      this.local.deleteAgent(agent, 0),
    ]);
  }

  nameHeldUntil(tenant: string, name: string, nowMs: number): number | undefined {
    return this.directory.nameHeldUntil(tenant, name, nowMs);
  }

  revokeKey(entry: RevokedKey): Promise<void> {
    return this.directory.revokeKey(entry);
  }

  findRevokedKey(fingerprint: string): RevokedKey | undefined {
    return this.directory.findRevokedKey(fingerprint);
  }

  getApiKey(hash: string): ApiKeyRecord | undefined {
    return this.directory.getApiKey(hash);
  }

  putApiKey(hash: string, rec: ApiKeyRecord): Promise<void> {
    return this.directory.putApiKey(hash, rec);
  }

  // --- RecordsStore (NatsRecords; the outbox: NatsOutbox) ---
  pushOutbox(agentId: string, frameJson: string, expiresAtMs: number, cap: number): number {
    return this.outbox.push(agentId, frameJson, expiresAtMs, cap);
  }

  takeOutbox(agentId: string, nowMs: number): string[] {
    return this.outbox.take(agentId, nowMs);
  }

  getIdempotency(senderId: string, key: string, nowMs: number): IdempotencyRecord | undefined {
    return this.records.getIdempotency(senderId, key, nowMs);
  }

  putIdempotency(senderId: string, key: string, rec: IdempotencyRecord): Promise<void> {
    return this.records.putIdempotency(senderId, key, rec);
  }

  claimIdempotency(
    senderId: string,
    key: string,
    digest: string,
    claimMs: number,
  ): Promise<'claimed' | IdempotencyRecord | 'pending'> {
    return this.records.claimIdempotency(senderId, key, digest, claimMs);
  }

  putRecord(kind: RecordKind, key: string, value: unknown): Promise<void> {
    return this.records.putRecord(kind, key, value);
  }

  getRecord<T>(kind: RecordKind, key: string): T | undefined {
    return this.records.getRecord<T>(kind, key);
  }

  recordsWithPrefix<T>(kind: RecordKind, prefix: string): T[] {
    return this.records.recordsWithPrefix<T>(kind, prefix);
  }

  spendOnce(kind: RecordKind, key: string, value: unknown): Promise<boolean> {
    return this.records.spendOnce(kind, key, value);
  }

  getMeta<T>(key: string): T | undefined {
    return this.records.getMeta<T>(key);
  }

  putMeta(key: string, value: unknown): Promise<void> {
    return this.records.putMeta(key, value);
  }

  async settled(): Promise<void> {
    await Promise.all([this.records.settled(), this.outbox.settled(), this.local.settled()]);
  }

  // --- the engine ---
  sweep(nowMs: number, budget: number): SweepCounts {
    if (this.closed)
      return { expiredMessages: 0, forgottenIndexEntries: 0, idempotencyRecords: 0, outboxFrames: 0, more: false };
    const local = this.local.sweep(nowMs, budget);
    const queue = this.queue.sweep(nowMs, budget);
    return {
      ...local,
      outboxFrames: local.outboxFrames + this.outbox.sweep(nowMs),
      expiredMessages: local.expiredMessages + queue.messages,
      forgottenIndexEntries: local.forgottenIndexEntries + queue.indexEntries,
    };
  }

  /** Reads answer from the mirrors while NATS is away; only a closed store is unhealthy. */
  healthy(): boolean {
    return !this.closed && this.door.status() !== 'closed' && this.local.healthy();
  }

  /** Not ok while NATS is unreachable (writes fail with 503 store_unavailable), nor while the local store fails. */
  writeState(): WriteState {
    const s = this.door.status();
    if (s !== 'connected') {
      return {
        ok: false,
        reason: `the shared store (NATS) is unreachable (${s})`,
        since: this.downSince || Date.now(),
      };
    }
    return this.local.writeState();
  }

  dataStats(): DataStats {
    return this.local.dataStats();
  }

  queueDepths(top: number): QueueDepths {
    return this.queue.depths(top);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.presence.close(); // this node's entries deleted while the connection is up
    await this.queue.close();
    this.directory.close();
    this.records.close();
    this.outbox.close();
    await this.local.close();
    await this.door.close();
  }
}
