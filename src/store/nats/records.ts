// The shared records in cluster mode (the part of RecordsStore every node must see): idempotency
// keys, identity records (registrations, admin actions, attachment audit, spent console ids),
// metadata, and the AID audit trail (audit-log.ts). KV buckets held in memory by watches; writes
// resolve once acknowledged and applied here. The outbox (pushOutbox/takeOutbox) is per node and
// stays in the node's LMDB store.
//
// Buckets (`${prefix}_...`): IDEM (`<sender>.<key>` -> {d,r,e}, or {d,r,e,p} while a node holds
// the key's claim (claimIdempotency); the bucket's TTL is the idempotency window), RECORDS (`<kind>.<key>` -> the value's JSON text), META (key -> JSON).

import type { IdempotencyRecord, RecordKind, RecordsStore } from '../types.js';
import { AuditLog } from './audit-log.js';
import { decodeToken, encodeToken as enc } from './kv-keys.js';
import { KvMirror } from './kv-mirror.js';
import { OrderedMap } from './ordered-map.js';
import type { NatsParts } from './parts.js';

export interface NatsRecordsOptions {
  /** How long idempotency keys are remembered (ms): the IDEM bucket's TTL. */
  idempotencyTtlMs: number;
}

/** An IdempotencyRecord as stored. */
interface StoredIdempotency {
  d: string;
  r: Record<string, unknown>;
  e: number;
  /** A claim: the node that wrote it is delivering the request (until `e`). */
  p?: 1;
}

const TEXT = { encode: (v: string) => v, decode: (text: string) => text };
const KINDS: readonly Exclude<RecordKind, 'audit'>[] = [
  'registrations',
  'attachment_audit',
  'admin_actions',
  'console_spent',
];

export type SharedRecords = Omit<RecordsStore, 'pushOutbox' | 'takeOutbox'>;

export class NatsRecords implements SharedRecords {
  private readonly idem: KvMirror<StoredIdempotency>;
  private readonly records: KvMirror<string>;
  private readonly meta: KvMirror<unknown>;
  private readonly audit: AuditLog;
  /** RECORDS by kind, decoded key -> JSON text, in key order. */
  private readonly byKind = new Map<RecordKind, OrderedMap<string>>();
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Claims waited for, by IDEM key: told when the mirror applies a change to the key. */
  private readonly idemWaits = new Map<string, Set<() => void>>();

  constructor(parts: NatsParts, opts: NatsRecordsOptions) {
    const p = parts.prefix;
    for (const k of KINDS) this.byKind.set(k, new OrderedMap());
    this.idem = new KvMirror(parts, {
      bucket: `${p}_IDEM`,
      ttlMs: opts.idempotencyTtlMs,
      onChange: (key) => {
        for (const wake of [...(this.idemWaits.get(key) ?? [])]) wake();
      },
    });
    this.records = new KvMirror(parts, {
      bucket: `${p}_RECORDS`,
      codec: TEXT,
      onChange: (raw, value) => {
        const dot = raw.indexOf('.');
        const kind = this.byKind.get(raw.slice(0, dot) as RecordKind);
        if (!kind) return;
        const key = decodeToken(raw.slice(dot + 1));
        if (value === undefined) kind.delete(key);
        else kind.set(key, value);
      },
    });
    this.meta = new KvMirror(parts, { bucket: `${p}_META` });
    this.audit = new AuditLog(parts);
    this.byKind.set('audit', this.audit.events);
  }

  /** Create or adopt the buckets and the audit stream, and load them. */
  async open(): Promise<void> {
    await Promise.all([this.idem.open(), this.records.open(), this.meta.open(), this.audit.open()]);
  }

  close(): void {
    for (const m of [this.idem, this.records, this.meta, this.audit]) m.close();
  }

  getIdempotency(senderId: string, key: string, nowMs: number): IdempotencyRecord | undefined {
    const rec = this.idem.get(idemKey(senderId, key));
    return rec && !rec.p && rec.e > nowMs ? { digest: rec.d, result: rec.r, expiresAt: rec.e } : undefined;
  }

  /**
   * Claim the key with a pending marker (KV create, or compare-and-set over an expired record or a
   * dead claim). A key another node holds is waited for on the watch, at most `claimMs`: its
   * answer once stored, the key again if released (expired) or its claim ran out, else 'pending'.
   */
  async claimIdempotency(
    senderId: string,
    key: string,
    digest: string,
    claimMs: number,
  ): Promise<'claimed' | IdempotencyRecord | 'pending'> {
    const k = idemKey(senderId, key);
    const deadline = Date.now() + claimMs;
    for (;;) {
      const now = Date.now();
      const cur = this.idem.entry(k);
      const live = cur && cur.value.e > now ? cur.value : undefined;
      if (live && !live.p) return { digest: live.d, result: live.r, expiresAt: live.e };
      if (!live && (await this.track(this.takeIdem(k, { d: digest, r: {}, e: now + claimMs, p: 1 }, cur?.revision))))
        return 'claimed';
      const left = deadline - Date.now();
      if (left <= 0) return 'pending';
      // Held by another node, or just won by one (its marker reaches the mirror soon).
      await this.idemChanged(k, cur?.revision, live ? Math.min(left, live.e - Date.now()) : left);
    }
  }

  /** Write the claim over the key's `revision` (an expired value) or where it is absent. */
  private async takeIdem(k: string, marker: StoredIdempotency, revision: number | undefined): Promise<boolean> {
    if (revision !== undefined && (await this.idem.update(k, marker, revision)) !== false) return true;
    // The bucket's TTL may have removed the value the mirror still holds: then the key is absent.
    return (await this.idem.create(k, marker)) !== false;
  }

  /** Resolves once the mirror's revision of `k` is no longer `seen`, or after `ms`. */
  private idemChanged(k: string, seen: number | undefined, ms: number): Promise<void> {
    if (this.idem.entry(k)?.revision !== seen) return Promise.resolve();
    return new Promise((resolve) => {
      let waits = this.idemWaits.get(k);
      if (!waits) this.idemWaits.set(k, (waits = new Set()));
      const set = waits;
      const wake = () => {
        clearTimeout(timer);
        set.delete(wake);
        if (set.size === 0 && this.idemWaits.get(k) === set) this.idemWaits.delete(k);
        resolve();
      };
      const timer = setTimeout(wake, Math.max(0, ms));
      set.add(wake);
    });
  }

  putIdempotency(senderId: string, key: string, rec: IdempotencyRecord): Promise<void> {
    return this.track(this.idem.put(idemKey(senderId, key), { d: rec.digest, r: rec.result, e: rec.expiresAt }));
  }

  putRecord(kind: RecordKind, key: string, value: unknown): Promise<void> {
    const json = JSON.stringify(value);
    if (kind === 'audit') return this.track(this.audit.put(key, json));
    return this.track(this.records.put(recordKey(kind, key), json));
  }

  getRecord<T>(kind: RecordKind, key: string): T | undefined {
    const v = this.byKind.get(kind)?.get(key);
    return v === undefined ? undefined : (JSON.parse(v) as T);
  }

  recordsWithPrefix<T>(kind: RecordKind, prefix: string): T[] {
    return (this.byKind.get(kind)?.withPrefix(prefix) ?? []).map((v) => JSON.parse(v) as T);
  }

  /** Some record of `kind` has a key starting with `prefix` (a tenant's registrations). */
  hasPrefix(kind: RecordKind, prefix: string): boolean {
    return this.byKind.get(kind)?.hasPrefix(prefix) ?? false;
  }

  /** A KV create: of two nodes spending one key at once, exactly one resolves true. */
  spendOnce(kind: RecordKind, key: string, value: unknown): Promise<boolean> {
    const json = JSON.stringify(value);
    if (kind === 'audit') return this.track(this.audit.spendOnce(key, json));
    if (this.byKind.get(kind)?.has(key)) return Promise.resolve(false);
    return this.track(this.records.create(recordKey(kind, key), json).then((rev) => rev !== false));
  }

  getMeta<T>(key: string): T | undefined {
    return this.meta.get(enc(key)) as T | undefined;
  }

  putMeta(key: string, value: unknown): Promise<void> {
    return this.track(this.meta.put(enc(key), value));
  }

  /** Resolves once every write issued so far has been acknowledged (or failed). */
  async settled(): Promise<void> {
    await Promise.allSettled([...this.inFlight]);
  }

  /**
   * Forget expired idempotency keys (the bucket's TTL removed them from JetStream; KV tells no
   * one) and delete spent console ids past their expiry, at most `budget` of each.
   */
  sweep(nowMs: number, budget: number): { idempotencyRecords: number; consoleSpent: number } {
    let idempotencyRecords = 0;
    for (const [k, e] of this.idem.entries()) {
      if (idempotencyRecords >= budget) break;
      if (e.value.e <= nowMs) {
        this.idem.forget(k);
        idempotencyRecords++;
      }
    }
    let consoleSpent = 0;
    for (const [key, v] of this.byKind.get('console_spent')!.entries()) {
      if (consoleSpent >= budget) break;
      if (spentUntil(v) > nowMs) continue;
      consoleSpent++;
      void this.track(this.records.delete(recordKey('console_spent', key))).catch(() => {});
    }
    return { idempotencyRecords, consoleSpent };
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inFlight.add(p);
    const done = () => this.inFlight.delete(p);
    p.then(done, done);
    return p;
  }
}

const idemKey = (senderId: string, key: string) => `${enc(senderId)}.${enc(key)}`;
const recordKey = (kind: RecordKind, key: string) => `${kind}.${enc(key)}`;

/** A spent id's record `{exp}` (unix seconds) as ms; unreadable ones go at once. */
function spentUntil(json: string): number {
  try {
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}
