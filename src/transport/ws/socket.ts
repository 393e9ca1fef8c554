// One WebSocket connection: authentication state machine (spec §17.1), frame handling (§17.3,
// §17.5) and the `Connection` the relay pushes through.
//
// uWS lifetimes: the ArrayBuffer of a message is only valid during the callback, so frames are
// decoded synchronously before anything awaits; after `close` the ws object must not be touched,
// so every write checks `closed` first.

import { Packr } from 'msgpackr';
import type { WebSocket } from 'uWebSockets.js';
import {
  AmpError,
  CLOSE,
  MAX_WS_FRAME_BYTES,
  SUBPROTOCOL_MSGPACK,
  echoableRequestId,
  checkBinaryFrame,
  decodeClientFrame,
  errorFrame,
  isAmpError,
  newSessionId,
  parseTextFrame,
  type ClientFrame,
  type Subprotocol,
} from '../../../proto/index.js';
import { AgentSession, Presence, type Connection, type SendOutcome } from '../../relay/presence.js';
import { Frame } from '../../relay/frames.js';
import type { AgentRecord } from '../../store/types.js';
import type { WsDeps } from './attach.js';

/** Queued bytes that are written at once rather than at the end of the turn. */
const FLUSH_AT_BYTES = 64 * 1024;
/** Frames that may queue while a signed auth is being verified. */
const MAX_FRAMES_WHILE_AUTHENTICATING = 32;

// Plain MessagePack maps (no record extension), so any MessagePack client can read them. Maps
// decode as Map so that non-string keys can be refused (§17.8) rather than silently stringified.
const packr = new Packr({ useRecords: false, mapsAsObjects: false, moreTypes: false });

export interface UserData {
  protocol: Subprotocol;
  /** Set when the upgrade carried a valid Authorization header. */
  pre?: { agent: AgentRecord; keyHash: string };
  socket?: WsSocket;
}

type State = 'auth' | 'authenticating' | 'open' | 'closed';

export class WsSocket implements Connection {
  private state: State = 'auth';
  private session?: AgentSession;
  private authTimer?: NodeJS.Timeout;
  private waiting: Record<string, unknown>[] = [];
  private lastInbound = Date.now();
  /** Frames queued for the next flush, and their size in bytes (counted by bufferedBytes()). */
  private out: (string | Buffer)[] = [];
  private outBytes = 0;

  constructor(
    private readonly ws: WebSocket<UserData>,
    private readonly deps: WsDeps,
    private readonly protocol: Subprotocol,
  ) {}

  // --- Connection (what the relay sees) ---

  /**
   * Frames are not written one by one: each write is a syscall, and on loopback the kernel runs
   * the receiver's TCP path inside it, tens of microseconds a frame. They are queued and written
   * in one corked flush per socket once this turn of the event loop has handled all its input
   * (setImmediate: every frame uWS read in this poll), so a burst of pushes and route answers
   * costs one syscall a socket. bufferedBytes() counts the queue, so the relay's soft limit still
   * stops pushes in time, and a frame that would take the socket past the hard limit (where uWS
   * drops) is refused here with 'dropped'. Should uWS drop one at the flush all the same, the
   * socket is closed as a slow consumer (4501): the queue replays on reconnect.
   */
  send(frame: Frame): SendOutcome {
    if (this.state === 'closed') return 'dropped';
    // A packed buffer may be reused by msgpackr's next pack: copied, since it is written later.
    const data = this.protocol === SUBPROTOCOL_MSGPACK ? Buffer.from(packr.pack(frame.object)) : frame.json;
    const bytes = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
    // What uWS would drop at the flush is refused now, so the caller knows (a push pauses the
    // session, a receipt goes to the outbox) and nothing is dropped behind its back.
    if (this.ws.getBufferedAmount() + this.outBytes + bytes > this.deps.config.wsHardBuffer) return 'dropped';
    if (this.out.push(data) === 1) queueFlush(this);
    this.outBytes += bytes;
    // A long burst (a catch-up) is written as it grows, so the kernel's buffer fills while the
    // relay is still sending and backpressure shows up where the relay looks for it.
    if (this.outBytes >= FLUSH_AT_BYTES) this.flush();
    return 'sent';
  }

  /** Write the queued frames (called by flushAll, and by close() before it ends the socket). */
  flush(): void {
    const out = this.out;
    this.out = [];
    this.outBytes = 0;
    if (this.state === 'closed' || out.length === 0) return;
    let dropped = false;
    this.ws.cork(() => {
      for (const d of out) if (this.ws.send(d, typeof d !== 'string') === 2) dropped = true;
    });
    if (dropped) return this.close(CLOSE.SLOW_CONSUMER, 'slow_consumer');
    // Pushes paused on queued bytes that the kernel then took at once: uWS has no backpressure,
    // so no drain event will come; resume on the next turn as a drain would.
    if (this.session?.paused && this.ws.getBufferedAmount() <= this.deps.config.wsSoftBuffer)
      setImmediate(() => this.onDrain());
  }

  bufferedBytes(): number {
    return this.state === 'closed' ? 0 : this.ws.getBufferedAmount() + this.outBytes;
  }

  ping(): void {
    if (this.state !== 'closed') this.ws.ping();
  }

  close(code: number, reason: string): void {
    if (this.state === 'closed') return;
    this.flush(); // frames queued before the close (an error frame, say) go first
    if ((this.state as State) === 'closed') return; // the flush met a full buffer and closed it (4501)
    this.state = 'closed';
    clearTimeout(this.authTimer);
    this.ws.end(code, reason);
  }

  // --- uWS events ---

  onOpen(pre: UserData['pre']): void {
    if (pre) return this.establish(pre.agent, pre.keyHash);
    this.authTimer = setTimeout(() => {
      if (this.state === 'auth' || this.state === 'authenticating') {
        this.sendError(new AmpError('unauthorized', `No auth frame within ${this.deps.config.wsAuthTimeout} s`));
        this.close(CLOSE.AUTH_TIMEOUT, 'auth_timeout');
      }
    }, this.deps.config.wsAuthTimeout * 1000);
  }

  onMessage(message: ArrayBuffer, isBinary: boolean): void {
    if (this.state === 'closed') return;
    if (message.byteLength > MAX_WS_FRAME_BYTES) return this.close(CLOSE.MESSAGE_TOO_BIG, 'message_too_big');
    this.lastInbound = Date.now();
    if (this.session) this.session.lastInbound = this.lastInbound;
    let obj: Record<string, unknown>;
    try {
      obj = isBinary ? checkBinaryFrame(unpack(message)) : parseTextFrame(Buffer.from(message).toString('utf8'));
    } catch (e) {
      const err = isAmpError(e) ? e : new AmpError('invalid_request', 'Undecodable frame');
      this.sendError(err);
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

  onDrain(): void {
    if (this.session && this.state === 'open') this.deps.presence.onDrain(this.session);
  }

  onPong(): void {
    this.lastInbound = Date.now();
    if (this.session) this.session.lastInbound = this.lastInbound;
  }

  /** The socket is gone (closed by either side). */
  onClose(): void {
    this.state = 'closed';
    clearTimeout(this.authTimer);
    if (this.session) this.deps.presence.remove(this.session);
  }

  // --- authentication ---

  private onAuthFrame(obj: Record<string, unknown>): void {
    let f: ClientFrame;
    try {
      f = decodeClientFrame(obj);
    } catch (e) {
      // Any malformed first frame is `invalid_request` (§17.1); the field, if known, is kept.
      this.sendError(
        new AmpError('invalid_request', isAmpError(e) ? e.message : 'Malformed frame', {
          field: isAmpError(e) ? e.field : undefined,
        }),
      );
      return this.close(CLOSE.AUTH_REQUIRED, 'auth_required');
    }
    if (f.type !== 'auth') {
      this.sendError(new AmpError('invalid_request', `The first frame must be {"type": "auth", ...}, not '${f.type}'`));
      return this.close(CLOSE.AUTH_REQUIRED, 'auth_required');
    }
    if ('token' in f) {
      let auth: { agent: AgentRecord; keyHash: string };
      try {
        auth = this.deps.agents.authenticateKey(`Bearer ${f.token}`);
      } catch {
        return this.refuse('unauthorized', 'Invalid or expired API key', 'invalid_token');
      }
      return this.establish(auth.agent, auth.keyHash);
    }
    this.state = 'authenticating';
    this.deps.agents.authenticateSigned(f.address, f.timestamp, f.signature).then(
      (r) => {
        if (this.state !== 'authenticating') return;
        if (typeof r !== 'string') return this.establish(r, undefined);
        const message =
          r === 'invalid_token'
            ? 'Unknown agent address'
            : r === 'replay_detected'
              ? 'This signed auth frame was already used'
              : r === 'timestamp_out_of_window'
                ? 'timestamp is more than 60 s from the server clock'
                : 'Signature does not verify with the registered key';
        this.refuse(r === 'invalid_token' ? 'unauthorized' : 'signature_invalid', message, r);
      },
      (e) => this.fail(e),
    );
  }

  private refuse(
    code: 'unauthorized' | 'signature_invalid' | 'agent_suspended',
    message: string,
    reason: string,
  ): void {
    this.deps.logger.info({ reason }, 'websocket authentication refused');
    this.sendError(new AmpError(code, message));
    this.close(CLOSE.AUTH_FAILED, reason);
  }

  private establish(agent: AgentRecord, keyHash: string | undefined): void {
    if (agent.status === 'suspended')
      return this.refuse('agent_suspended', 'This agent is suspended', 'agent_suspended');
    clearTimeout(this.authTimer);
    this.state = 'open';
    this.session = new AgentSession(newSessionId(), agent, this, this.protocol, keyHash);
    this.session.lastInbound = this.lastInbound;
    this.deps.presence.open(this.session);
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
    if (f.type !== 'route') {
      // Non-route frames have a per-session bucket (§17.6); route frames use the sender's (§20).
      const take = this.deps.limits.take([['ws_frames', this.session!.id]]);
      if (take && !take.ok)
        return this.sendError(
          new AmpError('rate_limited', `Too many frames; frame dropped, retry in ${take.retryAfter} s`, {
            retryAfter: take.retryAfter,
          }),
          f.request_id,
        );
    }
    switch (f.type) {
      case 'auth':
        return this.sendError(new AmpError('invalid_request', 'already authenticated'), f.request_id);
      case 'ping':
        this.send(Presence.pong(f.request_id));
        return;
      case 'route':
        return this.track(this.route(f.data, f.request_id));
      case 'ack':
        return this.track(this.ack(f.ids, f.request_id));
    }
  }

  private track(p: Promise<void>): void {
    this.deps.inFlight.begin();
    p.catch((e) => this.fail(e)).finally(() => this.deps.inFlight.end());
  }

  private async route(data: Record<string, unknown>, request_id: string | undefined): Promise<void> {
    const s = this.session!;
    try {
      const sender = this.deps.store.getAgent(s.agent.id);
      if (!sender) throw new AmpError('unauthorized', 'This agent no longer exists');
      this.deps.router.senderRateLimit(sender);
      const { result } = await this.deps.router.route(sender, data);
      const frame: Record<string, unknown> = { type: 'route.result', data: result };
      if (request_id !== undefined) frame.request_id = request_id;
      this.send(new Frame(frame));
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
    this.send(new Frame(frame));
  }

  private async ack(ids: string[], request_id: string | undefined): Promise<void> {
    try {
      const outcomes = await this.deps.inbox.ack(this.session!.agent, ids);
      if (request_id !== undefined) {
        this.send(
          new Frame({
            type: 'ack.result',
            request_id,
            data: { acknowledged: outcomes.filter((o) => o === 'acked').length },
          }),
        );
      }
    } catch (e) {
      if (!isAmpError(e)) throw e;
      this.sendError(e, request_id);
    }
  }

  private sendError(e: AmpError, request_id?: string): void {
    this.send(new Frame(errorFrame(e, request_id)));
  }

  /** A bug: log it, tell the client, keep the server up. */
  private fail(e: unknown): void {
    this.deps.logger.error({ err: e }, 'websocket frame handler failed');
    if (this.state !== 'closed') this.sendError(new AmpError('internal_error', 'Internal server error'));
  }
}

/** Sockets with queued frames, written by one setImmediate after this poll phase. */
const dirty: WsSocket[] = [];

function queueFlush(s: WsSocket): void {
  if (dirty.push(s) === 1) setImmediate(flushAll);
}

function flushAll(): void {
  // A flush can queue more (a resumed catch-up does so on its own setImmediate): take the list.
  for (const s of dirty.splice(0)) s.flush();
}

function unpack(message: ArrayBuffer): unknown {
  try {
    return packr.unpack(Buffer.from(message));
  } catch {
    throw new AmpError('invalid_request', 'Binary frame is not valid MessagePack');
  }
}
