// A request body read as a stream (routes registered with `streamBody`): each chunk goes to the
// handler's sink as it arrives, with backpressure, so a 25 MiB upload is never held in memory.
//
// - Chunks that arrive before the handler calls `pipe` are held (copied: uWS neuters them after
//   its callback), in order; past HOLD_LIMIT held bytes the socket stops reading until piped.
// - While a sink's promise is pending the socket stops reading (the kernel's buffers fill, then
//   the client's writes wait); chunks uWS had already read meanwhile are queued, never sunk early.
// - The sink failing (a size lie, a disk error) rejects `pipe` with its error and no chunk is
//   delivered after; the rest of the body is never read (respond.ts closes the connection).
// - The last chunk's promise settles one macrotask later (as body.ts does for buffered bodies), so
//   that a connection uWS dropped for a request pipelined behind this one rejects instead.

import type { PauseControl } from './flow.js';

export type BodySink = (chunk: Buffer) => void | Promise<void>;

/** Bytes held before the handler pipes, past which the socket stops reading. */
export const HOLD_LIMIT = 1024 * 1024;

export class BodyStream {
  private queue: Buffer[] = [];
  private queued = 0;
  /** Bytes uWS delivered so far. */
  received = 0;
  private delivered = 0;
  /** uWS delivered the last chunk (the whole body arrived). */
  ended = false;
  private sink?: BodySink;
  private sinking = false;
  private failed = false;
  private finishing = false;
  private readonly result: Promise<number>;
  private resolve!: (n: number) => void;
  private reject!: (e: unknown) => void;

  constructor(private readonly flow: PauseControl) {
    this.result = new Promise<number>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.result.catch(() => {}); // a handler may answer without ever piping
  }

  /** From uWS's onData: copy the chunk, then deliver what the sink can take. */
  push(chunk: ArrayBuffer, isLast: boolean): void {
    if (this.failed) return;
    if (chunk.byteLength > 0) {
      this.queue.push(Buffer.from(chunk.slice(0)));
      this.queued += chunk.byteLength;
      this.received += chunk.byteLength;
    }
    if (isLast) this.ended = true;
    if (!this.sink && this.queued > HOLD_LIMIT) this.flow.hold('held');
    this.pump();
  }

  pipe(sink: BodySink): Promise<number> {
    if (this.sink) throw new Error('BodyReader.pipe() was already called for this request');
    this.sink = sink;
    this.pump(); // first: a sink that waits holds the socket before the held bytes release it
    this.flow.release('held');
    return this.result;
  }

  /** The body can no longer be delivered (`e`: why); no chunk reaches the sink after this. */
  fail(e: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.queue = [];
    this.queued = 0;
    this.reject(e);
  }

  private sinkDone(): boolean {
    return this.ended && this.queue.length === 0 && !this.sinking;
  }

  private pump(): void {
    const sink = this.sink;
    if (!sink) return;
    while (!this.sinking && !this.failed && this.queue.length > 0) {
      const chunk = this.queue.shift()!;
      this.queued -= chunk.length;
      this.delivered += chunk.length;
      let out: void | Promise<void>;
      try {
        out = sink(chunk);
      } catch (e) {
        return this.fail(e);
      }
      if (out && typeof (out as Promise<void>).then === 'function') return this.await(out);
    }
    if (!this.failed && !this.finishing && this.sinkDone()) {
      this.finishing = true;
      setImmediate(() => {
        if (!this.failed) this.resolve(this.delivered);
      });
    }
  }

  private await(out: Promise<void>): void {
    this.sinking = true;
    this.flow.hold('sink');
    out.then(
      () => {
        this.sinking = false;
        if (this.failed) return;
        this.flow.release('sink');
        this.pump();
      },
      (e) => {
        this.sinking = false;
        this.fail(e);
      },
    );
  }
}
