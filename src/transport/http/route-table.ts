// The route table with its guards. Each route declares who may call it and which §20 bucket it
// takes; the table checks both from the request headers before the handler runs, so before any
// body is read (spec §12.3 step 1), and hands the handler what the checks resolved. AMP routes
// answer errors in the AMP shape, AID routes (agent-identity §15) in the AID shape.
//
//   t.api('GET', '/agents/me', { auth: 'agent', bucket: 'api' }, (req, { agent }) => ok(agents.self(agent)));
//   t.aid('GET', '/:t/agent_registrations', { tenant: true, admin: 'agent_registrations:read' },
//     (req, { tenant }) => ok(registrations.list(tenant, req.query)));

import { AmpError, aidErrorBody, isAmpError } from '../../../proto/index.js';
import type { ConsoleSession } from '../../console/sessions.js';
import { safeEqual } from '../../crypto/hash.js';
import type { Actor } from '../../identity/audit.js';
import { AidError } from '../../identity/errors.js';
import type { IdentityRoutes } from '../../identity/routes.js';
import type { Agents } from '../../relay/agents.js';
import { enforce, type RateLimits } from '../../relay/ratelimit.js';
import type { MessageRouter } from '../../relay/route.js';
import type { AgentRecord } from '../../store/types.js';
import { errorReply } from './respond.js';
import type { Handler, HttpReply, HttpRequest, Router, RouteOptions } from './router.js';

/**
 * An AMP route's guard. `auth: 'agent'`: an API key (Authorization: Bearer, or X-API-Key), then a
 * token from the agent's `bucket` (`route` is the sender's route + route_hour pair). `auth: 'none'`:
 * anyone; `bucket: 'register'` is taken per client IP. `auth: 'admin'`: an `amp:admin` JWT (its
 * signature, issuer, expiry and scope; the handler gets its tenant). Taken buckets' headers go on the reply.
 */
export type AmpGuard =
  | { auth: 'none'; bucket?: 'register' }
  | { auth: 'agent'; bucket: 'api' | 'pending' | 'route' }
  | { auth: 'admin'; orReadScope?: 'agent_registrations:read' };

export interface AgentCaller {
  agent: AgentRecord;
  /** The API key used (sessions and key rotation name it). */
  keyHash: string;
}

/**
 * The operator behind an `amp:admin` JWT or a console session: its email and tenant (the only
 * tenant it sees), and the request's IP (the audit log's).
 */
export interface AdminCaller {
  admin: { email: string; tenant: string; ip: string };
}

export type AmpContext<G extends AmpGuard> = G extends { auth: 'agent' }
  ? AgentCaller
  : G extends { auth: 'admin' }
    ? AdminCaller
    : unknown;

export type AdminScope = 'agent_registrations:read' | 'agent_registrations:write';

/**
 * An AID route's guard; the checks run in this order, each only when declared.
 * - `tenant`: `:t` names a known organisation (404 otherwise); the handler gets it lowercased.
 * - `admin`: an admin JWT of that tenant with the scope (§10); the handler gets the actor.
 * - `agentKey: 'required'`: a valid AMP API key in X-API-Key; the handler gets the agent (of any
 *   tenant: the registration request refuses another tenant's agent itself, after its limits).
 *   `'if_sent'`: no key is fine, but a key that is sent must be one of this tenant's agents.
 * - `introspector` (§8): an admin or service JWT of the tenant (read or aid:introspect scope) or an
 *   agent key of it; the handler gets the caller's id for its rate-limit bucket.
 */
export type AidGuard =
  | { tenant?: false }
  | { tenant: true; admin?: AdminScope; agentKey?: 'required' | 'if_sent'; introspector?: true };

export type AidContext<G extends AidGuard> = (G extends { tenant: true } ? { tenant: string } : unknown) &
  (G extends { admin: AdminScope } ? { actor: Actor } : unknown) &
  (G extends { agentKey: 'required' } ? { agent: AgentRecord } : unknown) &
  (G extends { introspector: true } ? { caller: string } : unknown);

type Guarded<C> = (req: HttpRequest, ctx: C) => HttpReply | Promise<HttpReply>;

export interface GuardDeps {
  agents: Agents;
  limits: RateLimits;
  /** The route call's sender buckets. */
  router: MessageRouter;
  identity: IdentityRoutes;
  /** Admin console sessions (src/console/): a request without Authorization may name one in its Cookie. */
  console?: { session(cookie: string): ConsoleSession | undefined };
}

/** How each bucket names itself in a 429 (`details.scope`). */
const BUCKET_SCOPE = { api: 'agent', pending: 'pending', register: 'ip' } as const;

/** Methods whose handlers may run before the body is in (they have none and change nothing). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Methods an `amp:admin:read` token or session may call on AMP admin routes. */
const READ_METHODS = new Set(['GET', 'HEAD']);
export const CSRF_MESSAGE =
  'Missing or wrong CSRF token: a console session needs the X-CSRF-Token header (its csrf_token) on this method';

export const NO_STORE = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
const SESSION_ENDED =
  'The console session ended (signed out, expired, or the server restarted); run amp-relay admin login';

/** One registered route as the OpenAPI document sees it (`mount` tells how `path` was served). */
export interface RouteEntry {
  method: string;
  /** As registered: `/agents/me` for an `api` route (served under each API mount), else the full path. */
  path: string;
  mount: 'api' | 'root' | 'aid';
  guard: AmpGuard | AidGuard;
}

export class RouteTable {
  /** Every route in registration order (openapi.ts documents them). */
  readonly routes: RouteEntry[] = [];

  constructor(
    readonly router: Router,
    private readonly deps: GuardDeps,
  ) {}

  /**
   * An AMP route under both API mounts (`/v1`, `/api/v1`). `opts.streamBody`: the handler runs once
   * the guard passed, before the body is in, and reads it with `req.body.pipe(sink)`.
   */
  api<const G extends AmpGuard>(
    method: string,
    path: string,
    guard: G,
    handler: Guarded<AmpContext<G>>,
    opts: RouteOptions = {},
  ): this {
    this.router.api(method, path, this.amp(guard, handler, opts.streamBody === true), opts);
    this.routes.push({ method, path, mount: 'api', guard });
    return this;
  }

  /**
   * An AMP route that a second kind of caller uses too, told apart by its headers before any guard
   * runs: when `peer.claims(req)`, `peer.handler` runs instead (it authenticates the caller itself
   * and reads the body when it is ready to); otherwise the route's own guard and handler.
   */
  apiWithPeer<const G extends AmpGuard>(
    method: string,
    path: string,
    guard: G,
    handler: Guarded<AmpContext<G>>,
    peer: { claims: (req: HttpRequest) => boolean; handler: Handler },
  ): this {
    const own = this.amp(guard, handler, false);
    this.router.api(method, path, (req) => (peer.claims(req) ? peer.handler(req) : own(req)));
    this.routes.push({ method, path, mount: 'api', guard });
    return this;
  }

  /** An AMP route at the root (well-known documents, metrics). */
  root<const G extends AmpGuard>(
    method: string,
    path: string,
    guard: G,
    handler: Guarded<AmpContext<G>>,
    opts: RouteOptions = {},
  ): this {
    this.router.add(method, path, this.amp(guard, handler, opts.streamBody === true), opts);
    this.routes.push({ method, path, mount: 'root', guard });
    return this;
  }

  /** An AID route at the root; the tenant parameter, when there is one, is `:t`. */
  aid<const G extends AidGuard>(method: string, path: string, guard: G, handler: Guarded<AidContext<G>>): this {
    this.router.add(
      method,
      path,
      aidShaped(async (req) => {
        const ctx = (await this.aidCaller(guard, req)) as AidContext<G>;
        if (!SAFE_METHODS.has(req.method)) await req.body.complete();
        return handler(req, ctx);
      }),
    );
    this.routes.push({ method, path, mount: 'aid', guard });
    return this;
  }

  /**
   * Guards run synchronously, and so do GET handlers that answer without awaiting: their answer is
   * written in the same tick, which keeps pipelined GETs working (see respond.ts). Other methods'
   * handlers start only once the body is in and the connection still there: a request whose
   * connection was dropped (pipelining behind it, uWS#1301) never changes anything. A streamBody
   * handler starts at once (after the guard) and gets the body through `pipe`, which fails the same way.
   */
  private amp<G extends AmpGuard>(guard: G, handler: Guarded<AmpContext<G>>, streamBody: boolean): Handler {
    if (guard.auth === 'admin') return this.adminRoute(handler as Guarded<AdminCaller>, streamBody, guard.orReadScope);
    return (req) => {
      const [caller, headers] = this.ampCaller(guard as Exclude<AmpGuard, { auth: 'admin' }>, req);
      const run = () => {
        const out = handler(req, caller as AmpContext<G>);
        return out instanceof Promise ? out.then((reply) => withHeaders(reply, headers)) : withHeaders(out, headers);
      };
      return SAFE_METHODS.has(req.method) || streamBody ? run() : req.body.complete().then(run);
    };
  }

  /**
   * The admin JWT (or console session) is checked before any body is read: no token, no body
   * buffered. GET and HEAD take `amp:admin:read`, which `amp:admin` implies; others `amp:admin`.
   * `orReadScope`: a GET is also open to that scope (the merged audit log to AID readers).
   */
  private adminRoute(handler: Guarded<AdminCaller>, streamBody: boolean, orReadScope?: string): Handler {
    return async (req) => {
      const read = READ_METHODS.has(req.method);
      const session = this.consoleSession(req);
      if (session && !csrfOk(req, session)) throw new AmpError('forbidden', CSRF_MESSAGE);
      if (!session && endedSession(req)) throw new AmpError('unauthorized', SESSION_ENDED);
      const check = (scope: string) =>
        session
          ? this.deps.identity.ampSessionAdmin(session.principal, scope)
          : this.deps.identity.ampAdmin(req.headers.authorization, scope);
      const who = await Promise.resolve()
        .then(() => check(read ? 'amp:admin:read' : 'amp:admin'))
        .catch((e) => {
          if (!read || !orReadScope || !isAmpError(e) || e.code !== 'forbidden') throw e;
          return check(orReadScope);
        });
      if (!SAFE_METHODS.has(req.method) && !streamBody) await req.body.complete();
      return handler(req, { admin: { ...who, ip: req.ip } });
    };
  }

  /** For a request made with a console session: whether that session still lives (signed out or expired: no). */
  sessionAlive(req: HttpRequest): (() => boolean) | undefined {
    const sessions = this.deps.console;
    if (!sessions || !this.consoleSession(req)) return undefined;
    const cookie = req.headers.cookie;
    return () => sessions.session(cookie) !== undefined;
  }

  /** The live console session a request without Authorization names in its Cookie (an Authorization header wins). */
  consoleSession(req: HttpRequest): ConsoleSession | undefined {
    if (req.headers.authorization.trim() !== '' || !this.deps.console) return undefined;
    return this.deps.console.session(req.headers.cookie);
  }

  private ampCaller(
    guard: Exclude<AmpGuard, { auth: 'admin' }>,
    req: HttpRequest,
  ): [AgentCaller | undefined, Record<string, string>] {
    const { agents, limits, router } = this.deps;
    if (guard.auth === 'none') {
      const headers = guard.bucket ? enforce(limits.takeForIp(guard.bucket, req.ip), BUCKET_SCOPE[guard.bucket]) : {};
      return [undefined, headers];
    }
    const caller = agents.authenticateKey(req.headers.authorization, req.headers.xApiKey);
    req.agentId = caller.agent.id;
    const { bucket } = guard;
    const headers =
      bucket === 'route'
        ? router.senderRateLimit(caller.agent)
        : enforce(limits.take([[bucket, caller.agent.id]]), BUCKET_SCOPE[bucket]);
    return [caller, headers];
  }

  private async aidCaller(guard: AidGuard, req: HttpRequest): Promise<Record<string, unknown>> {
    if (!guard.tenant) return {};
    const { identity } = this.deps;
    const tenant = identity.tenant(req.params.t);
    const ctx: Record<string, unknown> = { tenant };
    if (guard.admin) ctx.actor = await this.aidAdmin(req, tenant, guard.admin);
    if (guard.agentKey === 'required') ctx.agent = this.requiredAgentKey(req);
    if (guard.agentKey === 'if_sent') this.agentKeyIfSent(req, tenant);
    if (guard.introspector) ctx.caller = await this.introspector(req, tenant);
    return ctx;
  }

  /** §10: an admin JWT of the tenant, or a console session of it (its CSRF token on non-safe methods). */
  private aidAdmin(req: HttpRequest, tenant: string, scope: string): Promise<Actor> | Actor {
    const { identity } = this.deps;
    const session = this.consoleSession(req);
    if (!session && endedSession(req)) throw new AidError('invalid_token', SESSION_ENDED);
    if (!session) return identity.admin(req.headers.authorization, tenant, scope, req.ip, req.headers.userAgent);
    if (!csrfOk(req, session)) throw new AidError('insufficient_scope', CSRF_MESSAGE);
    return identity.sessionAdmin(session.principal, tenant, scope, req.ip, req.headers.userAgent);
  }

  private requiredAgentKey(req: HttpRequest): AgentRecord {
    try {
      const { agent } = this.deps.agents.authenticateKey('', req.headers.xApiKey);
      req.agentId = agent.id;
      return agent;
    } catch {
      throw new AidError('invalid_client', "A valid X-API-Key (the agent's AMP API key) is required");
    }
  }

  /** §5: the proof is the credential; an X-API-Key, if sent, must be valid for this tenant. */
  private agentKeyIfSent(req: HttpRequest, tenant: string): void {
    if (!req.headers.xApiKey) return;
    let agentTenant: string | undefined;
    try {
      agentTenant = this.deps.agents.authenticateKey('', req.headers.xApiKey).agent.tenant;
    } catch {
      agentTenant = undefined;
    }
    if (agentTenant !== tenant)
      throw new AidError('invalid_client', 'The X-API-Key is not valid for this organisation');
  }

  /** §8: an X-API-Key decides alone when sent; otherwise the bearer token may hold either scope. */
  private async introspector(req: HttpRequest, tenant: string): Promise<string> {
    const { agents, identity } = this.deps;
    let caller: string | null = null;
    if (req.headers.xApiKey) {
      try {
        const { agent } = agents.authenticateKey('', req.headers.xApiKey);
        if (agent.tenant === tenant) caller = `agent:${agent.id}`;
      } catch {
        caller = null;
      }
    } else if (this.consoleSession(req)) {
      const session = this.consoleSession(req) as ConsoleSession;
      caller = await Promise.resolve()
        .then(() => identity.sessionAdmin(session.principal, tenant, 'agent_registrations:read', req.ip, ''))
        .then(
          (a) => a.id,
          () => null,
        );
    } else if (req.headers.authorization) {
      for (const scope of ['agent_registrations:read', 'aid:introspect']) {
        if (caller) break;
        caller = await identity.admin(req.headers.authorization, tenant, scope, req.ip, '').then(
          (a) => a.id,
          () => null,
        );
      }
    }
    if (!caller)
      throw new AidError(
        'invalid_client',
        'Introspection needs an admin or service token of this organisation, or an agent API key',
      );
    return caller;
  }
}

/** A request with no Authorization whose console cookie names no live session (the page says why). */
function endedSession(req: HttpRequest): boolean {
  return req.headers.authorization.trim() === '' && /(?:^|;)\s*amp_console=/.test(req.headers.cookie);
}

/** Safe methods need no CSRF token; others the session's, compared in constant time. */
function csrfOk(req: HttpRequest, session: ConsoleSession): boolean {
  return (
    SAFE_METHODS.has(req.method) || (req.headers.csrfToken !== '' && safeEqual(req.headers.csrfToken, session.csrf))
  );
}

/** The guard's rate-limit headers under the handler's own. */
function withHeaders(reply: HttpReply, headers: Record<string, string>): HttpReply {
  return Object.keys(headers).length === 0 ? reply : { ...reply, headers: { ...headers, ...reply.headers } };
}

/** AID errors in the AID body shape (§15), whether thrown by a guard or by the handler. */
export function aidShaped(fn: (req: HttpRequest) => Promise<HttpReply> | HttpReply): Handler {
  return async (req) => {
    try {
      return await fn(req);
    } catch (e) {
      if (e instanceof AidError) return { status: e.status, body: e.body(), headers: { ...NO_STORE, ...e.headers } };
      // Body problems (size, JSON) and rate limits keep their AMP codes and headers but take the AID shape.
      if (isAmpError(e)) {
        const code = e.code === 'request_too_large' ? 'invalid_request' : e.code;
        return {
          status: e.status,
          body: aidErrorBody(e.status, code, e.message),
          headers: { ...NO_STORE, ...errorReply(e).headers },
        };
      }
      throw e;
    }
  };
}
