// The message records of the queue on NATS: one KV bucket `${prefix}_MSGS`, a key per message id,
// mirrored in memory (RecordMirror, queue-records.ts) by a follower of the bucket's stream.
// A record is created only if new (compare-and-set: a repeated message finds it there). Marks
// (acked, receipts sent) are merged into the mirror at once and into KV in the background, by
// compare-and-set again (read, merge, update at that revision; again on a conflict), so no node's
// mark is lost.

import { JetStreamApiError, type JsMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { randomUUID } from '../../crypto/random.js';
import { createBucket } from './bucket.js';
import { type Follower, follow } from './follow.js';
import { decodeToken, encodeToken } from './keys.js';
import type { NatsParts } from './parts.js';
import { storeFailure } from './queue-errors.js';
import { ACK_MEMORY_MS, adds, merge, RecordMirror, type StoredRecord } from './queue-records.js';
import { publishRetried } from './retry.js';

const KV_OP = 'KV-Operation';
const API_WRONG_LAST_SEQ = 10071;
const CAS_TRIES = 5;

export class RecordBucket {
  readonly name: string;
  private readonly mirror = new RecordMirror();
  private kv: KV | undefined;

  constructor(
    private readonly parts: NatsParts,
    /** Failures of background writes (marks, forgetting): for the log. */
    private readonly onBackgroundError?: (what: string, err: unknown) => void,
  ) {
    this.name = `${parts.prefix}_MSGS`;
  }

  /** Create the bucket (kept at least ACK_MEMORY_MS), load the mirror, keep following. */
  async open(ttlMs: number): Promise<Follower> {
    const { kvm, js, nc, replicas, warn } = this.parts;
    this.kv = await createBucket(kvm, this.name, { history: 1, replicas, ttl: Math.max(ttlMs, ACK_MEMORY_MS) });
    const kvPrefix = `$KV.${this.name}.`;
    return follow(js, nc, {
      stream: `KV_${this.name}`,
      filter: `${kvPrefix}>`,
      lastPerSubject: true,
      onMessage: (m) => this.apply(m, kvPrefix),
      onWarn: warn,
    });
  }

  get(id: string): StoredRecord | undefined {
    return this.mirror.get(id);
  }

  /**
   * Create the record; true when this call wrote it (false: it existed, a repeated message). The
   * write expects the key to be new and carries its own Nats-Msg-Id: a retry through an election
   * of a write that was stored after all is a duplicate (ours), not a conflict.
   */
  async create(id: string, rec: StoredRecord): Promise<boolean> {
    this.bucket();
    try {
      await publishRetried(this.parts, `$KV.${this.name}.${encodeToken(id)}`, JSON.stringify(rec), {
        msgID: randomUUID(),
        expect: { lastSubjectSequence: 0 },
      });
    } catch (e) {
      if (e instanceof JetStreamApiError && e.code === API_WRONG_LAST_SEQ) return false;
      if (e instanceof Error && /wrong last sequence/.test(e.message)) return false;
      throw e;
    }
    this.mirror.apply(id, rec);
    return true;
  }

  /** Delete the record (its message was refused). */
  forget(id: string): void {
    this.mirror.delete(id);
    this.background('forget record', this.bucket().delete(encodeToken(id)));
  }

  /** Add marks to a record: in the mirror at once, in KV in the background. */
  patch(id: string, patch: Partial<StoredRecord>): void {
    const local = this.mirror.get(id);
    if (!local) return;
    this.mirror.apply(id, { ...local, ...patch } as StoredRecord);
    const key = encodeToken(id);
    const write = async () => {
      const kv = this.bucket();
      for (let i = 0; i < CAS_TRIES; i++) {
        const cur = await kv.get(key);
        if (cur?.operation !== 'PUT') return;
        const have = cur.json<StoredRecord>();
        const want = merge(have, patch as StoredRecord);
        if (!adds(have, want)) return;
        try {
          await kv.update(key, JSON.stringify(want), cur.revision);
          return;
        } catch (e) {
          if (!(e instanceof JetStreamApiError && e.code === API_WRONG_LAST_SEQ)) throw e;
        }
      }
    };
    this.background('record mark', write());
  }

  /** Drop forgotten records from memory (the bucket's max age removes them from KV). */
  sweep(nowMs: number, budget: number): number {
    return this.mirror.sweep(nowMs, budget);
  }

  private apply(m: JsMsg, kvPrefix: string): void {
    const id = decodeToken(m.subject.slice(kvPrefix.length));
    const op = m.headers?.get(KV_OP);
    if (op === 'DEL' || op === 'PURGE') {
      this.mirror.delete(id);
      return;
    }
    try {
      this.mirror.apply(id, m.json<StoredRecord>());
    } catch {
      // Not a record of ours.
    }
  }

  private bucket(): KV {
    if (!this.kv) throw storeFailure(new Error('the queue is not open'));
    return this.kv;
  }

  private background(what: string, p: Promise<unknown>): void {
    p.catch((e: unknown) => this.onBackgroundError?.(what, e));
  }
}
