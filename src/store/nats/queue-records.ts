// What is remembered of each message (MessageRecord), as kept in the KV bucket `${prefix}_MSGS`
// and mirrored in memory on every node. A record only ever gains marks (acked, receipts sent), so
// two versions merge by taking every mark either has: a late watch update cannot take a mark back.

import type { MessageRecord, ReceiptKind } from '../types.js';

/** As stored (short names: one record per message). `t` is absent when the thread is the message. */
export interface StoredRecord {
  r: string;
  f: string;
  t?: string;
  e: number;
  a?: number;
  rc?: 1;
  rd?: 1;
  rr?: 1;
}

export const RECEIPT_FLAG: Record<ReceiptKind, 'rd' | 'rr'> = { delivery: 'rd', read: 'rr' };

/** How long an acked message id still answers already_acked, at least (as LMDB mode). */
export const ACK_MEMORY_MS = 24 * 3600 * 1000;

export function merge(a: StoredRecord, b: StoredRecord): StoredRecord {
  const m: StoredRecord = { ...a };
  if (m.a === undefined && b.a !== undefined) m.a = b.a;
  if (b.rc) m.rc = 1;
  if (b.rd) m.rd = 1;
  if (b.rr) m.rr = 1;
  return m;
}

/** Whether `b` carries a mark `a` lacks. */
export function adds(a: StoredRecord, b: StoredRecord): boolean {
  return (a.a === undefined && b.a !== undefined) || (!a.rd && b.rd === 1) || (!a.rr && b.rr === 1);
}

export function toRecord(id: string, x: StoredRecord): MessageRecord {
  const m: MessageRecord = {
    recipientId: x.r,
    senderId: x.f,
    threadId: x.t ?? id,
    expiresAt: x.e,
    receiptRequested: x.rc === 1,
    deliveryReceiptSent: x.rd === 1,
    readReceiptSent: x.rr === 1,
  };
  if (x.a !== undefined) m.ackedAt = x.a;
  return m;
}

/** A record may be forgotten: past its expiry, and acked long enough ago (or never). */
export function forgotten(x: StoredRecord, nowMs: number): boolean {
  return x.e <= nowMs && (x.a === undefined || x.a + ACK_MEMORY_MS <= nowMs);
}

export class RecordMirror {
  private readonly map = new Map<string, StoredRecord>();

  get(id: string): StoredRecord | undefined {
    return this.map.get(id);
  }

  /** Merge a version in (from the watch, or a write of this node). */
  apply(id: string, x: StoredRecord): StoredRecord {
    const old = this.map.get(id);
    const m = old ? merge(old, x) : x;
    this.map.set(id, m);
    return m;
  }

  delete(id: string): void {
    this.map.delete(id);
  }

  /** Drop forgotten records (the bucket's max age removes them from KV). */
  sweep(nowMs: number, budget: number): number {
    let n = 0;
    for (const [id, x] of this.map) {
      if (n >= budget) break;
      if (forgotten(x, nowMs)) {
        this.map.delete(id);
        n++;
      }
    }
    return n;
  }

  get size(): number {
    return this.map.size;
  }
}
