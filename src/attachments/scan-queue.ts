// Confirmed attachments wait here for the scanner (which works off the event loop, see scan/).
// One scan at a time: a 25 MiB file takes a core while it is read. An outcome is final except
// `retry` (clamd unreachable or failing): the attachment stays `pending` and is tried again with
// a growing delay, never passed as clean. A rejected file's bytes are deleted at once.

import type { Logger } from 'pino';
import type { AttachmentRecord } from '../store/types.js';
import type { ScanOutcome, Scanner } from './scan/index.js';

const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30_000;

export interface ScanSink {
  /** The record as the store has it now (it may have expired meanwhile). */
  get(id: string): AttachmentRecord | undefined;
  /** Where the bytes of a record are. */
  pathOf(rec: AttachmentRecord): string;
  /** Store the outcome (and drop the bytes of a rejected file). */
  settle(rec: AttachmentRecord, outcome: Exclude<ScanOutcome, { status: 'retry' }>): Promise<void>;
}

export class ScanQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly retryDelay = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private running = false;
  private closed = false;
  private sink!: ScanSink;
  /** Resolves whenever the queue runs empty (tests, shutdown). */
  private idleWaiters: Array<() => void> = [];

  constructor(
    readonly scanner: Scanner,
    private readonly logger: Logger,
  ) {}

  bind(sink: ScanSink): void {
    this.sink = sink;
  }

  enqueue(id: string): void {
    if (this.closed || this.queued.has(id)) return;
    this.queued.add(id);
    this.queue.push(id);
    if (!this.running) void this.run();
  }

  private async run(): Promise<void> {
    this.running = true;
    while (this.queue.length > 0 && !this.closed) {
      const id = this.queue.shift() as string;
      this.queued.delete(id);
      await this.scanOne(id).catch((e: unknown) => {
        this.logger.warn({ err: e, attachment: id }, 'attachment scan failed; will retry');
        this.later(id);
      });
    }
    this.running = false;
    for (const w of this.idleWaiters.splice(0)) w();
  }

  private async scanOne(id: string): Promise<void> {
    const rec = this.sink.get(id);
    if (rec?.state !== 'confirmed' || rec.scanStatus !== 'pending' || !rec.stored) return;
    const outcome = await this.scanner.scan({
      path: this.sink.pathOf(rec),
      size: rec.size,
      digest: rec.digest,
      contentType: rec.contentType,
      filename: rec.filename,
    });
    if (outcome.status === 'retry') {
      this.logger.warn(
        { attachment: id, reasons: outcome.reasons },
        'attachment scan deferred (antivirus unavailable)',
      );
      this.later(id);
      return;
    }
    this.retryDelay.delete(id);
    const fresh = this.sink.get(id);
    if (fresh && fresh.scanStatus === 'pending') await this.sink.settle(fresh, outcome);
  }

  private later(id: string): void {
    if (this.closed) return;
    const delay = Math.min(RETRY_MAX_MS, this.retryDelay.get(id) ?? RETRY_FIRST_MS);
    this.retryDelay.set(id, delay * 2);
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.enqueue(id);
    }, delay);
    t.unref();
    this.timers.add(t);
  }

  /** Resolves once nothing is being scanned (retries scheduled for later do not count). */
  idle(): Promise<void> {
    if (!this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.idle();
    await this.scanner.close();
  }
}
