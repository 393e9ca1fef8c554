// Attachments (spec §22): an agent declares a file, PUTs its bytes to a signed single-use URL,
// confirms, and the file is scanned off the event loop; a message may then carry it to one
// recipient, who downloads it with the API key or the signed `url`. Suspicious files wait for an
// admin (admin.ts); the route's checks and claims are in gate.ts; expiry in sweep().

import {
  AmpError,
  type AttachmentRef,
  decodeUploadInit,
  isAttachmentId,
  isoTime,
  UPLOAD_URL_TTL_S,
} from '../../proto/index.js';
import { randomHex } from '../crypto/random.js';
import type { AgentRecord, AttachmentRecord, AttachmentStore } from '../store/types.js';
import type { BlobStore } from './blobs.js';
import { FileRefs } from './file-refs.js';
import { downloadable, statusDoc } from './documents.js';
import { UnsentQuota } from './quota.js';
import type { ScanQueue } from './scan-queue.js';
import type { ScanOutcome } from './scan/index.js';
import type { UrlSigner } from './urls.js';

export const UNCONFIRMED_TTL_MS = 2 * 3600 * 1000;
export const ROUTED_TTL_MS = 7 * 24 * 3600 * 1000;

/** A request's body as the upload reads it: chunks in order, with backpressure. */
export interface ByteSource {
  pipe(sink: (chunk: Buffer) => void | Promise<void>): Promise<number>;
}

export class Attachments {
  private readonly uploading = new Set<string>();
  /** Attachments the sweeper is removing: gone for every other caller from the moment it decided. */
  private readonly removing = new Set<string>();
  /** Uploads being received (shutdown waits for them to finish or clean up). */
  private readonly receiving = new Set<Promise<void>>();
  private readonly files: FileRefs;
  private readonly quota: UnsentQuota;

  constructor(
    readonly store: AttachmentStore,
    readonly blobs: BlobStore,
    readonly urls: UrlSigner,
    private readonly scans: ScanQueue,
  ) {
    this.files = new FileRefs(blobs);
    this.quota = new UnsentQuota(store);
    scans.bind({
      get: (id) => this.find(id),
      pathOf: (rec) => this.blobs.pathOf(rec.digest),
      settle: (rec, outcome) => this.settle(rec, outcome),
    });
  }

  /** After a restart: count who holds which file (and drop files nobody holds), resume scans. */
  async open(): Promise<void> {
    await this.blobs.open();
    const held: string[] = [];
    const resume: AttachmentRecord[] = [];
    for (const rec of this.store.allAttachments()) {
      if (rec.stored) held.push(rec.digest);
      if (rec.messageId === undefined) this.quota.track(rec);
      if (rec.state === 'confirmed' && rec.scanStatus === 'pending') resume.push(rec);
    }
    await this.files.load(held);
    for (const rec of resume) {
      if (await this.blobs.exists(rec.digest)) this.scans.enqueue(rec.id);
      else await this.settle(rec, { status: 'rejected', reasons: ['file_missing'] });
    }
  }

  /**
   * Resolves once every upload under way has ended (stored, or its partial file removed). Called at
   * shutdown after the connections were closed, which ends the uploads still streaming.
   */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.receiving]);
  }

  get storedBytes(): number {
    return this.files.bytes;
  }

  /** Attachments by scan status (`unconfirmed` before confirm), for /metrics. */
  countsByStatus(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const rec of this.store.allAttachments()) {
      const k = rec.state === 'confirmed' ? (rec.scanStatus ?? 'pending') : 'unconfirmed';
      counts[k] = (counts[k] ?? 0) + 1;
    }
    return counts;
  }

  /** POST attachments/upload. */
  async init(agent: AgentRecord, body: unknown, endpoint: string, nowMs = Date.now()) {
    const d = decodeUploadInit(body);
    this.quota.assert(agent.id, d.size, nowMs);
    const id = `att_${Math.floor(nowMs / 1000)}_${randomHex(8)}`;
    const expS = Math.floor(nowMs / 1000) + UPLOAD_URL_TTL_S;
    const rec: AttachmentRecord = {
      id,
      ownerId: agent.id,
      tenant: agent.tenant,
      filename: d.filename,
      contentType: d.content_type,
      size: d.size,
      digest: d.digest,
      state: 'awaiting_upload',
      stored: false,
      createdAt: nowMs,
      uploadExpiresAt: expS * 1000,
      expiresAt: expS * 1000,
    };
    await this.store.putAttachment(rec);
    this.quota.track(rec);
    return {
      attachment_id: id,
      upload_url: `${endpoint}/attachments/${id}/content?${this.urls.uploadQuery(id, expS)}`,
      upload_method: 'PUT',
      upload_headers: { 'Content-Type': d.content_type },
      expires_in: UPLOAD_URL_TTL_S,
      expires_at: isoTime(expS * 1000),
      filename: d.filename,
    };
  }

  /** PUT upload_url: the signed URL is the credential; the bytes stream to disk as they arrive. */
  async upload(id: string, query: URLSearchParams, contentLength: string, body: ByteSource) {
    const nowMs = Date.now();
    this.urls.checkUpload(id, query, nowMs);
    const rec = this.find(id);
    if (!rec) throw notFound();
    if (rec.state !== 'awaiting_upload' || this.uploading.has(id))
      throw new AmpError('upload_already_used', 'This upload URL was used already; an upload URL takes one PUT');
    if (contentLength !== '' && Number(contentLength) !== rec.size)
      throw new AmpError(
        'upload_size_mismatch',
        `Content-Length ${contentLength} is not the declared size ${rec.size}`,
        {
          details: { declared: rec.size, received: Number(contentLength) },
        },
      );
    this.uploading.add(id);
    const work = this.receive(rec, body);
    this.receiving.add(work);
    try {
      await work;
    } finally {
      this.uploading.delete(id);
      this.receiving.delete(work);
    }
    return { attachment_id: id, size: rec.size, digest: rec.digest, status: 'uploaded' };
  }

  private async receive(rec: AttachmentRecord, body: ByteSource): Promise<void> {
    const sink = await this.blobs.begin(rec.id, rec.size, rec.digest);
    try {
      await body.pipe((chunk) => sink.write(chunk));
      await this.files.add(rec.digest, rec.size, () => sink.finish());
    } catch (e) {
      await sink.discard();
      throw e;
    }
    const nowMs = Date.now();
    const next: AttachmentRecord = {
      ...rec,
      state: 'uploaded',
      stored: true,
      uploadedAt: nowMs,
      expiresAt: nowMs + UNCONFIRMED_TTL_MS,
    };
    try {
      await this.store.putAttachment(next);
    } catch (e) {
      await this.files.release(rec.digest);
      throw e;
    }
  }

  /** POST attachments/{id}/confirm: the scan starts; answers the current status. */
  async confirm(agent: AgentRecord, id: string) {
    const rec = this.owned(agent, id);
    if (rec.expiresAt <= Date.now())
      throw new AmpError('attachment_expired', 'This upload has expired; start again with attachments/upload');
    if (rec.state === 'awaiting_upload')
      throw new AmpError('upload_incomplete', 'Upload the bytes to upload_url (PUT) before confirming');
    if (rec.state === 'uploaded') {
      const nowMs = Date.now();
      await this.store.putAttachment({
        ...rec,
        state: 'confirmed',
        scanStatus: 'pending',
        confirmedAt: nowMs,
        expiresAt: nowMs + UNCONFIRMED_TTL_MS,
      });
      this.scans.enqueue(id);
    }
    return { attachment_id: id, scan_status: this.store.getAttachment(id)?.scanStatus ?? 'pending' };
  }

  /** GET attachments/{id}: the owner, or the recipient of the message carrying it. */
  status(agent: AgentRecord, id: string, endpoint: string) {
    const rec = this.visible(agent, id);
    return statusDoc(rec, downloadable(rec, Date.now()) ? this.fileUrl(endpoint, rec.id) : undefined);
  }

  /** The record of a well-formed id that is not being removed. */
  private find(id: string): AttachmentRecord | undefined {
    return isAttachmentId(id) && !this.removing.has(id) ? this.store.getAttachment(id) : undefined;
  }

  /** The attachment an agent may see: its own, or one a message brought it. Else 404 (no hint it exists). */
  visible(agent: AgentRecord, id: string): AttachmentRecord {
    const rec = this.find(id);
    if (!rec || (rec.ownerId !== agent.id && rec.recipientId !== agent.id)) throw notFound();
    return rec;
  }

  owned(agent: AgentRecord, id: string): AttachmentRecord {
    const rec = this.find(id);
    if (!rec || rec.ownerId !== agent.id) throw notFound();
    return rec;
  }

  /** The record behind a signed download URL. */
  byFileUrl(id: string, query: URLSearchParams): AttachmentRecord {
    if (!isAttachmentId(id)) throw notFound();
    this.urls.checkFile(id, query);
    const rec = this.find(id);
    if (!rec) throw notFound();
    return rec;
  }

  fileUrl(endpoint: string, id: string): string {
    return `${endpoint}/attachments/${id}/file?${this.urls.fileQuery(id)}`;
  }

  /** The checked records of a message's references, in order (gate.ts). */
  lookup(ref: AttachmentRef): AttachmentRecord | undefined {
    return this.find(ref.id);
  }

  /** Delete the bytes of a rejected or expired attachment (the file goes with its last reference). */
  async dropBytes(rec: AttachmentRecord): Promise<AttachmentRecord> {
    if (!rec.stored) return rec;
    const next = { ...rec, stored: false };
    await this.store.putAttachment(next);
    await this.files.release(rec.digest);
    return next;
  }

  /**
   * A scan's final word (ScanQueue): a suspicious file waits for an admin; a rejected one loses its
   * bytes first, so that whoever reads `rejected` finds them gone (a crash in between leaves a
   * pending record without its file, which open() settles as rejected).
   */
  async settle(rec: AttachmentRecord, outcome: Exclude<ScanOutcome, { status: 'retry' }>): Promise<void> {
    const next: AttachmentRecord = { ...rec, scanStatus: outcome.status, scanReasons: outcome.reasons };
    if (outcome.signature !== undefined) next.signature = outcome.signature;
    if (outcome.status === 'suspicious') next.approval = { status: 'pending' };
    if (outcome.status === 'rejected' && rec.stored) {
      await this.files.release(rec.digest);
      next.stored = false;
      // Expired and swept while its file went: nothing left to record.
      if (!this.find(rec.id)) return;
    }
    await this.store.putAttachment(next);
  }

  /** Remove attachments whose time is up (their bytes with them). Bounded per call. */
  async sweep(nowMs = Date.now(), budget = 1000): Promise<number> {
    let removed = 0;
    for (const listed of this.store.allAttachments()) {
      if (removed >= budget) break;
      // The record as it is now (a route may have claimed it, a confirm extended it, since the
      // range read): the remove is issued in the same turn, so nothing changes it in between.
      const rec = this.store.getAttachment(listed.id);
      if (!rec || rec.expiresAt > nowMs || this.uploading.has(rec.id)) continue;
      this.removing.add(rec.id);
      try {
        await this.store.deleteAttachment(rec.id);
        if (rec.stored) await this.files.release(rec.digest);
      } finally {
        this.removing.delete(rec.id);
      }
      removed++;
    }
    return removed;
  }
}

export function notFound(): AmpError {
  return new AmpError('attachment_not_found', 'No such attachment');
}
