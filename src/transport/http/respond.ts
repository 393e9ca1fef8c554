// Writing responses to uWS, and the catch-all that dispatches every REST request.
//
// uWS lifetimes: `onAborted` is attached before anything can await; request headers are copied
// synchronously (the HttpRequest object is invalid after the handler returns); every write after
// an await is wrapped in `res.cork`; nothing touches `res` once it is aborted or answered.
//
// Pipelining (uNetworking/uWebSockets.js#1301): uWS parses every request already read from a
// connection in one go and closes the connection when one arrives while an earlier response is
// still pending. So handlers that can answer synchronously do (pipelined GETs all get answers), and
// while an async handler works, the socket is paused (`res.pause()`): requests the client sends
// after this one's bytes were read wait in the kernel and are read once it is answered. Requests
// read together with a pending one are lost with the connection (uWS gives JS no way to hold them);
// the body reader then refuses the pending request's work, so nothing unanswered takes effect.
//
// Streamed bodies (streamBody routes, body-stream.ts), file replies (file-reply.ts) and long-lived
// stream replies (stream-reply.ts: Server-Sent Events) pause the same socket for their own reasons;
// flow.ts keeps the reasons apart. A stream reply is not in flight once its head is written:
// shutdown ends it (HttpHandle.streams) rather than waiting for it. A reply written before a
// streamed body fully arrived closes the connection: the unread rest cannot start a next request.

import { STATUS_CODES } from 'node:http';
import type { HttpRequest as UwsRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { AmpError, isAmpError } from '../../../proto/index.js';
import type { InFlightCounter } from '../../ops/in-flight.js';
import type { HttpObserver } from '../../ops/telemetry.js';
import { BodyReader } from './body.js';
import { sendFile } from './file-reply.js';
import { PauseControl } from './flow.js';
import { clientOrigin } from './forwarded.js';
import type { Handler, HttpReply, HttpRequest, Match, Router } from './router.js';
import { OpenStreams, openStream } from './stream-reply.js';

export interface HttpOptions {
  corsOrigin: string;
  logger: Logger;
  /** Counts requests being handled, so shutdown can wait for them before closing the store. */
  inFlight: InFlightCounter;
  /** True once shutdown began: new requests get 503 and touch nothing. */
  isClosing: () => boolean;
  /** Whether a peer address is a trusted reverse proxy (its X-Forwarded-* count). Default: none is. */
  trustsProxy?: (ip: string) => boolean;
  /** Told of every answered request: a log line and the latency histogram. */
  observer?: HttpObserver;
}

/** What the server keeps of the HTTP side: the open streams, ended at shutdown. */
export interface HttpHandle {
  streams: OpenStreams;
}

interface ResState {
  aborted: boolean;
  done: boolean;
  head: boolean;
  /** Pauses the socket's reads (pipelining, streamed bodies, file replies); released by the write. */
  flow: PauseControl;
  /** Run once if the connection goes away (a file reply waiting for uWS to take a chunk). */
  onAbort?: () => void;
  /** For the request's log line and metrics: when it began (performance.now()), its route template. */
  t0: number;
  method: string;
  route: string;
  /** Once routed: it names the authenticated agent, if any. */
  req: HttpRequest | undefined;
}

/** The route label of requests no route matched (404, refusals before routing): bounded cardinality. */
const UNMATCHED = 'unmatched';

const CORS_ALLOW_HEADERS = 'Authorization, Content-Type, X-API-Key, Idempotency-Key';
const CORS_ALLOW_METHODS = 'GET, POST, PUT, PATCH, DELETE, OPTIONS';
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function statusLine(status: number): string {
  return `${status} ${STATUS_CODES[status] ?? ''}`;
}

export function errorReply(e: AmpError): HttpReply {
  const headers: Record<string, string> = { ...e.headers };
  if (e.retryAfter !== undefined) headers['Retry-After'] = String(e.retryAfter);
  return { status: e.status, body: e.toBody(), headers };
}

/**
 * Write `reply` (once; never after an abort). A file reply streams, and the returned promise settles
 * when it ended (the in-flight count covers it).
 */
function write(
  res: HttpResponse,
  state: ResState,
  reply: HttpReply,
  opts: HttpOptions,
  streams: OpenStreams,
  closeConnection = false,
): Promise<void> | undefined {
  if (state.aborted || state.done) return;
  state.done = true;
  const body = state.req?.body;
  const incomplete = body?.incomplete === true;
  if (reply.file && !incomplete) return writeFile(res, state, reply, opts);
  if (reply.stream && !incomplete) return writeStream(res, state, reply, opts, streams);
  emit(res, state, reply, opts, closeConnection || incomplete);
  // The rest of a streamed body is never read: a sink still waiting for it fails.
  if (incomplete) body?.abort();
}

/**
 * Status line and headers: CORS and no-store unless the reply sets its own. uWS writes Content-Length
 * itself (from the body, or the file range's size): a handler's own would be a second one, dropped.
 */
function writeHead(res: HttpResponse, reply: HttpReply, opts: HttpOptions, json: boolean): void {
  const headers = reply.headers ?? {};
  res.writeStatus(statusLine(reply.status));
  if (headers['Access-Control-Allow-Origin'] === undefined)
    res.writeHeader('Access-Control-Allow-Origin', opts.corsOrigin);
  if (headers['Cache-Control'] === undefined) res.writeHeader('Cache-Control', 'no-store');
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() !== 'content-length') res.writeHeader(k, v);
  if (json) res.writeHeader('Content-Type', 'application/json; charset=utf-8');
}

function emit(res: HttpResponse, state: ResState, reply: HttpReply, opts: HttpOptions, closeConnection: boolean): void {
  if (state.aborted) return;
  const raw = typeof reply.body === 'string';
  const text = reply.body === undefined ? undefined : raw ? (reply.body as string) : JSON.stringify(reply.body);
  res.cork(() => {
    writeHead(res, reply, opts, text !== undefined && !raw);
    // HEAD: headers only, framed as an empty body (Content-Length: 0). This uWS build stalls the
    // connection after endWithoutBody(), and writing the GET body would desynchronise keep-alive.
    // resume() before end(): the response is invalid after it; the next read comes after this write.
    state.flow.finish(true);
    res.end(state.head ? undefined : text, closeConnection);
  });
  observe(state, reply.status, opts);
}

/** Open a long-lived stream; it is answered (and logged) once its head is written. */
function writeStream(res: HttpResponse, state: ResState, reply: HttpReply, opts: HttpOptions, streams: OpenStreams) {
  const parts = {
    res,
    flow: state.flow,
    writeHead: () => writeHead(res, reply, opts, false),
    isAborted: () => state.aborted,
    onAbort: (fn: () => void) => {
      state.onAbort = fn;
    },
  };
  openStream(parts, state.head, reply.stream!, streams);
  observe(state, reply.status, opts);
  return undefined;
}

function observe(state: ResState, status: number, opts: HttpOptions): void {
  const seconds = (performance.now() - state.t0) / 1000;
  opts.observer?.request(state.method, state.route, status, seconds, state.req?.agentId);
}

/** Stream `reply.file`; 404 if it is absent, 500 if it cannot be opened otherwise. Never rejects. */
async function writeFile(res: HttpResponse, state: ResState, reply: HttpReply, opts: HttpOptions): Promise<void> {
  try {
    await streamFile(res, state, reply, opts);
  } catch (err) {
    // A bug (e.g. a header value uWS refuses): log it, drop the connection, keep the server up.
    opts.logger.error({ err, method: state.method, path: state.req?.path }, 'file reply failed');
    if (!state.aborted) res.close();
  }
}

async function streamFile(res: HttpResponse, state: ResState, reply: HttpReply, opts: HttpOptions): Promise<void> {
  const result = await sendFile({
    res,
    file: reply.file!,
    head: state.head,
    flow: state.flow,
    writeHead: () => writeHead(res, reply, opts, false),
    isAborted: () => state.aborted,
    onAbort: (fn) => {
      state.onAbort = fn;
    },
  });
  const { method, path } = state.req!;
  if (result.kind === 'missing') {
    emit(res, state, errorReply(new AmpError('not_found', 'The file is not available')), opts, false);
  } else if (result.kind === 'unreadable') {
    opts.logger.error({ err: result.error, method, path }, 'file reply: cannot open the file');
    emit(res, state, errorReply(new AmpError('internal_error', 'Internal server error')), opts, false);
  } else if (result.kind !== 'gone') {
    if (result.kind === 'cut' && result.error) opts.logger.error({ err: result.error, method, path }, 'file reply cut');
    observe(state, reply.status, opts);
  }
}

function readHeaders(req: UwsRequest) {
  return {
    authorization: req.getHeader('authorization'),
    contentLength: req.getHeader('content-length'),
    host: req.getHeader('host'),
    xApiKey: req.getHeader('x-api-key'),
    idempotencyKey: req.getHeader('idempotency-key'),
    registrationKey: req.getHeader('x-registration-key'),
    contentType: req.getHeader('content-type'),
    userAgent: req.getHeader('user-agent'),
    forwardedProto: req.getHeader('x-forwarded-proto'),
    range: req.getHeader('range'),
    ifNoneMatch: req.getHeader('if-none-match'),
    ifRange: req.getHeader('if-range'),
    meshHost: req.getHeader('x-amp-mesh-host'),
    ampTimestamp: req.getHeader('x-amp-timestamp'),
    meshAuth: req.getHeader('x-amp-mesh-auth'),
    meshSignature: req.getHeader('x-amp-mesh-signature'),
    senderKey: req.getHeader('x-amp-sender-key'),
    forwardedFrom: req.getHeader('x-forwarded-from'),
    ampProvider: req.getHeader('x-amp-provider'),
    ampSignature: req.getHeader('x-amp-signature'),
    ampKeyRevoked: req.getHeader('x-amp-key-revoked'),
    cookie: req.getHeader('cookie'),
    csrfToken: req.getHeader('x-csrf-token'),
  };
}

/**
 * Request-smuggling shape (RFC 9112 §6.3): several Content-Length headers that disagree. uWS frames
 * the body by the first one and hands the request over; we refuse it and close, since the bytes
 * after it cannot be trusted to start the next request. Checked only when a Content-Length is sent.
 */
function conflictingContentLength(req: UwsRequest, first: string): AmpError | undefined {
  if (first === '') return undefined;
  let conflict = false;
  req.forEach((key, value) => {
    if (key === 'content-length' && value.trim() !== first.trim()) conflict = true;
  });
  if (!conflict) return undefined;
  return new AmpError('invalid_request', 'Conflicting Content-Length headers; the request is refused', {
    field: 'Content-Length',
  });
}

const PREFLIGHT_REPLY: HttpReply = {
  status: 204,
  headers: {
    'Access-Control-Allow-Methods': CORS_ALLOW_METHODS,
    'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS,
    'Access-Control-Max-Age': '600',
  },
};

/** 404 for an unknown path; 405 with Allow for a known path without this method. */
function unroutedReply(m: Exclude<Match, { kind: 'handler' }>, method: string, path: string): HttpReply {
  if (m.kind === 'not_found') return errorReply(new AmpError('not_found', `No such endpoint: ${method} ${path}`));
  const allow = m.allow.join(', ');
  const reply = errorReply(
    new AmpError('method_not_allowed', `Method ${method} is not allowed on ${path}; allowed: ${allow}`),
  );
  reply.headers!.Allow = allow;
  return reply;
}

/** The reply to a handler that threw, and whether to close the connection after it. */
function failureReply(e: unknown, logger: Logger, ip: string, method: string, path: string): [HttpReply, boolean] {
  if (!isAmpError(e)) {
    logger.error({ err: e, method, path }, 'request handler failed');
    return [errorReply(new AmpError('internal_error', 'Internal server error')), false];
  }
  // Security events are logged (never with the credential itself).
  if (e.code === 'unauthorized') logger.info({ event: 'auth_failed', ip, method, path }, 'authentication failed');
  else if (e.code === 'rate_limited')
    logger.info({ event: 'rate_limited', ip, path, scope: e.details.scope }, 'rate limited');
  // A body refused mid-stream: answer now and drop the connection rather than read the rest.
  return [errorReply(e), e.code === 'request_too_large'];
}

/** Route every HTTP request on `app` through `router`. */
export function attachHttp(app: TemplatedApp, router: Router, opts: HttpOptions): HttpHandle {
  const streams = new OpenStreams();
  app.any('/*', (res, ureq) => {
    const t0 = performance.now();
    const method = ureq.getMethod().toUpperCase();
    const state: ResState = {
      aborted: false,
      done: false,
      head: method === 'HEAD',
      flow: new PauseControl(res),
      t0,
      method,
      route: UNMATCHED,
      req: undefined,
    };
    let body: BodyReader | undefined;
    res.onAborted(() => {
      state.aborted = true;
      state.flow.finish(false);
      body?.abort();
      state.onAbort?.();
    });
    const path = ureq.getUrl();
    const headers = readHeaders(ureq);
    const rawQuery = ureq.getQuery() ?? '';
    const ip = Buffer.from(res.getRemoteAddressAsText()).toString('utf8');
    const forwardedHost = ureq.getHeader('x-forwarded-host');
    Object.assign(headers, clientOrigin(headers.host, headers.forwardedProto, forwardedHost, !!opts.trustsProxy?.(ip)));
    const framing = conflictingContentLength(ureq, headers.contentLength);
    if (framing) return write(res, state, errorReply(framing), opts, streams, true);

    if (method === 'OPTIONS') return write(res, state, PREFLIGHT_REPLY, opts, streams);
    if (opts.isClosing()) {
      const closing = new AmpError('service_unavailable', 'The server is shutting down; retry shortly', {
        retryAfter: 1,
      });
      return write(res, state, errorReply(closing), opts, streams, true);
    }
    const m = router.match(method, path);
    if (m.kind !== 'not_found') state.route = m.route;
    if (m.kind !== 'handler') return write(res, state, unroutedReply(m, method, path), opts, streams);
    const length = BODY_METHODS.has(method) ? headers.contentLength : '0';
    const reader = new BodyReader(res, length, undefined, m.streamBody ? state.flow : undefined);
    body = reader;
    const request: HttpRequest = {
      method,
      path,
      query: new URLSearchParams(rawQuery),
      params: m.params,
      headers,
      ip,
      body,
      agentId: undefined,
    };
    state.req = request;
    run(res, state, m.handler, request, opts, streams);
  });
  return { streams };
}

/** Run the handler and write its answer; the request counts as in flight until that is written. */
function run(
  res: HttpResponse,
  state: ResState,
  handler: Handler,
  request: HttpRequest,
  opts: HttpOptions,
  streams: OpenStreams,
): void {
  const fail = (e: unknown) => {
    const [reply, closeConnection] = failureReply(e, opts.logger, request.ip, request.method, request.path);
    return write(res, state, reply, opts, streams, closeConnection);
  };
  opts.inFlight.begin();
  let written: Promise<void> | undefined;
  try {
    const out = handler(request);
    if (out instanceof Promise) {
      // Pausing earlier would stop the body too.
      request.body.onComplete(() => {
        if (!state.aborted && !state.done) state.flow.hold('answer');
      });
      out.then((reply) => write(res, state, reply, opts, streams), fail).finally(() => opts.inFlight.end());
      return;
    }
    written = write(res, state, out, opts, streams);
  } catch (e) {
    written = fail(e);
  }
  if (written) written.finally(() => opts.inFlight.end());
  else opts.inFlight.end();
}
