// The relay queue in LMDB: `queue` [recipient id, seq] -> message, `msgindex` message id -> what
// is remembered of it, and an in-memory index per recipient that answers counts and acks without
// reading LMDB. Field names on disk are short (they are written per message); the interface has
// the real ones.

import type { Database, Key, RootDatabase } from 'lmdb';
import { AGENT_ID_RE, type QueuedMessage } from '../../proto/index.js';
import type { SliceSweeper } from './lmdb-sweep.js';
import { uncache, type Writes } from './write-health.js';
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

/**
 * A MessageRecord as stored, as small as it can be: it outlives the message (see `forgotten`).
 * `t` is left out when the thread is the message itself (a first message); the queue seq is not
 * kept (the queue key holds it while the message is pending). Older records may carry `s`.
 */
interface StoredIndex {
  r: StoredAgentId;
  f: StoredAgentId;
  s?: number;
  t?: string;
  e: number;
  a?: number;
  rc?: 1;
  rd?: 1;
  rr?: 1;
}

interface IndexEntry {
  seq: number;
  exp: number;
  /** The sender asked for a delivery receipt. */
  rc: true | undefined;
  /** Set while the append is not committed yet: settles with it (rejects if it failed). */
  appending: Promise<void> | undefined;
}

/**
 * In-memory view of one recipient's queue: insertion order of the Map is queue order. It holds an
 * appended message from the moment the write is issued (so the queue cap counts writes in flight
 * and an ack of a message pushed before its commit finds it) and drops it if the commit fails.
 */
interface RecipientIndex {
  /** Pending messages by id. */
  entries: Map<string, IndexEntry>;
  lastSeq: number;
  /** Every append up to this seq has settled: committed, or failed and gone from `entries`. */
  committedSeq: number;
  /** Earliest expiry among entries; Infinity when empty. Lets counts skip a scan. */
  minExp: number;
}

const SEQ_MAX = Number.MAX_SAFE_INTEGER;
/** queueHead reads at most this many entries looking for a committed oldest one. */
const HEAD_READS = 8;
/**
 * How long an acked message id still answers already_acked, at least (§15: "remembered ≥ 24 h").
 * The msgindex record of a message goes at max(relay expiry, ack + ACK_MEMORY_MS), and no sooner:
 * a read receipt is allowed after the ack until relay expiry (§16, decision 27), which needs the
 * recipient, the sender and the read flag; a repeated ack must answer already_acked for 24 h
 * (§15), which needs the recipient and the ack mark. Threading (§12.4) takes the thread "if known
 * here", so it needs no window of its own. What is kept is only that (see StoredIndex): about
 * 140 bytes per message on disk, pages included, where the first layout took 250.
 */
const ACK_MEMORY_MS = 24 * 3600 * 1000;
const RECEIPT_FLAG: Record<ReceiptKind, 'rd' | 'rr'> = { delivery: 'rd', read: 'rr' };

/** An agent id in a msgindex record: `agt_` + 24 hex as its 12 bytes (half the size), else as is. */
type StoredAgentId = string | Uint8Array;

function packAgentId(id: string): StoredAgentId {
  return AGENT_ID_RE.test(id) ? Buffer.from(id.slice(4), 'hex') : id;
}

function unpackAgentId(x: StoredAgentId): string {
  return typeof x === 'string' ? x : `agt_${Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('hex')}`;
}

function toRecord(id: string, x: StoredIndex): MessageRecord {
  const m: MessageRecord = {
    recipientId: unpackAgentId(x.r),
    senderId: unpackAgentId(x.f),
    threadId: x.t ?? id,
    expiresAt: x.e,
    receiptRequested: x.rc === 1,
    deliveryReceiptSent: x.rd === 1,
    readReceiptSent: x.rr === 1,
  };
  if (x.a !== undefined) m.ackedAt = x.a;
  return m;
}

export class LmdbQueue implements QueueStore {
  private readonly queue: Database<QueueValue, QueueKey>;
  private readonly msgindex: Database<StoredIndex, string>;
  private readonly recipients = new Map<string, RecipientIndex>();
  /** Sequence numbers grow with wall-clock microseconds, so they keep growing across restarts. */
  private nextSeq = Date.now() * 1000;

  constructor(
    root: RootDatabase,
    private readonly w: Writes,
    private readonly assertOpen: () => void,
    private readonly isClosed: () => boolean,
    /** Told which pending messages expired (dropped by a prune or the sweeper), for metrics and logs. */
    private readonly onExpired: (agentId: string, ids: readonly string[]) => void = () => {},
  ) {
    this.queue = root.openDB({ name: 'queue' });
    // Cached so a put is visible to the next get before its commit (acks racing each other).
    this.msgindex = root.openDB({ name: 'msgindex', cache: true });
  }

  private index(agentId: string): RecipientIndex {
    let ri = this.recipients.get(agentId);
    if (ri) return ri;
    ri = { entries: new Map(), lastSeq: 0, committedSeq: 0, minExp: Number.POSITIVE_INFINITY };
    for (const { key, value } of this.queue.getRange({ start: [agentId, 0], end: [agentId, SEQ_MAX] })) {
      const seq = key[1];
      ri.entries.set(value.i, { seq, exp: value.e, rc: value.rc ? true : undefined, appending: undefined });
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
    let minExp = Number.POSITIVE_INFINITY;
    const expired: string[] = [];
    for (const [id, ent] of ri.entries) {
      if (ent.exp <= nowMs) {
        ri.entries.delete(id);
        expired.push(id);
        // Best effort: a failed removal is retried by the next prune after a restart.
        this.w.background(this.w.remove(this.queue, [agentId, ent.seq]));
      } else if (ent.exp < minExp) {
        minExp = ent.exp;
      }
    }
    ri.minExp = minExp;
    if (expired.length > 0) this.onExpired(agentId, expired);
  }

  pendingCount(agentId: string, nowMs: number): number {
    const ri = this.index(agentId);
    this.prune(agentId, ri, nowMs);
    return ri.entries.size;
  }

  isPending(agentId: string, id: string, nowMs: number): boolean {
    const ent = this.index(agentId).entries.get(id);
    return ent !== undefined && ent.exp > nowMs;
  }

  append(agentId: string, input: AppendInput): Appended {
    this.assertOpen();
    this.w.assertRoom();
    const { msg, expiresAtMs } = input;
    const ri = this.index(agentId);
    const seq = Math.max(this.nextSeq++, ri.lastSeq + 1);
    ri.lastSeq = seq;
    // One shape for every entry (appending set, then cleared, never deleted): V8 keeps it fast.
    const ent: IndexEntry = { seq, exp: expiresAtMs, rc: input.receipt ? true : undefined, appending: undefined };
    ri.entries.set(msg.id, ent);
    if (expiresAtMs < ri.minExp) ri.minExp = expiresAtMs;
    const qv: QueueValue = { e: expiresAtMs, i: msg.id, j: input.json };
    if (input.receipt) qv.rc = 1;
    const idx: StoredIndex = { r: packAgentId(agentId), f: packAgentId(input.senderId), e: expiresAtMs };
    if (msg.envelope.thread_id !== msg.id) idx.t = msg.envelope.thread_id;
    if (input.receipt) idx.rc = 1;
    // Both writes go in one transaction (one event-loop turn): one guard for the pair. lmdb-js
    // gives the unconditional writes of one batch the same commit promise; no Promise.all then.
    const queued = this.queue.put([agentId, seq], qv);
    const indexed = this.msgindex.put(msg.id, idx);
    const pair = queued === indexed ? indexed : Promise.all([queued, indexed]);
    this.w.timed(indexed);
    // Commits and failures complete in order, so committedSeq only grows. It is updated before the
    // caller's continuation runs, which then sees this entry as settled.
    const committed = pair.then(
      () => {
        ent.appending = undefined;
        if (seq > ri.committedSeq) ri.committedSeq = seq;
      },
      (e: unknown) => {
        // Only committed messages are indexed: nothing may count, list or ack a failed one.
        if (ri.entries.get(msg.id) === ent) ri.entries.delete(msg.id);
        if (seq > ri.committedSeq) ri.committedSeq = seq;
        return this.w.failure(e, () => uncache(this.msgindex, msg.id, idx));
      },
    );
    ent.appending = committed;
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
    const range = this.queue.getRange({ start: [agentId, afterSeq + 1], end: [agentId, SEQ_MAX], limit });
    for (const { key, value } of range) {
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

  queueHead(agentId: string, nowMs: number): QueueHead {
    const ri = this.index(agentId);
    this.prune(agentId, ri, nowMs);
    let oldestQueuedAt: number | null = null;
    let reads = 0;
    // The first entry is the oldest; one still committing has nothing to read yet, so look on a little.
    for (const ent of ri.entries.values()) {
      if (++reads > HEAD_READS) break;
      const v = this.queue.get([agentId, ent.seq]);
      if (!v) continue;
      oldestQueuedAt = Date.parse((JSON.parse(v.j) as QueuedMessage).queued_at);
      break;
    }
    return { depth: ri.entries.size, oldestQueuedAt: Number.isFinite(oldestQueuedAt) ? oldestQueuedAt : null };
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
   * the recipient's own is already acked, unless it expired unacked (unknown). If the removals
   * fail to commit, the messages are pending again and the call rejects (507).
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
    const taken: Array<[string, IndexEntry]> = [];
    for (const id of ids) {
      const ent = ri.entries.get(id);
      if (!ent) {
        // Not pending: acked, or expired. An expired message was acked only if it bears the mark.
        const idx = this.msgindex.get(id);
        const acked = idx && unpackAgentId(idx.r) === agentId && (idx.e > nowMs || idx.a !== undefined);
        outcomes.push(acked ? 'already_acked' : 'unknown');
        continue;
      }
      ri.entries.delete(id);
      taken.push([id, ent]);
      if (ent.rc) owesReceipt?.(id);
      outcomes.push('acked');
    }
    // The removals of one turn commit in one transaction: they succeed or fail together, and
    // lmdb-js gives them one commit promise. So one wait (and one failure path) for the batch.
    const pending = new Set<PromiseLike<unknown>>();
    const marked: Array<[string, StoredIndex]> = [];
    for (const [id, ent] of taken) pending.add(this.removal(agentId, id, ent, nowMs, marked));
    const all = pending.size === 1 ? pending.values().next().value! : Promise.all(pending);
    try {
      await this.w.guard(all, () => {
        for (const [id, idx] of marked) uncache(this.msgindex, id, idx);
      });
    } catch (e) {
      this.restore(ri, taken);
      throw e;
    }
    return outcomes;
  }

  /**
   * The durable ack of one message: its queue entry goes and, when it expires within
   * ACK_MEMORY_MS, its record takes the ack mark (so it answers already_acked after its expiry).
   * A message acked before its own append committed (pushed live) waits for that commit; if the
   * append failed there is nothing to remove or mark.
   */
  /**
   * Remove an acked entry (after its append, if that is still committing), marking its index record
   * acked (noted in `marked`); the raw write promise, settled with the removal's commit.
   */
  private removal(
    agentId: string,
    id: string,
    ent: IndexEntry,
    nowMs: number,
    marked: Array<[string, StoredIndex]>,
  ): PromiseLike<unknown> {
    if (ent.appending) {
      const remove = () => this.removal(agentId, id, { ...ent, appending: undefined }, nowMs, marked);
      return ent.appending.then(remove, () => {});
    }
    const removed = this.queue.remove([agentId, ent.seq]);
    const idx = ent.exp < nowMs + ACK_MEMORY_MS ? this.msgindex.get(id) : undefined;
    if (!idx) return removed;
    const mark = { ...idx, a: nowMs };
    marked.push([id, mark]);
    const written = this.msgindex.put(id, mark);
    return written === removed ? written : Promise.all([removed, written]);
  }

  /** Put back entries whose ack did not commit, in queue order. */
  private restore(ri: RecipientIndex, back: Array<[string, IndexEntry]>): void {
    ri.entries = new Map([...ri.entries, ...back].sort((x, y) => x[1].seq - y[1].seq));
    for (const [, e] of back) if (e.exp < ri.minExp) ri.minExp = e.exp;
  }

  message(id: string): MessageRecord | undefined {
    const x = this.msgindex.get(id);
    return x === undefined ? undefined : toRecord(id, x);
  }

  markReceipt(id: string, kind: ReceiptKind): boolean {
    const flag = RECEIPT_FLAG[kind];
    const idx = this.msgindex.get(id);
    if (!idx || idx[flag] === 1 || this.isClosed()) return false;
    // Visible at once through the cache; losing it in a crash only means a repeated receipt. A
    // message still being appended is marked once that commits (a failed one gets no mark).
    const appending = this.recipients.get(unpackAgentId(idx.r))?.entries.get(id)?.appending;
    const mark = () => this.w.put(this.msgindex, id, { ...idx, [flag]: 1 });
    this.w.background(appending ? appending.then(mark) : mark());
    return true;
  }

  /** Remove the agent's whole queue (deregistration); the removals, to wait for. */
  dropAgent(agentId: string): Promise<void>[] {
    const removals: Promise<void>[] = [];
    for (const key of this.queue.getKeys({ start: [agentId, 0], end: [agentId, SEQ_MAX] })) {
      removals.push(this.w.remove(this.queue, key));
    }
    this.recipients.delete(agentId);
    return removals;
  }

  /** Total entries in the queue database, and the deepest in-memory queues (loaded recipients only). */
  depths(top: number): QueueDepths {
    const total = (this.queue.getStats() as { entryCount: number }).entryCount;
    const agents: QueueDepths['agents'] = [];
    if (top < 1) return { total, agents };
    for (const [agentId, ri] of this.recipients) {
      const depth = ri.entries.size;
      if (depth === 0 || (agents.length === top && depth <= agents[top - 1]!.depth)) continue;
      // Insertion into a short sorted list: `top` is small, the loop runs over every recipient once.
      let i = agents.length;
      while (i > 0 && agents[i - 1]!.depth < depth) i--;
      agents.splice(i, 0, { agentId, depth });
      if (agents.length > top) agents.pop();
    }
    return { total, agents };
  }

  dbStats<T>(stat: (db: Database<unknown, Key>) => T): { queue: T; msgindex: T } {
    return { queue: stat(this.queue), msgindex: stat(this.msgindex) };
  }

  /** Expired queue entries and forgotten message ids, a slice at a time. */
  sweep(sweeper: SliceSweeper, nowMs: number, budget: number): { messages: number; indexEntries: number } {
    const messages = sweeper.slice('queue', this.queue, budget, (key, v) => {
      if (v.e > nowMs) return false;
      const ri = this.recipients.get(key[0]);
      // An entry a prune already dropped (its removal not yet committed) was reported then.
      if (!ri || ri.entries.delete(v.i)) this.onExpired(key[0], [v.i]);
      return true;
    });
    const forgotten = (v: StoredIndex) => v.e <= nowMs && (v.a === undefined || v.a + ACK_MEMORY_MS <= nowMs);
    const indexEntries = sweeper.slice('msgindex', this.msgindex, budget, (_k, v) => forgotten(v));
    return { messages, indexEntries };
  }
}
