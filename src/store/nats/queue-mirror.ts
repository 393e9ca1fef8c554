// The in-memory mirror of the queue stream on one node: per recipient, its pending entries in
// stream order. It is fed in stream order by one ordered consumer (queue.ts), so an agent's
// entries are always sorted by stream seq and every entry up to an agent's `lastSeq` is here
// (unless acked or expired). Reads are synchronous and cost no network call.

import type { QueueDepths, QueueEntry } from '../types.js';

export interface MirrorEntry {
  /** Stream seq. */
  seq: number;
  id: string;
  json: string;
  /** Relay expiry (ms). */
  exp: number;
  /** The sender asked for a delivery receipt. */
  rc: boolean;
  /** Queued at (ms). */
  queuedAt: number;
  /** Acked (or expired) and not compacted out of `list` yet. */
  gone: boolean;
}

/** Compact `list` once this many removed entries sit in it and they are the larger part. */
const COMPACT_MIN = 64;

export class AgentQueue {
  /** Entries by seq, removed ones marked `gone` until a compaction. */
  private list: MirrorEntry[] = [];
  private goneInList = 0;
  /** Pending entries by id; insertion order is stream order. */
  byId = new Map<string, MirrorEntry>();
  /** Highest stream seq ever seen for the agent (never decreases). */
  lastSeq = 0;
  /** Earliest expiry among pending entries; Infinity when none (or not known to be lower). */
  private minExp = Number.POSITIVE_INFINITY;

  get size(): number {
    return this.byId.size;
  }

  /** In stream order only: `e.seq` above every seq added before. */
  add(e: MirrorEntry): void {
    if (e.seq > this.lastSeq) this.lastSeq = e.seq;
    if (this.byId.has(e.id)) return;
    this.list.push(e);
    this.byId.set(e.id, e);
    if (e.exp < this.minExp) this.minExp = e.exp;
  }

  /** Note a seq of the agent without an entry (a message acked before this node saw it). */
  seen(seq: number): void {
    if (seq > this.lastSeq) this.lastSeq = seq;
  }

  remove(id: string): MirrorEntry | undefined {
    const e = this.byId.get(id);
    if (!e) return undefined;
    this.byId.delete(id);
    e.gone = true;
    this.goneInList++;
    if (this.goneInList >= COMPACT_MIN && this.goneInList * 2 > this.list.length) {
      this.list = this.list.filter((x) => !x.gone);
      this.goneInList = 0;
    }
    return e;
  }

  /** Put back entries whose removal did not happen (a failed ack), in seq order. */
  restore(back: readonly MirrorEntry[]): void {
    const live = this.list.filter((x) => !x.gone);
    for (const e of back) {
      if (this.byId.has(e.id)) continue;
      e.gone = false;
      live.push(e);
    }
    live.sort((a, b) => a.seq - b.seq);
    this.list = live;
    this.goneInList = 0;
    this.byId = new Map(live.map((e) => [e.id, e]));
    for (const e of back) if (e.exp < this.minExp) this.minExp = e.exp;
  }

  /** Drop entries past their expiry; the entries dropped. */
  prune(nowMs: number): MirrorEntry[] {
    if (this.minExp > nowMs) return [];
    const expired: MirrorEntry[] = [];
    let minExp = Number.POSITIVE_INFINITY;
    for (const e of [...this.byId.values()]) {
      if (e.exp <= nowMs) {
        this.remove(e.id);
        expired.push(e);
      } else if (e.exp < minExp) {
        minExp = e.exp;
      }
    }
    this.minExp = minExp;
    return expired;
  }

  /** First index in `list` with seq > afterSeq. */
  private after(afterSeq: number): number {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.list[mid]!.seq <= afterSeq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  readFrom(
    afterSeq: number,
    limit: number,
    nowMs: number,
  ): { entries: QueueEntry[]; scannedTo: number; more: boolean } {
    const entries: QueueEntry[] = [];
    let scanned = 0;
    let scannedTo = afterSeq;
    for (let i = this.after(afterSeq); i < this.list.length && scanned < limit; i++) {
      const e = this.list[i]!;
      if (e.gone) continue;
      scanned++;
      scannedTo = e.seq;
      if (e.exp > nowMs) entries.push({ seq: e.seq, id: e.id, json: e.json, receipt: e.rc });
    }
    return { entries, scannedTo, more: scanned === limit };
  }
}

export class QueueMirror {
  private readonly agents = new Map<string, AgentQueue>();
  /** Pending entries over every agent (expired ones not pruned yet included). */
  private total = 0;

  /** The agent's queue (empty when never seen). */
  of(agentId: string): AgentQueue {
    let q = this.agents.get(agentId);
    if (!q) {
      q = new AgentQueue();
      this.agents.set(agentId, q);
    }
    return q;
  }

  peek(agentId: string): AgentQueue | undefined {
    return this.agents.get(agentId);
  }

  add(agentId: string, e: MirrorEntry): void {
    const q = this.of(agentId);
    const before = q.size;
    q.add(e);
    this.total += q.size - before;
  }

  remove(agentId: string, id: string): MirrorEntry | undefined {
    const e = this.agents.get(agentId)?.remove(id);
    if (e) this.total--;
    return e;
  }

  restore(agentId: string, back: readonly MirrorEntry[]): void {
    const q = this.of(agentId);
    const before = q.size;
    q.restore(back);
    this.total += q.size - before;
  }

  prune(agentId: string, nowMs: number): MirrorEntry[] {
    const q = this.agents.get(agentId);
    if (!q) return [];
    const gone = q.prune(nowMs);
    this.total -= gone.length;
    return gone;
  }

  /** Every entry of the agent goes (its queue was purged); lastSeq stays. The ids removed. */
  clear(agentId: string): string[] {
    const q = this.agents.get(agentId);
    if (!q) return [];
    const ids = [...q.byId.keys()];
    for (const id of ids) this.remove(agentId, id);
    return ids;
  }

  /** Drop the expired entries of every agent (cheap for an agent whose earliest expiry is ahead). */
  sweep(nowMs: number, onExpired: (agentId: string, gone: MirrorEntry[]) => void): number {
    let n = 0;
    for (const [agentId, q] of this.agents) {
      const gone = q.prune(nowMs);
      if (gone.length === 0) continue;
      this.total -= gone.length;
      n += gone.length;
      onExpired(agentId, gone);
    }
    return n;
  }

  depths(top: number): QueueDepths {
    const agents: QueueDepths['agents'] = [];
    if (top >= 1) {
      for (const [agentId, q] of this.agents) {
        const depth = q.size;
        if (depth === 0 || (agents.length === top && depth <= agents[top - 1]!.depth)) continue;
        let i = agents.length;
        while (i > 0 && agents[i - 1]!.depth < depth) i--;
        agents.splice(i, 0, { agentId, depth });
        if (agents.length > top) agents.pop();
      }
    }
    return { total: this.total, agents };
  }
}
