// Reading a request body from uWebSockets.js with a hard limit enforced while streaming.
//
// uWS lifetimes: `onData` must be attached before the handler returns (data that arrives with no
// handler attached is lost), and each chunk's ArrayBuffer is neutered when the callback returns,
// so chunks are copied. The reader starts at once; a handler that never asks for the body simply
// lets it drain. uWS reports the end of every request's body, an empty one too, with
// `onData(chunk, isLast = true)` right after the handler returns.
//
// A connection lost before the handler got the body (client gone, or uWS closing it because the
// client pipelined a request behind this one, uNetworking/uWebSockets.js#1301) makes every read
// throw, so a request that can never be answered does no work (a client retries it safely). The
// body is handed out one macrotask after it arrived (setImmediate: libuv's check phase, after the
// poll phase in which uWS parsed everything it read with it): uWS drains microtasks after each
// callback, so only then has it parsed, and refused, a request pipelined behind this one.

//
// Streaming mode (a `PauseControl` given: routes registered with `streamBody`): no size limit and
// no refusal by Content-Length (the handler decides); the handler reads the body with `pipe(sink)`
// (body-stream.ts), and `text`/`json`/`complete` are not available.

import type { HttpResponse } from 'uWebSockets.js';
import { AmpError, MAX_REQUEST_BYTES, parseJsonBody } from '../../../proto/index.js';
import { type BodySink, BodyStream } from './body-stream.js';
import type { PauseControl } from './flow.js';

export function tooLargeError(limit: number, actual: number): AmpError {
  return new AmpError('request_too_large', `Request body exceeds the limit of ${limit} bytes`, {
    details: { limit, actual },
  });
}

function abortedError(): AmpError {
  return new AmpError('invalid_request', 'Request aborted: the connection is gone');
}

export class BodyReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private result: Promise<Buffer>;
  /** `result`, one macrotask later (see the file comment). */
  private readonly afterRead: Promise<Buffer>;
  private resolve!: (b: Buffer) => void;
  private reject!: (e: AmpError) => void;
  private settled = false;
  private aborted = false;
  private onCompleteFn?: () => void;
  private readonly stream?: BodyStream;
  /** Content-Length: 0 (or a method without a body): nothing will arrive. */
  private readonly empty: boolean;

  /** `stream`: streaming mode, pausing reads through it (see the file comment). */
  constructor(res: HttpResponse, contentLength: string, limit: number = MAX_REQUEST_BYTES, stream?: PauseControl) {
    this.empty = contentLength.trim() === '0';
    if (stream) {
      this.stream = new BodyStream(stream);
      limit = Number.POSITIVE_INFINITY;
    }
    this.result = new Promise<Buffer>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.afterRead = this.result.then((b) => new Promise((next) => setImmediate(() => next(b))));
    // Nobody may await the body (e.g. the request was refused first); never leave a rejection unhandled.
    this.result.catch(() => {});
    this.afterRead.catch(() => {});
    const announced = contentLength === '' ? NaN : Number(contentLength);
    if (announced > limit) {
      this.fail(tooLargeError(limit, announced));
      return;
    }
    const streaming = this.stream;
    if (streaming) {
      res.onData((chunk, isLast) => {
        streaming.push(chunk, isLast);
        if (isLast) this.onCompleteFn?.();
      });
      return;
    }
    res.onData((chunk, isLast) => {
      if (this.settled) return;
      this.size += chunk.byteLength;
      if (this.size > limit) {
        this.chunks = [];
        this.fail(tooLargeError(limit, this.size));
        return;
      }
      this.chunks.push(Buffer.from(chunk.slice(0)));
      if (isLast) {
        this.settled = true;
        const body = this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks, this.size);
        this.chunks = [];
        this.resolve(body);
        this.onCompleteFn?.();
      }
    });
  }

  private fail(e: AmpError): void {
    this.settled = true;
    this.reject(e);
  }

  /** Called when the request was aborted (the connection is gone): nothing may read the body after. */
  abort(): void {
    this.aborted = true;
    this.stream?.fail(abortedError());
    if (!this.settled) this.fail(abortedError());
  }

  /** Streaming mode: bytes received from the connection so far (delivered or still queued). */
  get received(): number {
    return this.stream?.received ?? 0;
  }

  /**
   * Streaming mode and the body has not fully arrived: a reply written now must close the
   * connection (the unread rest cannot be parsed as the next request).
   */
  get incomplete(): boolean {
    return this.stream !== undefined && !this.stream.ended && !this.empty;
  }

  /**
   * Streaming mode only: deliver every chunk, in order, to `sink`; while its promise is pending the
   * connection is not read. Resolves with the body's size once the last chunk was sunk; rejects with
   * the sink's error (no chunk is delivered after it) or 400 `invalid_request` if the connection is
   * gone. Call it at most once.
   */
  pipe(sink: BodySink): Promise<number> {
    if (!this.stream) throw new Error('BodyReader.pipe() needs a streamBody route; this body is buffered');
    return this.stream.pipe(sink);
  }

  /**
   * Call `fn` inside uWS's data callback once the whole body has arrived. Register it before the
   * uWS handler returns (uWS delivers the body after that); never called for a refused body.
   */
  onComplete(fn: () => void): void {
    if (!this.settled) this.onCompleteFn = fn;
  }

  /** Resolves once the whole body has arrived; throws if it was refused or the connection is gone. */
  async complete(): Promise<void> {
    await this.bytes();
  }

  private async bytes(): Promise<Buffer> {
    if (this.stream) throw new Error('This body is streamed (a streamBody route): read it with pipe()');
    const buf = await this.afterRead;
    if (this.aborted) throw abortedError();
    return buf;
  }

  /** The body as UTF-8 text. */
  async text(): Promise<string> {
    return (await this.bytes()).toString('utf8');
  }

  /** The body as a JSON object. Invalid JSON or a non-object is 400 `invalid_request`, never `{}`. */
  async json(): Promise<Record<string, unknown>> {
    const buf = await this.bytes();
    if (buf.length === 0) throw new AmpError('invalid_request', 'Request body is empty; a JSON object is required');
    const parsed = parseJsonBody(buf.toString('utf8'));
    if (!parsed.ok) {
      throw new AmpError(
        'invalid_request',
        parsed.tooDeep ? `Request body refused: ${parsed.error}` : `Request body is not valid JSON: ${parsed.error}`,
      );
    }
    const value = parsed.value;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new AmpError('invalid_request', 'Request body must be a JSON object');
    }
    return value as Record<string, unknown>;
  }
}
