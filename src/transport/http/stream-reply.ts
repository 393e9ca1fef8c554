// Long-lived replies (Server-Sent Events): the handler answers `{status, headers, stream}` and
// `stream(sink)` writes chunks for as long as it likes, over chunked transfer encoding.
//
// uWS lifetimes: every write is corked (writes come from timers, after the request's tick); once
// the connection is aborted or the sink closed, `res` is never touched again. The close callbacks
// run once, whichever comes first: the handler's close(), the client going away, a stalled client
// being dropped, or shutdown (`OpenStreams.closeAll`).
//
// Backpressure policy: a write that uWS could not hand to the socket at once stays buffered in uWS
// (one chunk); until the socket drained it (onWritable), further writes are dropped and return
// false, so a client that reads slowly costs one chunk of memory, never a growing buffer. A client
// that has not drained for STREAM_STALL_MS is disconnected at its next write.
//
// An open stream is not a request in flight: shutdown ends streams instead of waiting for them.

import type { HttpResponse } from 'uWebSockets.js';
import type { PauseControl } from './flow.js';

/** A client that took nothing for this long is dropped (it would otherwise be held open for ever). */
export const STREAM_STALL_MS = 30_000;

export interface StreamSink {
  /**
   * Send `chunk`. False when it was not sent at once: the client has not taken an earlier chunk yet
   * (this one is dropped), the chunk is buffered until the socket drains, or the stream is closed.
   */
  write(chunk: string): boolean;
  /** End the response (idempotent). */
  close(): void;
  /** Run `cb` once when the stream ends, for whatever reason (at once if it already ended). */
  onClose(cb: () => void): void;
  readonly closed: boolean;
}

export interface StreamParts {
  res: HttpResponse;
  flow: PauseControl;
  /** Write the status line and headers (called inside a cork, before any body byte). */
  writeHead: () => void;
  isAborted: () => boolean;
  /** Register the one callback to run when the connection goes away. */
  onAbort: (fn: () => void) => void;
}

/** The streams open on one server, so shutdown can end them. */
export class OpenStreams {
  private readonly open = new Set<StreamSink>();

  add(s: StreamSink): void {
    if (s.closed) return;
    this.open.add(s);
    s.onClose(() => this.open.delete(s));
  }

  get size(): number {
    return this.open.size;
  }

  /** End every open stream (shutdown): their close callbacks run now. */
  closeAll(): void {
    for (const s of [...this.open]) s.close();
  }
}

class UwsSink implements StreamSink {
  private ended = false;
  /** Since when uWS holds a chunk the socket has not taken (0: none). */
  private backedSince = 0;
  private readonly callbacks: Array<() => void> = [];

  constructor(private readonly p: StreamParts) {
    p.onAbort(() => this.finish(false));
    p.res.onWritable(() => {
      this.backedSince = 0;
      return true;
    });
  }

  get closed(): boolean {
    return this.ended;
  }

  write(chunk: string): boolean {
    if (this.ended || this.p.isAborted()) return false;
    if (this.backedSince !== 0) {
      if (Date.now() - this.backedSince >= STREAM_STALL_MS) this.drop();
      return false;
    }
    let ok = false;
    this.p.res.cork(() => {
      ok = this.p.res.write(chunk);
    });
    if (!ok) this.backedSince = Date.now();
    return ok;
  }

  close(): void {
    this.finish(true);
  }

  onClose(cb: () => void): void {
    if (this.ended) cb();
    else this.callbacks.push(cb);
  }

  /** A stalled client: close the connection rather than end the response it does not read. */
  private drop(): void {
    if (this.ended) return;
    const { res, flow } = this.p;
    this.ended = true;
    flow.finish(false);
    if (!this.p.isAborted()) res.close();
    this.runCallbacks();
  }

  /** `end`: write the response's end (false: the connection is gone, `res` is not touched). */
  private finish(end: boolean): void {
    if (this.ended) return;
    this.ended = true;
    const { res, flow } = this.p;
    if (end && !this.p.isAborted())
      res.cork(() => {
        flow.finish(true);
        res.end();
      });
    else flow.finish(false);
    this.runCallbacks();
  }

  private runCallbacks(): void {
    for (const cb of this.callbacks.splice(0)) {
      try {
        cb();
      } catch {
        // A listener's failure must not keep the others from cleaning up.
      }
    }
  }
}

/**
 * Write the head and hand the sink to `start` (in the same cork: the first chunk leaves with the
 * headers, and uWS sends nothing before it, so `start` should write one at once). A HEAD request gets the head only. The socket's reads stay paused while the stream is
 * open (a request pipelined behind it would otherwise make uWS drop the connection, uWS#1301).
 */
export function openStream(
  p: StreamParts,
  head: boolean,
  start: (sink: StreamSink) => void,
  streams: OpenStreams,
): void {
  const { res, flow } = p;
  if (head) {
    res.cork(() => {
      p.writeHead();
      flow.finish(true);
      res.end();
    });
    return;
  }
  flow.hold('stream');
  const sink = new UwsSink(p);
  streams.add(sink);
  res.cork(() => {
    p.writeHead();
    start(sink);
  });
}
