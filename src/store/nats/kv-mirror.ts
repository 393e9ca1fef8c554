// One KV bucket held in memory: every key's last value (JSON), kept current by a StreamMirror over
// the bucket's stream, whichever node wrote. Writes resolve once JetStream acknowledged them AND
// this mirror applied them. Keys here are raw KV keys (callers encode with kv-keys.ts).

import { randomUUID } from '../../crypto/random.js';
import { StorageType } from '@nats-io/jetstream';
import type { KV, KvOptions } from '@nats-io/kv';
import { Empty, headers } from '@nats-io/transport-node';
import { createBucket } from './bucket.js';
import { APPLY_TIMEOUT_MS, guarded, isWrongLastSequence, unavailable } from './failures.js';
import type { NatsParts } from './parts.js';
import { publishRetried, rideOut } from './retry.js';
import { StreamMirror } from './stream-mirror.js';

export interface KvEntryOf<T> {
  value: T;
  /** The KV revision (stream sequence) of this value. */
  revision: number;
  /** When it was written (ms). */
  at: number;
}

export interface KvMirrorOptions<T> {
  /** Full bucket name (prefixed). */
  bucket: string;
  /** Values older than this go (ms); 0 / absent = kept. */
  ttlMs?: number;
  /**
   * Told every applied change after the map changed: `loading` while the first load runs (the
   * whole bucket is read then), false for live changes (any node's write).
   */
  onChange?(key: string, value: T | undefined, prev: T | undefined, loading: boolean): void;
  /** How values are written and read; JSON by default. */
  codec?: { encode(v: T): string; decode(text: string): T };
}

const JSON_CODEC = { encode: (v: unknown) => JSON.stringify(v), decode: (text: string) => JSON.parse(text) as unknown };

const decoder = new TextDecoder();

export class KvMirror<T> {
  private readonly map = new Map<string, KvEntryOf<T>>();
  private kv?: KV;
  private mirror?: StreamMirror;
  private loading = true;
  private readonly codec: { encode(v: T): string; decode(text: string): T };

  constructor(
    private readonly parts: NatsParts,
    private readonly opts: KvMirrorOptions<T>,
  ) {
    this.codec = opts.codec ?? (JSON_CODEC as { encode(v: T): string; decode(text: string): T });
  }

  /** Create the bucket (or adopt it, bringing its replicas and TTL in line), then load it. */
  async open(): Promise<void> {
    const { bucket, ttlMs = 0 } = this.opts;
    const { kvm, jsm, replicas } = this.parts;
    const kvOpts: Partial<KvOptions> = { history: 1, replicas, storage: StorageType.File };
    if (ttlMs > 0) kvOpts.ttl = ttlMs;
    const kv = await createBucket(kvm, bucket, kvOpts);
    const stream = `KV_${bucket}`;
    const info = await jsm.streams.info(stream);
    const maxAge = ttlMs * 1_000_000;
    if (info.config.num_replicas !== replicas || info.config.max_age !== maxAge) {
      await jsm.streams.update(stream, { ...info.config, num_replicas: replicas, max_age: maxAge });
    }
    this.kv = kv;
    const subjectPrefix = `$KV.${bucket}.`;
    this.mirror = new StreamMirror(this.parts, {
      stream,
      filter: `${subjectPrefix}>`,
      lastPerSubject: true,
      apply: (m) => {
        const key = m.subject.slice(subjectPrefix.length);
        const op = m.headers?.get('KV-Operation');
        const prev = this.map.get(key)?.value;
        if (op === 'DEL' || op === 'PURGE') {
          if (!this.map.delete(key)) return;
          this.opts.onChange?.(key, undefined, prev, this.loading);
          return;
        }
        const value = this.codec.decode(decoder.decode(m.data));
        this.map.set(key, { value, revision: m.seq, at: m.time.getTime() });
        this.opts.onChange?.(key, value, prev, this.loading);
      },
    });
    await this.mirror.start();
    this.loading = false;
  }

  get(key: string): T | undefined {
    return this.map.get(key)?.value;
  }

  entry(key: string): KvEntryOf<T> | undefined {
    return this.map.get(key);
  }

  entries(): IterableIterator<[string, KvEntryOf<T>]> {
    return this.map.entries();
  }

  get size(): number {
    return this.map.size;
  }

  /** Forget a key locally (its value expired by the bucket's TTL: JetStream says nothing then). */
  forget(key: string): void {
    this.map.delete(key);
  }

  async put(key: string, value: T): Promise<void> {
    this.bucket();
    const ack = await this.write(key, this.codec.encode(value)).catch((e: unknown) => {
      throw guardedError(e);
    });
    await this.applied(ack.seq);
  }

  /** Write only if the key is absent (or deleted); false when it exists. */
  async create(key: string, value: T): Promise<number | false> {
    // Not kv.create(): after a timeout it reads the key too (a second timeout before the 503).
    try {
      const ack = await this.write(key, this.codec.encode(value), { lastSubjectSequence: 0 });
      await this.applied(ack.seq);
      return ack.seq;
    } catch (e) {
      if (!isWrongLastSequence(e)) throw guardedError(e);
    }
    const e = await guarded(rideOut(this.parts, () => this.bucket().get(key)));
    if (!e || e.operation === 'PUT') return false;
    return this.update(key, value, e.revision); // over a delete marker
  }

  /** Compare-and-set: write only if the key's revision is still `revision`; false otherwise. */
  async update(key: string, value: T, revision: number): Promise<number | false> {
    let seq: number;
    try {
      seq = (await this.write(key, this.codec.encode(value), { lastSubjectSequence: revision })).seq;
    } catch (e) {
      if (isWrongLastSequence(e)) return false;
      throw guardedError(e);
    }
    await this.applied(seq);
    return seq;
  }

  /** Delete; with `revision`, only if the key is still at it (false otherwise). */
  async delete(key: string, revision?: number): Promise<boolean> {
    const h = headers();
    h.set('KV-Operation', 'DEL');
    let seq: number;
    try {
      // kv.delete() answers no revision: publish the delete marker ourselves to learn its sequence.
      const expect = revision === undefined ? undefined : { lastSubjectSequence: revision };
      seq = (await this.write(key, Empty, expect, h)).seq;
    } catch (e) {
      if (isWrongLastSequence(e)) return false;
      throw guardedError(e);
    }
    await this.applied(seq);
    return true;
  }

  /**
   * One write to the bucket's stream, ridden through a leader election (retry.ts). Its own
   * Nats-Msg-Id makes a retry of a write that was stored after all a duplicate (acknowledged with
   * the first one's seq), so a compare-and-set retried never loses to itself.
   */
  private write(
    key: string,
    data: string | Uint8Array,
    expect?: { lastSubjectSequence: number },
    h?: ReturnType<typeof headers>,
  ) {
    return publishRetried(this.parts, `$KV.${this.opts.bucket}.${key}`, data, {
      msgID: randomUUID(),
      ...(expect && { expect }),
      ...(h && { headers: h }),
    });
  }

  /** The key's current value read from JetStream (not the mirror): for compare-and-set decisions. */
  async fetch(key: string): Promise<KvEntryOf<T> | undefined> {
    const e = await guarded(this.bucket().get(key));
    if (e?.operation !== 'PUT') return undefined;
    return { value: this.codec.decode(e.string()), revision: e.revision, at: e.created.getTime() };
  }

  close(): void {
    this.mirror?.close();
  }

  private bucket(): KV {
    if (!this.kv) throw unavailable(new Error(`bucket ${this.opts.bucket} is not open`));
    return this.kv;
  }

  private async applied(rev: number): Promise<void> {
    if (!(await this.mirror!.reached(rev, APPLY_TIMEOUT_MS))) {
      throw unavailable(
        new Error(`bucket ${this.opts.bucket}: the write did not come back within ${APPLY_TIMEOUT_MS} ms`),
      );
    }
  }
}

function guardedError(e: unknown): Error {
  return e instanceof Error && e.name === 'AmpError' ? e : unavailable(e);
}
