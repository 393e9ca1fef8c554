// The REST route table. One uWS catch-all hands every request to `match`, so 404, 405 (+ Allow)
// and the /v1 + /api/v1 double mount are decided here, in one place, rather than by uWS pattern
// precedence. Which path wins does not depend on registration order: segment by segment, a literal
// beats a parameter (`/:t/agent_registrations/request` over `/:t/agent_registrations/:id`).

import type { BodyReader } from './body.js';
import type { StreamSink } from './stream-reply.js';

export interface RequestHeaders {
  authorization: string;
  contentLength: string;
  host: string;
  xApiKey: string;
  idempotencyKey: string;
  registrationKey: string;
  contentType: string;
  userAgent: string;
  forwardedProto: string;
  /** Downloads (§22): a byte range, and the validators that make it conditional. */
  range: string;
  ifNoneMatch: string;
  ifRange: string;
  /** §19.2 mesh peers: their host id, request time, proof (HMAC or signature), the sender's key. */
  meshHost: string;
  /** X-AMP-Timestamp of a mesh peer's or another provider's request (§19). */
  ampTimestamp: string;
  meshAuth: string;
  meshSignature: string;
  senderKey: string;
  /** Informational only: it never names the sender (an API key or mesh authentication does). */
  forwardedFrom: string;
  /** Federation (§19.1): the calling provider's X-AMP-Provider, X-AMP-Signature, X-AMP-Key-Revoked. */
  ampProvider: string;
  ampSignature: string;
  ampKeyRevoked: string;
  /** The admin console's session cookie (amp_console) and the CSRF token its non-safe requests carry. */
  cookie: string;
  csrfToken: string;
}

export interface HttpRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  params: Record<string, string>;
  headers: RequestHeaders;
  ip: string;
  body: BodyReader;
  /** The authenticated agent, once a guard has checked its key (request logs). */
  agentId?: string;
}

/** A byte range of a file on disk, streamed as the reply body: `end` inclusive, `start > end` is empty. */
export interface FileRange {
  path: string;
  start: number;
  end: number;
}

export interface HttpReply {
  status: number;
  /** Written as JSON, unless it is a string (written as-is, with its own Content-Type header). */
  body?: unknown;
  headers?: Record<string, string>;
  /**
   * Streamed from disk instead of `body` (respond.ts/file-reply.ts): with backpressure, never held
   * in memory. The handler sets Content-Type etc.; uWS writes Content-Length. A file that cannot be
   * opened is 404 `not_found`; a read failing mid-way closes the connection.
   */
  file?: FileRange;
  /**
   * A long-lived answer (Server-Sent Events) instead of `body`: called once the head is written,
   * with a sink to write chunks to until either side closes it (stream-reply.ts: backpressure,
   * shutdown). Not counted as a request in flight. The handler sets Content-Type etc.
   */
  stream?: (sink: StreamSink) => void;
}

/** Per-route options. */
export interface RouteOptions {
  /**
   * The handler reads the request body as a stream (`req.body.pipe(sink)`): no size limit is
   * applied (the handler decides) and the route table does not wait for the body first.
   */
  streamBody?: boolean;
}

export type Handler = (req: HttpRequest) => HttpReply | Promise<HttpReply>;

interface PathEntry {
  /** The route template, e.g. `/api/v1/messages/pending/:id` (logs and metrics name routes by it). */
  path: string;
  segments: string[];
  handlers: Map<string, { handler: Handler; streamBody: boolean }>;
}

export type Match =
  | { kind: 'handler'; handler: Handler; params: Record<string, string>; route: string; streamBody: boolean }
  | { kind: 'method_not_allowed'; allow: string[]; route: string }
  | { kind: 'not_found' };

export const API_MOUNTS = ['/v1', '/api/v1'] as const;

export class Router {
  private readonly exact = new Map<string, PathEntry>();
  /** Most specific first (see `bySpecificity`), so the first path that matches is the one to use. */
  private readonly patterns: PathEntry[] = [];
  /** GET handlers for whole subtrees (`/admin/...` of a single-page app), tried when no path matched. */
  private readonly subtrees: { prefix: string; handler: Handler }[] = [];

  /** Register `handler` for `method` on `path` (`:name` segments are parameters). */
  add(method: string, path: string, handler: Handler, opts: RouteOptions = {}): this {
    const hasParams = path.includes('/:');
    let entry = hasParams ? this.patterns.find((p) => p.segments.join('/') === path.slice(1)) : this.exact.get(path);
    if (!entry) {
      entry = { path, segments: path.slice(1).split('/'), handlers: new Map() };
      if (hasParams) {
        this.patterns.push(entry);
        this.patterns.sort(bySpecificity); // stable: equally specific paths keep their order
      } else this.exact.set(path, entry);
    }
    entry.handlers.set(method, { handler, streamBody: opts.streamBody === true });
    return this;
  }

  /** Register under both API mounts (`/v1/...` and `/api/v1/...`). */
  api(method: string, path: string, handler: Handler, opts: RouteOptions = {}): this {
    for (const mount of API_MOUNTS) this.add(method, mount + path, handler, opts);
    return this;
  }

  /** GET (and HEAD) of `prefix` and every path under it that no other route matches. */
  subtree(prefix: string, handler: Handler): this {
    this.subtrees.push({ prefix, handler });
    return this;
  }

  /**
   * The path decides the entry, then the method: once a path matches, a missing method is 405 with
   * the entry's Allow list, never a fall-through to a less specific path.
   */
  match(method: string, rawPath: string): Match {
    const path = rawPath.length > 1 && rawPath.endsWith('/') ? rawPath.slice(0, -1) : rawPath;
    let params: Record<string, string> = {};
    let entry = this.exact.get(path);
    if (!entry) {
      const segs = path.slice(1).split('/');
      for (const p of this.patterns) {
        const m = matchSegments(p.segments, segs);
        if (m) {
          entry = p;
          params = m;
          break;
        }
      }
    }
    if (!entry) return this.matchSubtree(method, path);
    const found = entry.handlers.get(method) ?? (method === 'HEAD' ? entry.handlers.get('GET') : undefined);
    if (!found) return { kind: 'method_not_allowed', allow: [...entry.handlers.keys()], route: entry.path };
    return { kind: 'handler', handler: found.handler, params, route: entry.path, streamBody: found.streamBody };
  }

  private matchSubtree(method: string, path: string): Match {
    const tree = this.subtrees.find((t) => path === t.prefix || path.startsWith(`${t.prefix}/`));
    if (!tree) return { kind: 'not_found' };
    const route = `${tree.prefix}/*`;
    if (method !== 'GET' && method !== 'HEAD') return { kind: 'method_not_allowed', allow: ['GET'], route };
    return { kind: 'handler', handler: tree.handler, params: {}, route, streamBody: false };
  }
}

const isParam = (segment: string) => segment.startsWith(':');

/**
 * Two paths that match the same request have the same length and agree on every literal; at the
 * first segment where one has a literal and the other a parameter, the literal one is more
 * specific. Ordering by that (then by length, which never decides between two matches) makes the
 * first match in the sorted list the most specific one.
 */
function bySpecificity(a: PathEntry, b: PathEntry): number {
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const pa = isParam(a.segments[i]);
    if (pa !== isParam(b.segments[i])) return pa ? 1 : -1;
  }
  return a.segments.length - b.segments.length;
}

function matchSegments(pattern: string[], segs: string[]): Record<string, string> | null {
  if (pattern.length !== segs.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (isParam(p)) {
      if (segs[i] === '') return null;
      let v: string;
      try {
        v = decodeURIComponent(segs[i]);
      } catch {
        v = segs[i];
      }
      params[p.slice(1)] = v;
    } else if (p !== segs[i]) {
      return null;
    }
  }
  return params;
}
