// What stays on each node in cluster mode: attachments' metadata (their bytes are files on this
// node too) and the outbound queues (mesh, federation, webhooks). They live in a node-local LmdbStore on the node's data dir; NatsStore extends
// this class and adds the shared parts.

import type { LmdbStore } from '../lmdb.js';
import type {
  AttachmentRecord,
  AttachmentStore,
  OutboundCounts,
  OutboundEnqueue,
  OutboundItem,
  OutboundStore,
} from '../types.js';

export abstract class NodeLocalParts implements AttachmentStore, OutboundStore {
  constructor(protected readonly local: LmdbStore) {}

  // --- AttachmentStore ---
  getAttachment(id: string): AttachmentRecord | undefined {
    return this.local.getAttachment(id);
  }

  putAttachment(rec: AttachmentRecord): Promise<void> {
    return this.local.putAttachment(rec);
  }

  deleteAttachment(id: string): Promise<void> {
    return this.local.deleteAttachment(id);
  }

  allAttachments(): Iterable<AttachmentRecord> {
    return this.local.allAttachments();
  }

  // --- OutboundStore ---
  outboundEnqueue(target: string, input: OutboundEnqueue): Promise<{ added: boolean; item: OutboundItem }> {
    return this.local.outboundEnqueue(target, input);
  }

  outboundDue(target: string, nowMs: number, limit: number, skip?: (id: string) => boolean, headOnly?: boolean) {
    return this.local.outboundDue(target, nowMs, limit, skip, headOnly);
  }

  outboundGet(target: string, id: string): OutboundItem | undefined {
    return this.local.outboundGet(target, id);
  }

  outboundAttempted(target: string, id: string, attempts: number, nextAt: number, error: string): Promise<boolean> {
    return this.local.outboundAttempted(target, id, attempts, nextAt, error);
  }

  outboundPark(target: string, id: string, attempts: number, reason: string): Promise<boolean> {
    return this.local.outboundPark(target, id, attempts, reason);
  }

  outboundRelease(target: string, nowMs: number, only?: (reason: string | undefined) => boolean): Promise<number> {
    return this.local.outboundRelease(target, nowMs, only);
  }

  outboundRemove(target: string, id: string): Promise<boolean> {
    return this.local.outboundRemove(target, id);
  }

  outboundCount(target: string): OutboundCounts {
    return this.local.outboundCount(target);
  }

  outboundOldest(target: string): number | null {
    return this.local.outboundOldest(target);
  }

  outboundExpired(nowMs: number, limit: number): Array<{ target: string; id: string }> {
    return this.local.outboundExpired(nowMs, limit);
  }

  outboundTargets(): string[] {
    return this.local.outboundTargets();
  }
}
