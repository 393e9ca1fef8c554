// AmpSocket: the WebSocket half of the TypeScript SDK. Authenticates (API key by header or auth
// frame, or a signed session), emits pushed messages and receipts, correlates `route`/`ack`
// requests by request_id, and reconnects with jittered exponential backoff when the close code
// says to (spec §17.7). Messages are at-least-once: de-duplicate by id, ack when processed.

import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import {
  CLOSE,
  RECONNECT_BASE_MS,
  RECONNECT_MAX_MS,
  SUBPROTOCOL_MSGPACK,
  packFrame,
  shouldReconnect,
  unpackServerFrame,
  wsAuthString,
  type QueuedMessage,
  type RouteResult,
} from '../../proto/index.js';
import { signEd25519 } from '../crypto/sign.js';
import { AmpApiError, type RouteBody } from './api-error.js';
import { type PrivateKey, type PrivateKeyInput, signRoute, toPrivateKey } from './sign.js';

const REQUEST_TIMEOUT_MS = 30_000;
/** §17.7: after 4503 (overloaded) wait at least 5 s. */
const OVERLOADED_MIN_BACKOFF_MS = 5000;

export interface SocketOptions {
  url: string;
  apiKey?: string;
  /** How to authenticate: auth frame with the API key (default), Authorization header, or signed. */
  auth?: 'frame' | 'header' | { address: string; privateKey: PrivateKeyInput };
  /** Sign every `route` with this Ed25519 key (PEM or KeyObject), `from` = the session's address. */
  privateKey?: PrivateKeyInput;
  subprotocol?: 'amp.v1' | 'amp.v1+msgpack';
  /** Reconnect after closes that call for it (default true). */
  reconnect?: boolean;
}

export interface ConnectedInfo {
  address: string;
  pending_count: number;
  agent_id: string;
  session_id: string;
  subprotocol: string;
  idle_timeout_seconds: number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

export interface AmpSocketEvents {
  connected: [ConnectedInfo];
  message: [QueuedMessage, { replay: boolean }];
  delivered: [{ id: string; to: string; delivered_at: string; method: string }];
  read: [{ id: string; read_at: string; reader: string }];
  /**
   * An `error` frame from the server that answers no pending request. (Not 'error': an
   * EventEmitter throws on an unheard 'error' event, and a server's words must not crash a client.)
   */
  'server-error': [{ error: string; message: string; field?: string; request_id?: string }];
  close: [number, string];
  reconnecting: [number];
}

export class AmpSocket extends EventEmitter<AmpSocketEvents> {
  private ws?: WebSocket;
  private requests = new Map<string, Pending>();
  private nextId = 0;
  private attempt = 0;
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  /** Last unix second signed for a signed session: the server accepts each auth frame once. */
  private lastSignedSecond = 0;
  /** A close that must not be followed by a reconnect (refused upgrade, 40xx). */
  private terminal = false;
  connected?: ConnectedInfo;
  private readonly signer?: PrivateKey;

  constructor(private readonly opts: SocketOptions) {
    super();
    this.signer = opts.privateKey === undefined ? undefined : toPrivateKey(opts.privateKey);
    this.open();
  }

  private open(): void {
    const headers: Record<string, string> = {};
    if (this.opts.auth === 'header' && this.opts.apiKey) headers.Authorization = `Bearer ${this.opts.apiKey}`;
    const ws = new WebSocket(this.opts.url, [this.opts.subprotocol ?? 'amp.v1'], { headers });
    this.ws = ws;
    ws.on('open', () => {
      const auth = this.opts.auth ?? 'frame';
      if (auth === 'frame') this.sendRaw({ type: 'auth', token: this.opts.apiKey });
      else if (typeof auth === 'object') {
        // Never the same second twice: an identical signed frame would be refused as a replay.
        const timestamp = Math.max(Math.floor(Date.now() / 1000), this.lastSignedSecond + 1);
        this.lastSignedSecond = timestamp;
        const data = Buffer.from(wsAuthString(String(timestamp), auth.address));
        const signature = signEd25519(toPrivateKey(auth.privateKey), data).toString('base64');
        this.sendRaw({ type: 'auth', address: auth.address, timestamp, signature });
      }
    });
    ws.on('message', (data, isBinary) => {
      let frame: Record<string, unknown>;
      try {
        frame = isBinary ? unpackServerFrame(data as Buffer) : JSON.parse(String(data));
      } catch (e) {
        // A frame this client cannot read must not take its process down: report it.
        this.emit('server-error', { error: 'invalid_frame', message: (e as Error).message });
        return;
      }
      this.onFrame(frame);
    });
    ws.on('close', (code, reason) => this.onClose(code, reason.toString()));
    // A refused upgrade (400/401/403) is final: reconnecting with the same credentials cannot
    // help. 5xx (e.g. 503 while the server shuts down) is worth retrying.
    ws.on('unexpected-response', (_req, res) => {
      if ((res.statusCode ?? 0) < 500) this.terminal = true;
      ws.terminate();
    });
    // Errors surface as a close (code 1006); nothing else to do here.
    ws.on('error', () => {});
  }

  private onFrame(f: Record<string, unknown>): void {
    const data = f.data as Record<string, unknown> | undefined;
    switch (f.type) {
      case 'connected':
        this.attempt = 0;
        this.connected = data as unknown as ConnectedInfo;
        this.emit('connected', this.connected);
        return;
      case 'message.new':
        this.emit('message', data as unknown as QueuedMessage, { replay: f.replay === true });
        return;
      case 'message.delivered':
        this.emit('delivered', data as never);
        return;
      case 'message.read':
        this.emit('read', data as never);
        return;
      case 'route.result':
      case 'ack.result':
      case 'pong':
        return this.settle(f);
      case 'error':
        if (typeof f.request_id === 'string' && this.requests.has(f.request_id)) return this.settle(f);
        this.emit('server-error', f as never);
        return;
      default:
      // Unknown frame types are ignored (spec §17.2).
    }
  }

  private settle(f: Record<string, unknown>): void {
    const id = f.request_id;
    if (typeof id !== 'string') return;
    const p = this.requests.get(id);
    if (!p) return;
    this.requests.delete(id);
    clearTimeout(p.timer);
    if (typeof f.error === 'string')
      p.reject(
        new AmpApiError(
          0,
          f.error,
          String(f.message ?? f.error),
          f.field as string | undefined,
          (f.details as Record<string, unknown>) ?? {},
          f,
        ),
      );
    else p.resolve(f.type === 'pong' ? f.timestamp : f.data);
  }

  private onClose(code: number, reason: string): void {
    this.connected = undefined;
    for (const p of this.requests.values()) {
      clearTimeout(p.timer);
      p.reject(new Error(`socket closed (${code} ${reason})`));
    }
    this.requests.clear();
    this.emit('close', code, reason);
    if (!this.willReconnect(code)) return;
    const backoff = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    const delay =
      code === CLOSE.SERVER_SHUTDOWN
        ? 1000 + Math.random() * 4000
        : code === CLOSE.OVERLOADED
          ? Math.max(OVERLOADED_MIN_BACKOFF_MS, backoff)
          : backoff;
    this.attempt++;
    this.emit('reconnecting', delay);
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  private sendRaw(frame: Record<string, unknown>): void {
    if (this.ws?.readyState !== WebSocket.OPEN) throw new Error('socket is not open');
    if (this.opts.subprotocol === SUBPROTOCOL_MSGPACK) this.ws.send(packFrame(frame));
    else this.ws.send(JSON.stringify(frame));
  }

  private requestFrame<T>(frame: Record<string, unknown>): Promise<T> {
    const request_id = `r${++this.nextId}`;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.requests.delete(request_id);
        reject(new Error(`no answer to ${String(frame.type)} within ${REQUEST_TIMEOUT_MS} ms`));
      }, REQUEST_TIMEOUT_MS);
      this.requests.set(request_id, { resolve: resolve as (v: unknown) => void, reject, timer });
      try {
        this.sendRaw({ ...frame, request_id });
      } catch (e) {
        clearTimeout(timer);
        this.requests.delete(request_id);
        reject(e as Error);
      }
    });
  }

  private willReconnect(code: number): boolean {
    return !this.stopped && !this.terminal && this.opts.reconnect !== false && shouldReconnect(code);
  }

  /** Resolves with the next `connected` (at once if connected); rejects once no reconnect will follow. */
  ready(): Promise<ConnectedInfo> {
    if (this.connected) return Promise.resolve(this.connected);
    if (this.ended) return Promise.reject(new Error('socket is closed for good'));
    return new Promise((resolve, reject) => {
      const onConnected = (c: ConnectedInfo) => {
        this.off('close', onClose);
        resolve(c);
      };
      const onClose = (code: number, reason: string) => {
        if (this.willReconnect(code)) return;
        this.off('connected', onConnected);
        this.off('close', onClose);
        reject(new Error(`socket closed before connected (${code} ${reason})`));
      };
      this.once('connected', onConnected);
      this.on('close', onClose);
    });
  }

  /** True once the socket closed with no reconnect to follow. */
  private get ended(): boolean {
    return this.ws?.readyState === WebSocket.CLOSED && !this.retryTimer && !this.willReconnect(CLOSE.GOING_AWAY);
  }

  /** Send a message; signed when the socket holds a private key (then only once connected). */
  route(body: RouteBody): Promise<RouteResult> {
    if (this.signer) {
      if (!this.connected) return Promise.reject(new Error('socket is not connected yet: await ready() first'));
      body = signRoute(body, this.connected.address, this.signer);
    }
    return this.requestFrame({ type: 'route', data: body });
  }

  ack(ids: string | string[]): Promise<{ acknowledged: number }> {
    return this.requestFrame(Array.isArray(ids) ? { type: 'ack', ids } : { type: 'ack', ids: [ids] });
  }

  /** Round trip; resolves with the server time. */
  ping(): Promise<string> {
    return this.requestFrame({ type: 'ping' });
  }

  /** Close for good (no reconnect). */
  close(code = 1000): void {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.ws?.close(code);
  }
}
