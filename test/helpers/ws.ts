// The one raw WebSocket test client (the `ws` package): open a socket, collect its frames (JSON for
// text frames, MessagePack for binary ones) and wait for frames, conditions over them, a ping
// barrier or the close, always on events with a timeout, never on sleeps.

import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';
import { expect } from 'vitest';

/** Plain MessagePack maps, as the server writes them (§17.8). */
export const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export interface CloseInfo {
  code: number;
  reason: string;
}

export interface Received {
  data: any;
  binary: boolean;
  /** Raw bytes when the frame could not be decoded. */
  raw?: Buffer;
}

/** The upgrade was answered with something other than 101. */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly body: any,
    readonly headers: IncomingMessage['headers'],
  ) {
    super(`upgrade refused: HTTP ${status} ${typeof body === 'string' ? body : JSON.stringify(body)}`);
  }
}

type Predicate = (frame: any, entry: Received) => boolean;

interface Waiter {
  pred: Predicate;
  resolve: (e: Received) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/** Every frame a socket received, in order, plus waiters for frames still to come. */
export class FrameCollector {
  /** Everything received, in order (never trimmed). */
  readonly all: Received[] = [];
  /** Received but not yet returned by next(). */
  private pending: Received[] = [];
  private waiters: Waiter[] = [];
  /** Conditions of until(), re-checked on every frame and on the close. */
  private wake = new Set<() => void>();
  closeInfo?: CloseInfo;
  /** Date.now() when the close event came. */
  closedAt?: number;
  /** `message.new` ids in order of first arrival, each once. */
  readonly firstSeen: string[] = [];
  readonly seen = new Set<string>();
  /** `message.new` frames received, repeats included. */
  messageFrames = 0;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
      const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      let entry: Received;
      try {
        entry = { data: isBinary ? packr.unpack(buf) : JSON.parse(buf.toString('utf8')), binary: isBinary };
      } catch {
        entry = { data: undefined, binary: isBinary, raw: buf };
      }
      this.all.push(entry);
      if (entry.data?.type === 'message.new') {
        this.messageFrames++;
        const id = entry.data.data?.id;
        if (!this.seen.has(id)) {
          this.seen.add(id);
          this.firstSeen.push(id);
        }
      }
      const i = this.waiters.findIndex((w) => w.pred(entry.data, entry));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(entry);
      } else {
        this.pending.push(entry);
      }
      for (const w of [...this.wake]) w();
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      this.closedAt = Date.now();
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(
          new Error(
            `socket closed (${code} ${reason.toString('utf8')}) before a matching frame; got ${this.describe()}`,
          ),
        );
      }
      for (const w of [...this.wake]) w();
    });
  }

  /** The first not-yet-returned frame matching `pred` (consumed), with its encoding. */
  nextEntry(pred: Predicate = () => true, timeoutMs = 5000): Promise<Received> {
    const i = this.pending.findIndex((e) => pred(e.data, e));
    if (i >= 0) return Promise.resolve(this.pending.splice(i, 1)[0]!);
    if (this.closeInfo)
      return Promise.reject(
        new Error(`socket already closed (${this.closeInfo.code} ${this.closeInfo.reason}); got ${this.describe()}`),
      );
    return new Promise<Received>((resolve, reject) => {
      const w: Waiter = {
        pred,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          reject(new Error(`no matching frame within ${timeoutMs} ms; got ${this.describe()}`));
        }, timeoutMs),
      };
      this.waiters.push(w);
    });
  }

  /** The first not-yet-returned frame matching `pred` (consumed), decoded. */
  async next(pred: Predicate = () => true, timeoutMs = 5000): Promise<any> {
    return (await this.nextEntry(pred, timeoutMs)).data;
  }

  /** Next frame of this `type` (and `request_id`, when given). */
  nextType(type: string, request_id?: string, timeoutMs = 5000): Promise<any> {
    return this.next((f) => f?.type === type && (request_id === undefined || f.request_id === request_id), timeoutMs);
  }

  /**
   * Resolves once `cond` holds, re-checked on every frame and on the close (consumes nothing);
   * rejects when the socket closes with `cond` still false, or after `timeoutMs`.
   */
  until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        this.wake.delete(check);
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      const check = () => {
        if (cond()) done();
        else if (this.closeInfo)
          done(new Error(`closed ${JSON.stringify(this.closeInfo)} while waiting for ${what}; got ${this.describe()}`));
      };
      const timer = setTimeout(
        () =>
          done(
            new Error(
              `no ${what} within ${timeoutMs} ms (${this.firstSeen.length} message ids, close ` +
                `${JSON.stringify(this.closeInfo)}); got ${this.describe()}`,
            ),
          ),
        timeoutMs,
      );
      this.wake.add(check);
      check();
    });
  }

  /** Forget frames not yet returned by next() (they stay in `all`); returns them. */
  drain(): Received[] {
    return this.pending.splice(0);
  }

  /** Every frame received, decoded, in order. */
  list(): any[] {
    return this.all.map((e) => e.data);
  }

  /** Frames of this `type` (and `data.id`, when given), in order. */
  of(type: string, id?: string): any[] {
    return this.list().filter((f) => f?.type === type && (id === undefined || f.data?.id === id));
  }

  types(): string[] {
    return this.all.map((e) => (e.data && typeof e.data === 'object' ? String(e.data.type) : `<${typeof e.data}>`));
  }

  private describe(): string {
    return JSON.stringify(this.all.slice(-5).map((e) => e.data ?? `<${e.raw?.length} undecodable bytes>`)).slice(
      0,
      800,
    );
  }
}

/** A `ws` socket with its collector attached before it opened (no frame can be missed). */
export class WsClient {
  readonly frames: FrameCollector;
  /** Date.now() when the socket opened. */
  openedAt = 0;
  private barriers = 0;
  /** Index in `frames.all` after the last barrier's pong. */
  private mark?: number;

  constructor(readonly ws: WebSocket) {
    this.frames = new FrameCollector(ws);
    ws.once('open', () => (this.openedAt = Date.now()));
  }

  /** JSON text frame (objects are stringified, strings/buffers sent as they are). */
  sendText(v: unknown): void {
    this.ws.send(typeof v === 'string' || Buffer.isBuffer(v) ? v : JSON.stringify(v), { binary: false });
  }

  /** MessagePack binary frame (buffers are sent as they are). */
  sendBinary(v: unknown): void {
    this.ws.send(Buffer.isBuffer(v) ? v : packr.pack(v), { binary: true });
  }

  next(pred?: Predicate, timeoutMs?: number): Promise<any> {
    return this.frames.next(pred, timeoutMs);
  }

  nextType(type: string, request_id?: string, timeoutMs?: number): Promise<any> {
    return this.frames.nextType(type, request_id, timeoutMs);
  }

  /** See FrameCollector.until. */
  until(cond: () => boolean, what: string, timeoutMs?: number): Promise<void> {
    return this.frames.until(cond, what, timeoutMs);
  }

  /** The first `connected` frame, once it has come. */
  get connected(): any {
    return this.frames.list().find((f) => f?.type === 'connected');
  }

  /**
   * Ping and wait for its pong; returns the frames (pongs left out) that came since the previous
   * barrier, or since `connected` for the first. The server writes a frame caused by a request
   * before that request's answer, so everything caused before the ping has arrived by the pong.
   */
  async barrier(): Promise<any[]> {
    const request_id = `b${++this.barriers}`;
    this.sendText({ type: 'ping', request_id });
    await this.nextType('pong', request_id);
    const frames = this.frames.list();
    const i = frames.findIndex((f) => f?.type === 'pong' && f.request_id === request_id);
    const from = this.mark ?? frames.findIndex((f) => f?.type === 'connected') + 1;
    this.mark = i + 1;
    return frames.slice(from, i).filter((f) => f?.type !== 'pong');
  }

  /** Stop reading: the server's writes pile up in the kernel, then in its own buffer. */
  pauseReading(): void {
    (this.ws as any)._socket.pause();
  }

  resumeReading(): void {
    (this.ws as any)._socket?.resume();
  }

  /** The close, if it has happened or happens within the timeout. */
  closed(timeoutMs?: number): Promise<CloseInfo> {
    return closed(this.ws, timeoutMs);
  }

  /** Close (if open) and wait until the socket is fully closed. */
  close(): Promise<void> {
    return closeWs(this.ws);
  }
}

const collectors = new WeakMap<WebSocket, FrameCollector>();
/** Every client opened in this test file (vitest gives each file its own module instance). */
const opened = new Set<WsClient>();

export interface OpenOptions {
  protocols?: string[];
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** Resolves once the socket is open; rejects with UpgradeRefused on a non-101 answer. */
export function openWs(url: string, opts: OpenOptions = {}): Promise<WsClient> {
  const ws = new WebSocket(url, opts.protocols ?? [], {
    headers: opts.headers,
    handshakeTimeout: opts.timeoutMs ?? 5000,
  });
  const client = new WsClient(ws);
  collectors.set(ws, client.frames);
  opened.add(client);
  return new Promise<WsClient>((resolve, reject) => {
    ws.on('error', (e) => reject(e)); // also keeps later errors (ECONNRESET) from being unhandled
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON
        }
        reject(new UpgradeRefused(res.statusCode ?? 0, body, res.headers));
        ws.terminate();
      });
      res.on('error', reject);
    });
  });
}

/** How a session authenticates: an API key (Bearer at upgrade), or an agent's signed auth frame. */
export type WsCredentials = string | { signedBy: { address: string; keys: { privateKey: KeyObject } } };

/**
 * Open an authenticated session and wait for its `connected` frame (consumed; still in
 * `frames.all` and `connected`): an API key goes in `Authorization: Bearer`, a `signedBy` agent
 * signs the §17.1 auth frame.
 */
export async function connectWs(url: string, as: WsCredentials, opts: OpenOptions = {}): Promise<WsClient> {
  const headers = typeof as === 'string' ? { ...opts.headers, Authorization: `Bearer ${as}` } : opts.headers;
  const c = await openWs(url, { ...opts, headers });
  if (typeof as !== 'string') c.sendText(signedAuthFrame(as.signedBy.address, as.signedBy.keys.privateKey));
  expect((await c.nextType('connected')).type).toBe('connected');
  return c;
}

/** Close every client this test file opened that is still open (for afterEach / afterAll). */
export async function closeAllWs(): Promise<void> {
  const all = [...opened];
  opened.clear();
  await Promise.all(all.map((c) => c.close()));
}

/** Resolves with the close code and reason (at once if already closed). */
export function closed(ws: WebSocket, timeoutMs = 5000): Promise<CloseInfo> {
  const c = collectors.get(ws);
  if (c?.closeInfo) return Promise.resolve(c.closeInfo);
  return new Promise<CloseInfo>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs);
    ws.once('close', (code: number, reason: Buffer) => {
      clearTimeout(timer);
      resolve({ code, reason: reason.toString('utf8') });
    });
  });
}

export async function closeWs(ws: WebSocket, timeoutMs = 3000): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  // A paused socket would never read the server's close frame.
  (ws as any)._socket?.resume();
  const done = closed(ws, timeoutMs).catch(() => ws.terminate());
  if (ws.readyState === WebSocket.OPEN) ws.close(1000);
  else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
  await done;
}

/** The signed auth frame of §17.1: Ed25519 over `amp-ws-auth\n{timestamp}\n{address}`. */
export function signedAuthFrame(
  address: string,
  privateKey: KeyObject,
  timestamp = Math.floor(Date.now() / 1000),
): Record<string, unknown> {
  const signature = cryptoSign(null, Buffer.from(`amp-ws-auth\n${timestamp}\n${address}`, 'utf8'), privateKey).toString(
    'base64',
  );
  return { type: 'auth', address, timestamp, signature };
}

/** Poll `probe` (each iteration awaits it) until it returns true or the time is up. */
export async function until(probe: () => Promise<boolean>, timeoutMs = 2000): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  do {
    if (await probe()) return true;
  } while (performance.now() < deadline);
  return false;
}
