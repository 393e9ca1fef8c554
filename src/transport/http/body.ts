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

import type { HttpResponse } from 'uWebSockets.js';
import { AmpError, MAX_REQUEST_BYTES, parseJsonBody } from '../../../proto/index.js';

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

  constructor(res: HttpResponse, contentLength: string, limit: number = MAX_REQUEST_BYTES) {
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
    if (!this.settled) this.fail(abortedError());
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
