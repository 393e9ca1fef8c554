// One outbound HTTP request under the SSRF rules (spec §18): the URL is checked (ssrf.ts), the
// connection goes to the checked addresses (a `lookup` that answers with them, so no second DNS
// lookup, while Host and TLS SNI/certificate checks keep the name); a name with several addresses
// is tried address after address (Node's autoSelectFamily: the next one on a refused, unreachable
// or slow connect, never one the check did not see), with a connect timeout (TCP and TLS, all
// addresses) and a response timeout (headers and body), a bounded body, and at most `maxRedirects`
// redirects, each target checked by the same rules and never from https to http; a redirect repeats
// the request as it was (method and body kept, whatever the status).

import { type IncomingHttpHeaders, type IncomingMessage, request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { LookupFunction, Socket } from 'node:net';
import type { AllowList } from './allow-list.js';
import { type CheckedUrl, checkUrl, type Resolver, UrlRefusedError } from './ssrf.js';

export const CONNECT_TIMEOUT_MS = 5_000;
export const RESPONSE_TIMEOUT_MS = 10_000;
export const MAX_REDIRECTS = 2;
export const MAX_RESPONSE_BODY_BYTES = 64 * 1024;

export type FailureKind = 'connect_timeout' | 'response_timeout' | 'network';

/** The request did not complete: worth a retry (spec §18: "5xx, timeout, network error → retry"). */
export class OutboundFailure extends Error {
  override readonly name = 'OutboundFailure';
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly url: string,
  ) {
    super(message);
  }
}

export interface FetchCheckedOptions {
  allow: AllowList;
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  connectTimeoutMs?: number;
  responseTimeoutMs?: number;
  maxRedirects?: number;
  /** Past this many bytes the body is cut (`truncated: true`) and the connection closed. */
  maxBodyBytes?: number;
  /** Extra trusted CA certificates (PEM) for https. */
  ca?: string | Buffer | Array<string | Buffer>;
  resolver?: Resolver;
}

export interface FetchCheckedResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  truncated: boolean;
  /** The URL that answered (after redirects) and the address it was reached at. */
  url: string;
  address: string;
  redirects: number;
}

interface Hop {
  method: string;
  headers: Record<string, string>;
  body?: Uint8Array;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** Throws UrlRefusedError (the rules refuse a target) or OutboundFailure (retry later). */
export async function fetchChecked(url: string, opts: FetchCheckedOptions): Promise<FetchCheckedResult> {
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'utf8') : opts.body;
  let hop: Hop = { method: opts.method ?? 'GET', headers: { ...opts.headers }, body };
  let target = await checkUrl(url, opts.allow, { resolver: opts.resolver });
  const maxRedirects = opts.maxRedirects ?? MAX_REDIRECTS;
  for (let redirects = 0; ; redirects++) {
    const res = await requestOnce(target, hop, opts);
    const location = res.headers.location;
    if (!REDIRECT_STATUSES.has(res.status) || location === undefined) {
      return { ...res, url: target.url.href, redirects };
    }
    if (redirects >= maxRedirects) {
      throw new UrlRefusedError('too_many_redirects', `more than ${maxRedirects} redirects`, target.url.href);
    }
    const next = await checkUrl(absoluteLocation(location, target.url), opts.allow, { resolver: opts.resolver });
    if (target.url.protocol === 'https:' && next.url.protocol === 'http:') {
      throw new UrlRefusedError('https_to_http', `redirect from https to http (${next.url.href})`, next.url.href);
    }
    hop = redirectedHop(hop, target.url.origin !== next.url.origin);
    target = next;
  }
}

/**
 * The Location as an absolute URL string, keeping the host exactly as written so that the
 * non-canonical IP check sees it: absolute as is, scheme-relative with the current scheme.
 */
function absoluteLocation(location: string, base: URL): string {
  const s = location.replace(/[\t\n\r]/g, '').trim();
  if (/^[a-z][a-z0-9+.-]*:/i.test(s)) return s;
  if (/^[/\\]{2}/.test(s)) return base.protocol + s;
  try {
    return new URL(s, base).href;
  } catch {
    throw new UrlRefusedError('invalid_url', `redirect to an invalid location '${s}'`, base.href);
  }
}

/**
 * Every redirect (301, 302, 303, 307, 308) repeats the request with its method, headers and body:
 * a webhook or federation POST is never turned into a bodiless GET whose 2xx would then count as
 * the delivery. Across origins, credentials (authorization, cookie) are dropped.
 */
function redirectedHop(hop: Hop, crossOrigin: boolean): Hop {
  const headers = { ...hop.headers };
  if (crossOrigin) for (const h of Object.keys(headers)) if (/^(authorization|cookie)$/i.test(h)) delete headers[h];
  return { ...hop, headers };
}

type HopResult = Pick<FetchCheckedResult, 'status' | 'headers' | 'body' | 'truncated' | 'address'>;

/** Answers with the checked addresses only (every one, in the resolver's order, when asked for all). */
function checkedLookup(target: CheckedUrl): LookupFunction {
  return (_name, options, callback) => {
    const cb = callback as (...args: unknown[]) => void;
    if (options.all)
      cb(
        null,
        target.addresses.map((a) => ({ address: a.address, family: a.family })),
      );
    else cb(null, target.address, target.family);
  };
}

/** A connect error's words: Node reports a failure of every address as an AggregateError without a message. */
function errorMessage(e: Error): string {
  if (e.message || !(e instanceof AggregateError)) return e.message;
  return e.errors.map((x: unknown) => (x instanceof Error ? x.message : String(x))).join('; ');
}

function requestOnce(target: CheckedUrl, hop: Hop, opts: FetchCheckedOptions): Promise<HopResult> {
  const href = target.url.href;
  const headers = { ...hop.headers };
  if (hop.body) headers['content-length'] = String(hop.body.length);
  const options = {
    host: target.hostname,
    port: target.port,
    path: target.url.pathname + target.url.search,
    method: hop.method,
    headers,
    lookup: checkedLookup(target),
    // Several addresses: tried in turn, the next after a refusal or 250 ms without a connection.
    autoSelectFamily: true,
    agent: false as const,
    ca: opts.ca,
  };
  return new Promise<HopResult>((resolve, reject) => {
    const req = (target.url.protocol === 'https:' ? httpsRequest : httpRequest)(options);
    const fail = (kind: FailureKind, message: string) => {
      const e = new OutboundFailure(kind, message, href);
      reject(e); // first: the destroy below makes the request and response report errors of their own
      req.destroy(e);
    };
    const connectMs = opts.connectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    let timer = setTimeout(() => fail('connect_timeout', `no connection within ${connectMs} ms`), connectMs);
    let address = target.address;
    req.on('socket', (socket: Socket) => {
      const connected = () => {
        address = socket.remoteAddress ?? address;
        clearTimeout(timer);
        const ms = opts.responseTimeoutMs ?? RESPONSE_TIMEOUT_MS;
        timer = setTimeout(() => fail('response_timeout', `no complete response within ${ms} ms`), ms);
      };
      socket.once(target.url.protocol === 'https:' ? 'secureConnect' : 'connect', connected);
    });
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e instanceof OutboundFailure ? e : new OutboundFailure('network', errorMessage(e), href));
    });
    req.on('response', (res) => {
      readBody(res, opts.maxBodyBytes ?? MAX_RESPONSE_BODY_BYTES).then(
        ({ body, truncated }) => {
          clearTimeout(timer);
          if (truncated) req.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, truncated, address });
        },
        (e: Error) => {
          clearTimeout(timer);
          reject(new OutboundFailure('network', `response cut short: ${e.message}`, href));
        },
      );
    });
    req.end(hop.body);
  });
}

/** Up to `max` bytes of the body; past that it stops reading. Rejects if the response is cut short. */
function readBody(res: IncomingMessage, max: number): Promise<{ body: Buffer; truncated: boolean }> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      const room = max - size;
      if (chunk.length > room) {
        chunks.push(chunk.subarray(0, room));
        res.off('data', onData);
        res.pause();
        resolve({ body: Buffer.concat(chunks), truncated: true });
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    };
    res.on('data', onData);
    res.on('end', () => resolve({ body: Buffer.concat(chunks), truncated: false }));
    res.on('error', (e) => reject(e));
    res.on('aborted', () => reject(new Error('response aborted')));
  });
}
