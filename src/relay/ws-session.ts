// One WebSocket protocol session (spec §17): the authentication state machine (§17.1), decoding
// and dispatching client frames (§17.3, §17.5). It talks to the socket only through `Connection`;
// the transport tells it what happened through `ConnectionEvents`.
//
// Frames are decoded synchronously inside `message()`: the transport's bytes are only valid during
// the call (uWS neuters them on return).

import {
  AmpError,
  CLOSE,
  type ClientFrame,
  decodeClientFrame,
  echoableRequestId,
  errorFrame,
  isAmpError,
  MAX_PREAUTH_FRAME_BYTES,
  MAX_WS_FRAME_BYTES,
  newSessionId,
  parseTextFrame,
  type Subprotocol,
  unpackFrame,
} from '../../proto/index.js';
import type { Config } from '../config/schema.js';
import type { InFlightCounter } from '../ops/in-flight.js';
import type { AgentRecord } from '../store/types.js';
import type { Agents } from './agents.js';
import { Frame, pongFrame } from './frames.js';
import type { Inbox } from './inbox.js';
import type { Push } from './push.js';
import { type RateLimits, rateLimitedError } from './ratelimit.js';
import type { MessageRouter } from './route.js';
import { AgentSession, type Connection, type Sessions } from './sessions.js';
import { effectiveStatus } from './suspension.js';
import type { Logger } from 'pino';

/** Frames that may queue while a signed auth is being verified. */
const MAX_FRAMES_WHILE_AUTHENTICATING = 32;

/**
 * Why the transport ended a connection on its own. `invalid_utf8`: a text frame was not UTF-8; RFC
 * 6455 §8.1 says fail the connection (1007), which uWS does before the session sees the frame.
 */
export type TransportCloseCause = 'invalid_utf8';

/** What the transport reports about a socket. */
export interface ConnectionEvents {
  /** The transport has wired the socket to this session: authenticate or wait for the auth frame. */
  start(): void;
  /** One frame; `bytes` is valid only during the call. */
  message(bytes: Uint8Array, isBinary: boolean): void;
  /** The socket's send buffer drained. */
  drain(): void;
  /** A protocol ping or pong arrived. */
  pong(): void;
  /** The socket is gone, closed by either side with `code`; `cause` when the transport failed it itself. */
  closed(cause?: TransportCloseCause, code?: number): void;
  /** Is the session waiting for a drain (pushes paused)? The transport then reports one. */
  wantsDrain(): boolean;
}

export interface SessionDeps {
  config: Config;
  logger: Logger;
  agents: Agents;
  router: MessageRouter;
  inbox: Inbox;
  sessions: Sessions;
  push: Push;
  limits: RateLimits;
  inFlight: InFlightCounter;
}

type State = 'auth' | 'authenticating' | 'open' | 'closed';

export class WsSession implements ConnectionEvents {
  private state: State = 'auth';
  private session?: AgentSession;
  private authTimer?: NodeJS.Timeout;
  private waiting: Record<string, unknown>[] = [];
  private lastInbound = Date.now();

  constructor(
    private readonly conn: Connection,
    private readonly deps: SessionDeps,
    private readonly protocol: Subprotocol,
    /** Set when the upgrade's Authorization header already authenticated the agent. */
    private readonly pre: { agent: AgentRecord; keyHash: string } | undefined,
  ) {}

  start(): void {
    if (this.pre) return this.establish(this.pre.agent, this.pre.keyHash);
    this.authTimer = setTimeout(() => {
      if (this.state === 'auth' || this.state === 'authenticating') {
        this.sendError(new AmpError('unauthorized', `No auth frame within ${this.deps.config.wsAuthTimeout} s`));
        this.close(CLOSE.AUTH_TIMEOUT, 'auth_timeout');
      }
    }, this.deps.config.wsAuthTimeout * 1000);
  }

  message(bytes: Uint8Array, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (bytes.byteLength > MAX_WS_FRAME_BYTES) return this.close(CLOSE.MESSAGE_TOO_BIG, 'message_too_big');
    this.touch();
    if (this.state !== 'open' && bytes.byteLength > MAX_PREAUTH_FRAME_BYTES) return this.tooBigBeforeAuth(bytes);
    let obj: Record<string, unknown>;
    try {
      obj = isBinary ? unpackFrame(bytes) : parseTextFrame(Buffer.from(bytes).toString('utf8'));
    } catch (e) {
      this.sendError(isAmpError(e) ? e : new AmpError('invalid_request', 'Undecodable frame'));
      if (this.state === 'auth') this.close(CLOSE.AUTH_REQUIRED, 'auth_required');
      return;
    }
    if (this.state === 'auth') return this.onAuthFrame(obj);
    if (this.state === 'authenticating') {
      if (this.waiting.length < MAX_FRAMES_WHILE_AUTHENTICATING) this.waiting.push(obj);
      else
        this.sendError(new AmpError('rate_limited', 'Too many frames before authentication completed; frame dropped'));
      return;
    }
    this.onFrame(obj);
  }

  /** §17.1: a first frame this big is no well-formed auth (4002); later ones wait for auth to finish. */
  private tooBigBeforeAuth(bytes: Uint8Array): void {
    const what = `Frame of ${bytes.byteLength} bytes before authentication (at most ${MAX_PREAUTH_FRAME_BYTES})`;
    if (this.state === 'auth') {
      this.sendError(new AmpError('invalid_request', `${what}: the first frame must be an auth frame`));
      return this.close(CLOSE.AUTH_REQUIRED, 'auth_required');
    }
    this.sendError(new AmpError('invalid_request', `${what}; frame dropped, send it once connected`));
  }

  drain(): void {
    if (this.session && this.state === 'open') this.deps.push.onDrain(this.session);
  }

  /**
   * A protocol ping or pong. It spends a token of the session's frame budget like any non-route
   * frame (§17.6), so a ping flood is refused like a frame flood; uWS has already answered a ping
   * with its pong, so what is refused is the next frames, with the usual `rate_limited` error.
   */
  pong(): void {
    this.touch();
    // Control frames spend the session's frame budget too, silently: uWS has answered the ping
    // already, and an error frame per ping would turn a ping flood into a bigger reply flood.
    if (this.state === 'open') this.deps.limits.take([['ws_frames', this.session!.id]]);
  }

  closed(cause?: TransportCloseCause, code?: number): void {
    if (cause === 'invalid_utf8') {
      this.deps.sessions.invalidUtf8Closes++;
      const agent = this.session?.agent.id;
      this.deps.logger.info({ event: 'ws_invalid_utf8', agent }, 'websocket failed: a text frame was not UTF-8');
    }
    this.state = 'closed';
    clearTimeout(this.authTimer);
    if (!this.session) return;
    this.deps.sessions.remove(this.session);
    const { id, agent, openedAt } = this.session;
    const secs = Math.round((Date.now() - openedAt) / 1000);
    this.deps.logger.info({ event: 'ws_close', session: id, agent: agent.id, code, secs }, 'websocket session closed');
  }

  wantsDrain(): boolean {
    return this.session?.paused === true;
  }

  /** Inbound traffic of any kind keeps the session from idling out. */
  private touch(): void {
    this.lastInbound = Date.now();
    if (this.session) this.session.lastInbound = this.lastInbound;
  }

  private close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.authTimer);
    this.conn.close(code, reason);
  }

  // --- authentication ---

  private onAuthFrame(obj: Record<string, unknown>): void {
    let f: ClientFrame;
    try {
      f = decodeClientFrame(obj);
    } catch (e) {
      // Any malformed first frame is `invalid_request` (§17.1); the field, if known, is kept.
      const field = isAmpError(e) ? e.field : undefined;
      this.sendError(new AmpError('invalid_request', isAmpError(e) ? e.message : 'Malformed frame', { field }));
      return this.close(CLOSE.AUTH_REQUIRED, 'auth_required');
    }
    if (f.type !== 'auth') {
      this.sendError(new AmpError('invalid_request', `The first frame must be {"type": "auth", ...}, not '${f.type}'`));
      return this.close(CLOSE.AUTH_REQUIRED, 'auth_required');
    }
    if ('token' in f) return this.authenticateToken(f.token);
    this.state = 'authenticating';
    this.deps.agents.authenticateSigned(f.address, f.timestamp, f.signature).then(
      (r) => {
        if (this.state !== 'authenticating') return;
        if (typeof r !== 'string') return this.establish(r, undefined);
        this.refuse(r === 'invalid_token' ? 'unauthorized' : 'signature_invalid', SIGNED_AUTH_REFUSALS[r], r);
      },
      (e) => this.fail(e),
    );
  }

  private authenticateToken(token: string): void {
    let auth: { agent: AgentRecord; keyHash: string };
    try {
      auth = this.deps.agents.authenticateKey(`Bearer ${token}`);
    } catch {
      return this.refuse('unauthorized', 'Invalid or expired API key', 'invalid_token');
    }
    this.establish(auth.agent, auth.keyHash);
  }

  private refuse(code: 'unauthorized' | 'signature_invalid' | 'agent_suspended', message: string, reason: string) {
    this.deps.logger.info({ reason }, 'websocket authentication refused');
    this.sendError(new AmpError(code, message));
    this.close(CLOSE.AUTH_FAILED, reason);
  }

  private establish(agent: AgentRecord, keyHash: string | undefined): void {
    if (effectiveStatus(agent, Date.now()) === 'suspended')
      return this.refuse('agent_suspended', 'This agent is suspended', 'agent_suspended');
    clearTimeout(this.authTimer);
    this.state = 'open';
    this.session = new AgentSession(newSessionId(), agent, this.conn, this.protocol, keyHash);
    this.session.lastInbound = this.lastInbound;
    this.deps.push.open(this.session);
    const { id, subprotocol } = this.session;
    this.deps.logger.info({ event: 'ws_open', session: id, agent: agent.id, subprotocol }, 'websocket session opened');
    const waiting = this.waiting;
    this.waiting = [];
    for (const obj of waiting) if (this.state === 'open') this.onFrame(obj);
  }

  // --- frames after authentication ---

  private onFrame(obj: Record<string, unknown>): void {
    const rid = echoableRequestId(obj.request_id);
    let f: ClientFrame;
    try {
      f = decodeClientFrame(obj);
    } catch (e) {
      const err = isAmpError(e) ? e : new AmpError('invalid_request', 'Malformed frame');
      // A route with a request_id is always answered by a route.result (§17.5).
      if (obj.type === 'route' && rid !== undefined) return this.routeError(err, rid);
      return this.sendError(err, rid);
    }
    if (f.type !== 'route' && !this.takeFrameToken(f.request_id)) return;
    switch (f.type) {
      case 'auth':
        return this.sendError(new AmpError('invalid_request', 'already authenticated'), f.request_id);
      case 'ping':
        this.conn.send(pongFrame(f.request_id));
        return;
      case 'route':
        return this.track(this.route(f.data, f.request_id));
      case 'ack':
        return this.track(this.ack(f.ids, f.request_id));
    }
  }

  /** Non-route frames have a per-session bucket (§17.6); route frames use the sender's (§20). */
  private takeFrameToken(requestId: string | undefined): boolean {
    const take = this.deps.limits.take([['ws_frames', this.session!.id]]);
    if (!take || take.ok) return true;
    const message = `Too many frames; frame dropped, retry in ${take.retryAfter} s`;
    this.sendError(rateLimitedError(take, message), requestId);
    return false;
  }

  private track(p: Promise<void>): void {
    this.deps.inFlight.begin();
    p.catch((e) => this.fail(e)).finally(() => this.deps.inFlight.end());
  }

  private async route(data: Record<string, unknown>, request_id: string | undefined): Promise<void> {
    try {
      const sender = this.deps.agents.find(this.session!.agent.id);
      if (!sender) throw new AmpError('unauthorized', 'This agent no longer exists');
      this.deps.router.senderRateLimit(sender);
      const { result } = await this.deps.router.route(sender, data, { via: 'ws' });
      const frame: Record<string, unknown> = { type: 'route.result', data: result };
      if (request_id !== undefined) frame.request_id = request_id;
      this.conn.send(new Frame(frame));
    } catch (e) {
      if (!isAmpError(e)) throw e;
      if (request_id === undefined) return this.sendError(e);
      this.routeError(e, request_id);
    }
  }

  /** A failed route.result is flat, like an error frame (§17.2). */
  private routeError(e: AmpError, request_id: string): void {
    const frame = errorFrame(e, request_id);
    frame.type = 'route.result';
    this.conn.send(new Frame(frame));
  }

  private async ack(ids: string[], request_id: string | undefined): Promise<void> {
    try {
      const outcomes = await this.deps.inbox.ack(this.session!.agent, ids, 'ws');
      if (request_id === undefined) return;
      const acknowledged = outcomes.filter((o) => o === 'acked').length;
      this.conn.send(new Frame({ type: 'ack.result', request_id, data: { acknowledged } }));
    } catch (e) {
      if (!isAmpError(e)) throw e;
      this.sendError(e, request_id);
    }
  }

  private sendError(e: AmpError, request_id?: string): void {
    if (this.state !== 'closed') this.conn.send(new Frame(errorFrame(e, request_id)));
  }

  /** A bug: log it, tell the client, keep the server up. */
  private fail(e: unknown): void {
    this.deps.logger.error({ err: e }, 'websocket frame handler failed');
    this.sendError(new AmpError('internal_error', 'Internal server error'));
  }
}

const SIGNED_AUTH_REFUSALS: Record<string, string> = {
  invalid_token: 'Unknown agent address',
  replay_detected: 'This signed auth frame was already used',
  timestamp_out_of_window: 'timestamp is more than 60 s from the server clock',
  signature_invalid: 'Signature does not verify with the registered key',
};
