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

import { STATUS_CODES } from 'node:http';
import type { HttpRequest as UwsRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { Logger } from 'pino';
import { AmpError, isAmpError } from '../../../proto/index.js';
import type { InFlightCounter } from '../../ops/in-flight.js';
import type { HttpObserver } from '../../ops/telemetry.js';
import { BodyReader } from './body.js';
import { clientOrigin } from './forwarded.js';
import type { HttpReply, HttpRequest, Match, Router } from './router.js';

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

interface ResState {
  aborted: boolean;
  done: boolean;
  head: boolean;
  /** The socket is paused (no reads) until this response is written. */
  paused: boolean;
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

function write(res: HttpResponse, state: ResState, reply: HttpReply, opts: HttpOptions, closeConnection = false): void {
  if (state.aborted || state.done) return;
  state.done = true;
  const headers = reply.headers ?? {};
  const raw = typeof reply.body === 'string';
  const text = reply.body === undefined ? undefined : raw ? (reply.body as string) : JSON.stringify(reply.body);
  res.cork(() => {
    res.writeStatus(statusLine(reply.status));
    if (headers['Access-Control-Allow-Origin'] === undefined)
      res.writeHeader('Access-Control-Allow-Origin', opts.corsOrigin);
    if (headers['Cache-Control'] === undefined) res.writeHeader('Cache-Control', 'no-store');
    for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
    if (text !== undefined && !raw) res.writeHeader('Content-Type', 'application/json; charset=utf-8');
    // HEAD: headers only, framed as an empty body (Content-Length: 0). This uWS build stalls the
    // connection after endWithoutBody(), and writing the GET body would desynchronise keep-alive.
    // resume() before end(): the response is invalid after it; the next read comes after this write.
    if (state.paused) res.resume();
    res.end(state.head ? undefined : text, closeConnection);
  });
  const seconds = (performance.now() - state.t0) / 1000;
  opts.observer?.request(state.method, state.route, reply.status, seconds, state.req?.agentId);
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
export function attachHttp(app: TemplatedApp, router: Router, opts: HttpOptions): void {
  app.any('/*', (res, ureq) => {
    const t0 = performance.now();
    const method = ureq.getMethod().toUpperCase();
    const state: ResState = {
      aborted: false,
      done: false,
      head: method === 'HEAD',
      paused: false,
      t0,
      method,
      route: UNMATCHED,
      req: undefined,
    };
    let body: BodyReader | undefined;
    res.onAborted(() => {
      state.aborted = true;
      body?.abort();
    });
    const path = ureq.getUrl();
    const headers = readHeaders(ureq);
    const rawQuery = ureq.getQuery() ?? '';
    const ip = Buffer.from(res.getRemoteAddressAsText()).toString('utf8');
    const forwardedHost = ureq.getHeader('x-forwarded-host');
    Object.assign(headers, clientOrigin(headers.host, headers.forwardedProto, forwardedHost, !!opts.trustsProxy?.(ip)));
    const framing = conflictingContentLength(ureq, headers.contentLength);
    if (framing) return write(res, state, errorReply(framing), opts, true);

    if (method === 'OPTIONS') return write(res, state, PREFLIGHT_REPLY, opts);
    if (opts.isClosing()) {
      const closing = new AmpError('service_unavailable', 'The server is shutting down; retry shortly', {
        retryAfter: 1,
      });
      return write(res, state, errorReply(closing), opts, true);
    }
    const m = router.match(method, path);
    if (m.kind !== 'not_found') state.route = m.route;
    if (m.kind !== 'handler') return write(res, state, unroutedReply(m, method, path), opts);
    const reader = new BodyReader(res, BODY_METHODS.has(method) ? headers.contentLength : '0');
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
    const fail = (e: unknown) => {
      const [reply, closeConnection] = failureReply(e, opts.logger, ip, method, path);
      write(res, state, reply, opts, closeConnection);
    };
    opts.inFlight.begin();
    try {
      const out = m.handler(request);
      if (out instanceof Promise) {
        // Pausing earlier would stop the body too.
        reader.onComplete(() => {
          if (state.aborted || state.done) return;
          res.pause();
          state.paused = true;
        });
        out.then((reply) => write(res, state, reply, opts), fail).finally(() => opts.inFlight.end());
        return;
      }
      write(res, state, out, opts);
    } catch (e) {
      fail(e);
    }
    opts.inFlight.end();
  });
}
