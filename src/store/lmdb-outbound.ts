// Outbound queues in LMDB: `outbound` [target, seq] -> item, and an in-memory index of every item
// per target (loaded by one scan on first use) that answers counts, due lists and duplicates
// without reading LMDB. Bodies stay on disk and are read when an item is handed out. Field names
// on disk are short; the interface has the real ones.
//
// Consistency: the index changes when a write is issued. A failed enqueue takes its entry back (it
// was never durable); a failed update or removal leaves the index ahead of the disk, which after a
// restart means one more attempt (outbound delivery is at least once; receivers dedupe by id).

import type { Database, RootDatabase } from 'lmdb';
import type { Writes } from './write-health.js';
import type { OutboundCounts, OutboundEnqueue, OutboundItem, OutboundState, OutboundStore } from './types.js';

type OutboundKey = [string, number];

interface StoredOutbound {
  /** message id */
  i: string;
  /** body */
  b: string;
  /** created at */
  c: number;
  /** expires at (absent: never) */
  x?: number;
  /** attempts */
  a: number;
  /** next attempt at */
  n: number;
  /** parked */
  p?: 1;
  /** last error / park reason */
  r?: string;
  /** ordering group */
  g?: string;
}

interface Entry {
  seq: number;
  createdAt: number;
  expiresAt: number | null;
  attempts: number;
  nextAt: number;
  state: OutboundState;
  lastError: string | undefined;
  group: string | undefined;
  /** Set while the enqueue is not committed yet: a duplicate enqueue waits for it. */
  appending: Promise<void> | undefined;
}

function toStored(id: string, body: string, e: Entry): StoredOutbound {
  const v: StoredOutbound = { i: id, b: body, c: e.createdAt, a: e.attempts, n: e.nextAt };
  if (e.expiresAt !== null) v.x = e.expiresAt;
  if (e.state === 'parked') v.p = 1;
  if (e.lastError !== undefined) v.r = e.lastError;
  if (e.group !== undefined) v.g = e.group;
  return v;
}

function toEntry(seq: number, v: StoredOutbound): Entry {
  return {
    seq,
    createdAt: v.c,
    expiresAt: v.x ?? null,
    attempts: v.a,
    nextAt: v.n,
    state: v.p === 1 ? 'parked' : 'pending',
    lastError: v.r,
    group: v.g,
    appending: undefined,
  };
}

export class LmdbOutbound implements OutboundStore {
  private readonly db: Database<StoredOutbound, OutboundKey>;
  /** target -> id -> entry; insertion order of the inner Map is enqueue order. */
  private index: Map<string, Map<string, Entry>> | undefined;
  /** Grows with wall-clock microseconds, so it keeps growing across restarts. */
  private nextSeq = Date.now() * 1000;

  constructor(
    root: RootDatabase,
    private readonly w: Writes,
    private readonly assertOpen: () => void,
  ) {
    this.db = root.openDB({ name: 'outbound' });
  }

  private all(): Map<string, Map<string, Entry>> {
    if (this.index) return this.index;
    const index = new Map<string, Map<string, Entry>>();
    for (const { key, value } of this.db.getRange()) {
      const [target, seq] = key;
      let t = index.get(target);
      if (!t) index.set(target, (t = new Map()));
      t.set(value.i, toEntry(seq, value));
      if (seq >= this.nextSeq) this.nextSeq = seq + 1;
    }
    this.index = index;
    return index;
  }

  private entries(target: string): Map<string, Entry> | undefined {
    return this.all().get(target);
  }

  private item(target: string, id: string, e: Entry, body: string): OutboundItem {
    const item: OutboundItem = {
      target,
      id,
      body,
      createdAt: e.createdAt,
      expiresAt: e.expiresAt,
      attempts: e.attempts,
      nextAt: e.nextAt,
      state: e.state,
    };
    if (e.lastError !== undefined) item.lastError = e.lastError;
    return item;
  }

  private body(target: string, e: Entry): string {
    return this.db.get([target, e.seq])?.b ?? '';
  }

  async outboundEnqueue(target: string, input: OutboundEnqueue): Promise<{ added: boolean; item: OutboundItem }> {
    this.assertOpen();
    const index = this.all();
    const existing = index.get(target)?.get(input.id);
    if (existing) {
      await existing.appending;
      // Its write failed meanwhile: this enqueue is the first again.
      if (index.get(target)?.get(input.id) !== existing) return this.outboundEnqueue(target, input);
      return { added: false, item: this.item(target, input.id, existing, this.body(target, existing)) };
    }
    this.w.assertRoom();
    let t = index.get(target);
    if (!t) index.set(target, (t = new Map()));
    const e: Entry = {
      seq: this.nextSeq++,
      createdAt: input.createdAt,
      expiresAt: input.expiresAt ?? null,
      attempts: 0,
      nextAt: input.nextAt ?? input.createdAt,
      state: 'pending',
      lastError: undefined,
      group: input.group,
      appending: undefined,
    };
    t.set(input.id, e);
    const written = this.w.put(this.db, [target, e.seq], toStored(input.id, input.body, e));
    e.appending = written.then(
      () => {
        e.appending = undefined;
      },
      () => {},
    );
    try {
      await written;
    } catch (err) {
      // Never durable: nothing may count, list or attempt it.
      if (t.get(input.id) === e) this.forget(target, input.id);
      throw err;
    }
    return { added: true, item: this.item(target, input.id, e, input.body) };
  }

  outboundDue(
    target: string,
    nowMs: number,
    limit: number,
    skip?: (id: string) => boolean,
    headOnly = false,
  ): { items: OutboundItem[]; nextAt: number | null } {
    const items: OutboundItem[] = [];
    let nextAt: number | null = null;
    // Ordered: the groups whose oldest pending item was seen; later items of theirs wait.
    const headsSeen = headOnly ? new Set<string>() : undefined;
    for (const [id, e] of this.entries(target) ?? []) {
      if (e.state !== 'pending') continue;
      if (headsSeen) {
        const group = e.group ?? '';
        if (headsSeen.has(group)) continue;
        headsSeen.add(group);
      }
      if (e.appending || skip?.(id)) continue;
      if (e.nextAt <= nowMs && items.length < limit) {
        const stored = this.db.get([target, e.seq]);
        if (stored) items.push(this.item(target, id, e, stored.b));
      } else if (nextAt === null || e.nextAt < nextAt) {
        nextAt = e.nextAt;
      }
    }
    return { items, nextAt };
  }

  outboundGet(target: string, id: string): OutboundItem | undefined {
    const e = this.entries(target)?.get(id);
    return e && this.item(target, id, e, this.body(target, e));
  }

  /** Rewrite an item after `change` updated its entry; false if it is not there. */
  private async update(target: string, id: string, change: (e: Entry) => void): Promise<boolean> {
    this.assertOpen();
    const e = this.entries(target)?.get(id);
    if (!e) return false;
    await e.appending;
    const stored = this.db.get([target, e.seq]);
    if (!stored || this.entries(target)?.get(id) !== e) return false;
    change(e);
    await this.w.put(this.db, [target, e.seq], toStored(id, stored.b, e));
    return true;
  }

  outboundAttempted(target: string, id: string, attempts: number, nextAt: number, error: string): Promise<boolean> {
    return this.update(target, id, (e) => {
      e.attempts = attempts;
      e.nextAt = nextAt;
      e.lastError = error;
    });
  }

  outboundPark(target: string, id: string, attempts: number, reason: string): Promise<boolean> {
    return this.update(target, id, (e) => {
      e.attempts = attempts;
      e.state = 'parked';
      e.lastError = reason;
    });
  }

  async outboundRelease(
    target: string,
    nowMs: number,
    only?: (reason: string | undefined) => boolean,
  ): Promise<number> {
    const held = (e: Entry) => e.state === 'parked' || (only !== undefined && e.nextAt > nowMs);
    const parked = [...(this.entries(target) ?? [])]
      .filter(([, e]) => held(e) && (only === undefined || only(e.lastError)))
      .map(([id]) => id);
    const done = await Promise.all(
      parked.map((id) =>
        this.update(target, id, (e) => {
          e.state = 'pending';
          e.nextAt = nowMs;
        }),
      ),
    );
    return done.filter(Boolean).length;
  }

  private forget(target: string, id: string): Entry | undefined {
    const t = this.entries(target);
    const e = t?.get(id);
    if (!t || !e) return undefined;
    t.delete(id);
    if (t.size === 0) this.all().delete(target);
    return e;
  }

  async outboundRemove(target: string, id: string): Promise<boolean> {
    this.assertOpen();
    const found = this.entries(target)?.get(id);
    if (!found) return false;
    await found.appending;
    const e = this.forget(target, id);
    if (!e) return false;
    await this.w.remove(this.db, [target, e.seq]);
    return true;
  }

  outboundCount(target: string): OutboundCounts {
    let pending = 0;
    let parked = 0;
    for (const e of this.entries(target)?.values() ?? []) {
      if (e.state === 'parked') parked++;
      else pending++;
    }
    return { pending, parked };
  }

  outboundOldest(target: string): number | null {
    for (const e of this.entries(target)?.values() ?? []) if (e.state === 'pending') return e.createdAt;
    return null;
  }

  outboundExpired(nowMs: number, limit: number): Array<{ target: string; id: string }> {
    const out: Array<{ target: string; id: string }> = [];
    for (const [target, t] of this.all()) {
      for (const [id, e] of t) {
        if (out.length >= limit) return out;
        if (e.expiresAt !== null && e.expiresAt <= nowMs && !e.appending) out.push({ target, id });
      }
    }
    return out;
  }

  outboundTargets(): string[] {
    return [...this.all().keys()];
  }

  /** Entries in LMDB (for dataStats). */
  stat<S>(stat: (db: Database<StoredOutbound, OutboundKey>) => S): S {
    return stat(this.db);
  }
}
