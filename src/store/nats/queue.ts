// The relay queue on NATS JetStream (cluster mode): one stream per deployment, one subject per
// recipient. The stream is the truth; every node keeps a mirror of it in memory (queue-mirror.ts),
// fed in stream order by one ordered consumer, and answers every read from it, synchronously.
//
// - append publishes the message (Nats-Msg-Id = message id, so a repeat within the duplicate
//   window is stored once) and creates its MessageRecord in the KV bucket `${prefix}_MSGS`
//   (queue-record-bucket.ts).
//   `seq` is 0 (the stream seq is known only from the publish ack: a live push leaves it to
//   catch-up); `committed` resolves once JetStream acknowledged both writes AND this node's mirror
//   has applied the message's stream seq (read-your-writes on the node that wrote). The stream's
//   per-subject cap (discard new per subject) refuses a message for a full queue: 429 queue_full.
// - ack deletes the messages from the stream by seq, then publishes an ack event on
//   `${prefix}_ACKS`; every node's mirror drops the entries when it sees the event. A message whose
//   expiry is within a day also gets its record marked acked (as LMDB mode does).
// - Events: `onQueued` after the mirror applied new entries for an agent (from any node),
//   `onAcked` after it dropped acked ones (or a dropped agent's whole queue, from another node).
// - NATS unreachable (timeouts, no connection): 503 store_unavailable. Nothing answers 2xx
//   without the publish ack.
// - A receipt mark (markReceipt) is set in this node's mirror at once and written to KV in the
//   background with compare-and-set; two nodes marking one message at the same moment can both
//   answer true, so in a rare cross-node race a receipt is sent twice.
// - Memory: every node holds every pending message (its JSON) and every record still remembered.

import { randomUUID } from '../../crypto/random.js';
import {
  DiscardPolicy,
  JetStreamApiError,
  type JsMsg,
  RetentionPolicy,
  StorageType,
  type StoredMsg,
} from '@nats-io/jetstream';
import { headers, type MsgHdrs } from '@nats-io/transport-node';
import type { QueuedMessage } from '../../../proto/index.js';
import type {
  AckOutcome,
  Appended,
  AppendInput,
  MessageRecord,
  PendingPage,
  QueueDepths,
  QueueEntry,
  QueueHead,
  QueueStore,
  ReceiptKind,
} from '../types.js';
import { type Follower, follow } from './follow.js';
import { CatchUp } from './queue-catch-up.js';
import { CommitWaits } from './queue-commits.js';
import { encodeToken } from './keys.js';
import type { NatsParts } from './parts.js';
import { type MirrorEntry, QueueMirror } from './queue-mirror.js';
import { RecordBucket } from './queue-record-bucket.js';
import { ACK_MEMORY_MS, RECEIPT_FLAG, type StoredRecord, toRecord } from './queue-records.js';
import { isQueueFull, storeFailure } from './queue-errors.js';
import { publishRetried, rideOut } from './retry.js';

export interface NatsQueueOptions {
  /** AMP_MAX_QUEUE: the per-subject cap. */
  maxQueue: number;
  /** AMP_RELAY_TTL in seconds: the streams' max age. */
  relayTtlS: number;
  /** The tenant of an agent, for its subject (`amp.<prefix>.q.<tenant>.<agent>`); `_` when unknown. */
  tenantOf?: (agentId: string) => string | undefined;
  /** Publish and API timeout (ms); default 5000. */
  timeoutMs?: number;
  /** Told which pending messages expired (dropped by a prune or the sweep), for metrics and logs. */
  onExpired?: (agentId: string, ids: readonly string[]) => void;
  /** Failures of background writes (ack events, receipt marks): for the log. */
  onBackgroundError?: (what: string, err: unknown) => void;
  /** Failures worth a debug line only (deleting expired messages from the stream). */
  onDebug?: (what: string, err: unknown) => void;
}

const H_AGENT = 'Amp-Agent';
const H_EXP = 'Amp-Expires';
const H_RECEIPT = 'Amp-Receipt';
const H_QUEUED = 'Amp-Queued';
const H_MSG_ID = 'Nats-Msg-Id';

const API_NO_MESSAGE = 10037;
const QUEUE_FULL_RETRY_AFTER_S = 60;
/** Ack events replayed at open (the race of a message seen just before its ack event). */
const ACK_REPLAY = 1000;
/** Acked ids remembered so a message the mirror receives after its ack event is left out. */
const RECENT_ACK_MS = 10 * 60 * 1000;

interface AckEvent {
  agentId: string;
  ids?: string[];
  /** The agent's whole queue was purged (deregistration). */
  drop?: true;
  at: number;
}

const nanos = (ms: number) => ms * 1_000_000;

export class NatsQueue implements QueueStore {
  readonly streamName: string;
  readonly ackStreamName: string;
  private readonly subjectRoot: string;
  private readonly ackSubject: string;
  private readonly timeoutMs: number;
  private readonly mirror = new QueueMirror();
  private readonly records: RecordBucket;
  private readonly recentAcks = new Map<string, number>();
  private readonly queuedListeners = new Set<(agentId: string) => void>();
  private readonly ackedListeners = new Set<(agentId: string, ids: readonly string[]) => void>();
  private readonly commits: CommitWaits;
  /** Per agent, the deletions of its expired messages from the stream still under way. */
  private readonly expiring = new Map<string, Promise<void>>();
  private followers: Follower[] = [];
  private queueFollower: Follower | undefined;
  private opened = false;
  private closed = false;

  constructor(
    private readonly parts: NatsParts,
    private readonly opts: NatsQueueOptions,
  ) {
    const p = parts.prefix;
    const t = encodeToken(p);
    this.streamName = `${p}_Q`;
    this.ackStreamName = `${p}_ACKS`;
    this.records = new RecordBucket(parts, opts.onBackgroundError);
    this.subjectRoot = `amp.${t}.q`;
    this.ackSubject = `amp.${t}.acks`;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    const catchUp = new CatchUp({
      // Closed (or not open yet): nothing to catch up.
      lastSeq: () => (this.closed || !this.queueFollower ? Number.MAX_SAFE_INTEGER : this.queueFollower.lastSeq),
      take: (seq) => this.queueFollower?.take(seq) === true,
      read: (seq) => this.storedFrom(seq),
      apply: (m) => this.applyQueued(m.seq, m.header, m.string(), m.time.getTime()),
      onError: (e) => this.opts.onDebug?.('reading the queue stream to catch the mirror up', e),
    });
    this.commits = new CommitWaits((seq) => this.isGone(seq), 2 * this.timeoutMs, {
      resyncing: () => this.queueFollower?.resyncing === true,
      lagging: (why) => this.queueFollower?.resync(why),
      catchUp: (seq) => catchUp.request(seq),
    });
  }

  /** Create or update the streams and the bucket, load the mirrors, keep following. */
  async open(): Promise<void> {
    const { jsm, js, replicas } = this.parts;
    const ttlMs = this.opts.relayTtlS * 1000;
    await this.ensureStream({
      name: this.streamName,
      subjects: [`${this.subjectRoot}.>`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_msgs_per_subject: this.opts.maxQueue,
      discard: DiscardPolicy.New,
      discard_new_per_subject: true,
      max_age: nanos(ttlMs),
      allow_direct: true,
      duplicate_window: nanos(Math.min(120_000, ttlMs)),
      num_replicas: replicas,
    });
    await this.ensureStream({
      name: this.ackStreamName,
      subjects: [this.ackSubject],
      retention: RetentionPolicy.Limits,
      storage: StorageType.File,
      max_age: nanos(ttlMs),
      duplicate_window: nanos(Math.min(120_000, ttlMs)),
      num_replicas: replicas,
    });
    // Records first, then acks, then the queue: a message seen before its ack event is dropped by it.
    const { nc, warn } = this.parts;
    const records = await this.records.open(ttlMs);
    this.followers.push(records);
    const ackInfo = await jsm.streams.info(this.ackStreamName);
    const ackStart = Math.max(1, ackInfo.state.last_seq + 1 - ACK_REPLAY);
    const acks = await follow(js, nc, {
      stream: this.ackStreamName,
      startSeq: ackStart,
      onMessage: (m) => this.applyAckEvent(m),
      onWarn: warn,
    });
    this.followers.push(acks);
    await Promise.all([records.ready, acks.ready]);
    const queue = await follow(js, nc, {
      stream: this.streamName,
      onMessage: (m) => this.applyQueued(m.seq, m.headers, m.string(), Math.floor(m.info.timestampNanos / 1e6)),
      onWarn: warn,
    });
    this.followers.push(queue);
    this.queueFollower = queue;
    await queue.ready;
    this.commits.start();
    this.opened = true;
  }

  private async ensureStream(cfg: Parameters<NatsParts['jsm']['streams']['add']>[0]): Promise<void> {
    const { jsm } = this.parts;
    try {
      await jsm.streams.info(cfg.name!);
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === 10059) {
        await jsm.streams.add(cfg);
        return;
      }
      throw e;
    }
    await jsm.streams.update(cfg.name!, cfg);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const f of this.followers) f.stop();
    this.followers = [];
    this.commits.stop();
  }

  onQueued(cb: (agentId: string) => void): () => void {
    this.queuedListeners.add(cb);
    return () => this.queuedListeners.delete(cb);
  }

  onAcked(cb: (agentId: string, ids: readonly string[]) => void): () => void {
    this.ackedListeners.add(cb);
    return () => this.ackedListeners.delete(cb);
  }

  private assertOpen(): void {
    if (!this.opened || this.closed) throw storeFailure(new Error('the queue is not open'));
  }

  subject(agentId: string): string {
    const tenant = this.opts.tenantOf?.(agentId) ?? '_';
    return `${this.subjectRoot}.${encodeToken(tenant)}.${encodeToken(agentId)}`;
  }

  // ---- following the streams -------------------------------------------------------------

  /** A message of the queue stream, in stream order (from the consumer, or read by a catch-up). */
  private applyQueued(seq: number, h: MsgHdrs | undefined, json: string, storedAtMs: number): void {
    const agentId = h?.get(H_AGENT);
    const id = h?.get(H_MSG_ID);
    if (agentId && id) {
      if (this.recentAcks.has(id)) {
        this.mirror.of(agentId).seen(seq);
      } else {
        const e: MirrorEntry = {
          seq,
          id,
          json,
          exp: Number(h!.get(H_EXP)),
          rc: h!.get(H_RECEIPT) === '1',
          queuedAt: Number(h!.get(H_QUEUED)) || storedAtMs,
          gone: false,
        };
        this.mirror.add(agentId, e);
      }
    }
    this.commits.advance(seq);
    if (agentId && id) for (const cb of this.queuedListeners) cb(agentId);
  }

  private applyAckEvent(m: JsMsg): void {
    let ev: AckEvent;
    try {
      ev = m.json<AckEvent>();
    } catch {
      return;
    }
    const now = Date.now();
    const removed: string[] = ev.drop ? this.mirror.clear(ev.agentId) : [];
    for (const id of ev.drop ? [] : (ev.ids ?? [])) {
      if (ev.at + RECENT_ACK_MS > now) this.recentAcks.set(id, ev.at);
      if (this.mirror.remove(ev.agentId, id)) removed.push(id);
    }
    if (removed.length > 0) for (const cb of this.ackedListeners) cb(ev.agentId, removed);
  }

  // ---- QueueStore ----------------------------------------------------------------------

  pendingCount(agentId: string, nowMs: number): number {
    this.prune(agentId, nowMs);
    return this.mirror.peek(agentId)?.size ?? 0;
  }

  seqOf(agentId: string, id: string): number | undefined {
    return this.mirror.peek(agentId)?.byId.get(id)?.seq;
  }

  isPending(agentId: string, id: string, nowMs: number): boolean {
    const e = this.mirror.peek(agentId)?.byId.get(id);
    return e !== undefined && e.exp > nowMs;
  }

  private prune(agentId: string, nowMs: number): void {
    const gone = this.mirror.prune(agentId, nowMs);
    if (gone.length > 0) this.expired(agentId, gone);
  }

  /**
   * Entries the mirror dropped as expired: told to onExpired, and deleted from the stream so its
   * per-subject cap counts live messages only. One that expires with the stream's max age goes by
   * itself; every node deletes what it drops (a "no message" answer is ignored).
   */
  private expired(agentId: string, gone: readonly MirrorEntry[]): void {
    this.opts.onExpired?.(
      agentId,
      gone.map((e) => e.id),
    );
    const ttlMs = this.opts.relayTtlS * 1000;
    const early = gone.filter((e) => e.exp < e.queuedAt + ttlMs);
    if (early.length === 0 || this.closed) return;
    const deleted = Promise.all(
      early.map((e) => this.deleteSeq(e.seq).catch((err: unknown) => this.opts.onDebug?.('delete expired', err))),
    );
    const before = this.expiring.get(agentId);
    const all = (before ? Promise.all([before, deleted]) : deleted).then(() => {});
    this.expiring.set(agentId, all);
    void all.then(() => {
      if (this.expiring.get(agentId) === all) this.expiring.delete(agentId);
    });
  }

  append(agentId: string, input: AppendInput): Appended {
    this.assertOpen();
    const { msg, expiresAtMs } = input;
    const h = headers();
    h.set(H_AGENT, agentId);
    h.set(H_EXP, String(expiresAtMs));
    h.set(H_QUEUED, String(Date.parse(msg.queued_at) || Date.now()));
    if (input.receipt) h.set(H_RECEIPT, '1');
    // Ridden through a leader election; the message id as Nats-Msg-Id stores a retry once.
    const publish = () => publishRetried(this.parts, this.subject(agentId), input.json, { msgID: msg.id, headers: h });
    // The cap refused it while expired messages of the agent were being deleted: once more after them.
    const deleting = this.expiring.get(agentId);
    const published = publish()
      .catch(async (e: unknown) => {
        if (!deleting || !isQueueFull(e)) throw e;
        await deleting;
        return publish();
      })
      .then((ack) => this.commits.wait(ack.seq));
    const rec: StoredRecord = { r: agentId, f: input.senderId, e: expiresAtMs };
    if (msg.envelope.thread_id !== msg.id) rec.t = msg.envelope.thread_id;
    if (input.receipt) rec.rc = 1;
    const recorded = this.records.create(msg.id, rec);
    const committed = Promise.all([published, recorded]).then(
      () => {},
      async (e: unknown) => {
        // A record written for a message that was refused goes again (a duplicate's stays).
        const wrote = await recorded.catch(() => false);
        if (
          wrote &&
          !(await published.then(
            () => true,
            () => false,
          ))
        )
          this.records.forget(msg.id);
        throw storeFailure(e, { recipient: agentId, limit: this.opts.maxQueue, retryAfter: QUEUE_FULL_RETRY_AFTER_S });
      },
    );
    return { seq: 0, committed };
  }

  readFrom(
    agentId: string,
    afterSeq: number,
    limit: number,
    nowMs: number,
  ): { entries: QueueEntry[]; scannedTo: number; more: boolean } {
    const q = this.mirror.peek(agentId);
    if (!q) return { entries: [], scannedTo: afterSeq, more: false };
    return q.readFrom(afterSeq, limit, nowMs);
  }

  lastSeq(agentId: string): number {
    return this.mirror.peek(agentId)?.lastSeq ?? 0;
  }

  /** Everything the mirror applied is committed: the same as lastSeq. */
  committedSeq(agentId: string): number {
    return this.lastSeq(agentId);
  }

  queueHead(agentId: string, nowMs: number): QueueHead {
    this.prune(agentId, nowMs);
    const q = this.mirror.peek(agentId);
    const first = q?.byId.values().next().value;
    return { depth: q?.size ?? 0, oldestQueuedAt: first ? first.queuedAt : null };
  }

  listPending(agentId: string, limit: number, nowMs: number): PendingPage {
    this.prune(agentId, nowMs);
    const q = this.mirror.peek(agentId);
    if (!q) return { messages: [], remaining: 0 };
    const messages: QueuedMessage[] = [];
    for (const e of q.byId.values()) {
      if (messages.length >= limit) break;
      messages.push(JSON.parse(e.json) as QueuedMessage);
    }
    return { messages, remaining: q.size - messages.length };
  }

  /**
   * Pending ids are removed from the mirror at once and deleted from the stream by seq; when a
   * deletion fails (NATS unreachable) they are pending again and the call rejects (503). Then
   * the ack event tells the other nodes (a failure to publish it is retried in the background:
   * the stream is right already, other nodes' mirrors catch up at their next restart at worst).
   */
  async ack(
    agentId: string,
    ids: readonly string[],
    nowMs: number,
    owesReceipt?: (id: string) => void,
  ): Promise<AckOutcome[]> {
    this.assertOpen();
    const outcomes: AckOutcome[] = [];
    const taken: MirrorEntry[] = [];
    for (const id of ids) {
      const e = this.mirror.remove(agentId, id);
      if (!e) {
        const x = this.records.get(id);
        const acked = x && x.r === agentId && (x.e > nowMs || x.a !== undefined);
        outcomes.push(acked ? 'already_acked' : 'unknown');
        continue;
      }
      taken.push(e);
      outcomes.push('acked');
    }
    if (taken.length === 0) return outcomes;
    try {
      await Promise.all(taken.map((e) => this.deleteSeq(e.seq)));
    } catch (err) {
      this.mirror.restore(agentId, taken);
      throw storeFailure(err);
    }
    const acked = taken.map((e) => e.id);
    for (const id of acked) this.recentAcks.set(id, nowMs);
    for (const e of taken) if (e.rc) owesReceipt?.(e.id);
    for (const e of taken) if (e.exp < nowMs + ACK_MEMORY_MS) this.records.patch(e.id, { a: nowMs });
    for (const cb of this.ackedListeners) cb(agentId, acked);
    const ev: AckEvent = { agentId, ids: acked, at: nowMs };
    await this.publishEvent(ev).catch((err: unknown) => this.retryEvent(ev, err));
    return outcomes;
  }

  private async deleteSeq(seq: number): Promise<void> {
    try {
      await rideOut(this.parts, () => this.parts.jsm.streams.deleteMessage(this.streamName, seq, false));
    } catch (e) {
      // Gone already: expired, or deleted by another node's ack of it.
      if (e instanceof JetStreamApiError && e.code === API_NO_MESSAGE) return;
      if (e instanceof Error && /no message found/i.test(e.message)) return;
      throw e;
    }
  }

  private async publishEvent(ev: AckEvent): Promise<void> {
    await publishRetried(this.parts, this.ackSubject, JSON.stringify(ev), { msgID: randomUUID() });
  }

  private retryEvent(ev: AckEvent, first: unknown): void {
    this.opts.onBackgroundError?.('ack event', first);
    const again = (tries: number): void => {
      if (this.closed || tries <= 0) return;
      const t = setTimeout(() => {
        this.publishEvent(ev).catch(() => again(tries - 1));
      }, 1000);
      t.unref();
    };
    again(30);
  }

  message(id: string): MessageRecord | undefined {
    const x = this.records.get(id);
    return x === undefined ? undefined : toRecord(id, x);
  }

  markReceipt(id: string, kind: ReceiptKind): boolean {
    const flag = RECEIPT_FLAG[kind];
    const x = this.records.get(id);
    if (!x || x[flag] === 1 || this.closed) return false;
    this.records.patch(id, { [flag]: 1 });
    return true;
  }

  // ---- for the composite store ---------------------------------------------------------

  /** Remove the agent's whole queue (deregistration): purge its subject, tell every node. */
  async dropAgent(agentId: string): Promise<void> {
    this.assertOpen();
    try {
      const filter = `${this.subjectRoot}.*.${encodeToken(agentId)}`;
      await rideOut(this.parts, () => this.parts.jsm.streams.purge(this.streamName, { filter }));
      this.mirror.clear(agentId);
      await this.publishEvent({ agentId, drop: true, at: Date.now() });
    } catch (e) {
      throw storeFailure(e);
    }
  }

  /** The total of pending entries in the mirror and the `top` deepest queues. */
  depths(top: number): QueueDepths {
    return this.mirror.depths(top);
  }

  /** Drop expired entries, forgotten records and old acked ids from memory. */
  sweep(nowMs: number, budget: number): { messages: number; indexEntries: number } {
    const messages = this.mirror.sweep(nowMs, (agentId, gone) => this.expired(agentId, gone));
    const indexEntries = this.records.sweep(nowMs, budget);
    for (const [id, at] of this.recentAcks) {
      if (at + RECENT_ACK_MS > nowMs) break;
      this.recentAcks.delete(id);
    }
    return { messages, indexEntries };
  }

  /** Stream seq of the last queue message applied (tests, diagnostics). */
  get mirrorSeq(): number {
    return this.commits.appliedSeq;
  }

  /** Whether the stream no longer holds `seq` (a commit wait asks, see queue-commits.ts). */
  private async isGone(seq: number): Promise<boolean> {
    return (await this.storedAt(seq)) === null;
  }

  /** The queue stream's message at `seq` (from its leader); null when there is none. */
  private storedAt(seq: number): Promise<StoredMsg | null> {
    return this.getMessage({ seq });
  }

  /** The queue stream's first message at or after `seq` (from its leader); null when there is none. */
  private storedFrom(seq: number): Promise<StoredMsg | null> {
    // nats-server 2.9 takes next_by_subj in a message get; the client's type lists it for direct gets only.
    return this.getMessage({ seq, next_by_subj: `${this.subjectRoot}.>` } as { seq: number });
  }

  private async getMessage(query: { seq: number }): Promise<StoredMsg | null> {
    try {
      return await this.parts.jsm.streams.getMessage(this.streamName, query);
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === API_NO_MESSAGE) return null;
      throw e;
    }
  }
}
