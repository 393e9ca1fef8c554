// One WebSocket as the relay's `Connection`: a write queue flushed once per event-loop turn,
// backpressure accounting and closing. Bytes only: what the frames mean is the relay's business.
//
// uWS lifetimes: after `close` the ws object must not be touched, so every write checks `closed`.

import type { WebSocket } from 'uWebSockets.js';
import { CLOSE } from '../../../proto/index.js';
import { encodeFrame, type Frame } from '../../relay/frames.js';
import type { Connection, SendOutcome } from '../../relay/sessions.js';
import type { AcceptedUpgrade } from '../../relay/ws-gateway.js';
import type { ConnectionEvents, TransportCloseCause } from '../../relay/ws-session.js';

/** Queued bytes that are written at once rather than at the end of the turn. */
const FLUSH_AT_BYTES = 64 * 1024;

export interface BufferLimits {
  /** Unsent bytes above which the relay pauses pushes (it asks for a drain). */
  softBytes: number;
  /** Unsent bytes above which uWS would drop a send: such a frame is refused with 'dropped'. */
  hardBytes: number;
}

/** What uWS keeps per socket: the accepted upgrade, then the connection. */
export interface UserData {
  accepted: AcceptedUpgrade;
  conn?: WsConnection;
}

export class WsConnection implements Connection {
  private closed = false;
  /** Frames queued for the next flush, and their size in bytes (counted by bufferedBytes()). */
  private out: (string | Buffer)[] = [];
  private outBytes = 0;
  /** The protocol session; set once the relay opened it (right after construction). */
  events?: ConnectionEvents;

  constructor(
    private readonly ws: WebSocket<UserData>,
    private readonly limits: BufferLimits,
    private readonly binary: boolean,
  ) {}

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
    if (this.closed) return 'dropped';
    const data = encodeFrame(frame, this.binary);
    const bytes = typeof data === 'string' ? Buffer.byteLength(data, 'utf8') : data.length;
    // What uWS would drop at the flush is refused now, so the caller knows (a push pauses the
    // session, a receipt goes to the outbox) and nothing is dropped behind its back.
    if (this.ws.getBufferedAmount() + this.outBytes + bytes > this.limits.hardBytes) return 'dropped';
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
    if (this.closed || out.length === 0) return;
    let dropped = false;
    this.ws.cork(() => {
      for (const d of out) if (this.ws.send(d, typeof d !== 'string') === 2) dropped = true;
    });
    if (dropped) return this.close(CLOSE.SLOW_CONSUMER, 'slow_consumer');
    // Pushes paused on queued bytes that the kernel then took at once: uWS has no backpressure,
    // so no drain event will come; resume on the next turn as a drain would.
    if (this.events?.wantsDrain() && this.ws.getBufferedAmount() <= this.limits.softBytes) {
      setImmediate(() => this.drained());
    }
  }

  bufferedBytes(): number {
    return this.closed ? 0 : this.ws.getBufferedAmount() + this.outBytes;
  }

  ping(): void {
    if (!this.closed) this.ws.ping();
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.flush(); // frames queued before the close (an error frame, say) go first
    if (this.closed) return; // the flush met a full buffer and closed it (4501)
    this.closed = true;
    this.ws.end(code, reason);
  }

  /** uWS drain, or a flush that emptied the buffer: tell the session if it is still there. */
  drained(): void {
    if (!this.closed) this.events?.drain();
  }

  /** uWS closed the socket (either side), with this close code. */
  ended(cause?: TransportCloseCause, code?: number): void {
    this.closed = true;
    this.events?.closed(cause, code);
  }
}

/** Connections with queued frames, written by one setImmediate after this poll phase. */
const dirty: WsConnection[] = [];

function queueFlush(c: WsConnection): void {
  if (dirty.push(c) === 1) setImmediate(flushAll);
}

function flushAll(): void {
  // A flush can queue more (a resumed catch-up does so on its own setImmediate): take the list.
  for (const c of dirty.splice(0)) c.flush();
}
