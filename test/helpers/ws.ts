// Raw WebSocket test utilities (the `ws` package as client): open a socket, collect its frames
// (JSON for text frames, MessagePack for binary ones) and wait for frames or the close, always on
// events with a timeout, never on sleeps.

import { sign as cryptoSign, type KeyObject } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { Packr } from 'msgpackr';
import WebSocket from 'ws';

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
  closeInfo?: CloseInfo;

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
      const i = this.waiters.findIndex((w) => w.pred(entry.data, entry));
      if (i >= 0) {
        const [w] = this.waiters.splice(i, 1);
        clearTimeout(w!.timer);
        w!.resolve(entry);
      } else {
        this.pending.push(entry);
      }
    });
    ws.on('close', (code: number, reason: Buffer) => {
      this.closeInfo = { code, reason: reason.toString('utf8') };
      for (const w of this.waiters.splice(0)) {
        clearTimeout(w.timer);
        w.reject(
          new Error(
            `socket closed (${code} ${reason.toString('utf8')}) before a matching frame; got ${this.describe()}`,
          ),
        );
      }
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

  /** Forget frames not yet returned by next() (they stay in `all`); returns them. */
  drain(): Received[] {
    return this.pending.splice(0);
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

/** A socket with its collector attached before it opened (no frame can be missed). */
export interface WsClient {
  ws: WebSocket;
  frames: FrameCollector;
  /** JSON text frame (objects are stringified, strings/buffers sent as they are). */
  sendText(v: unknown): void;
  /** MessagePack binary frame (buffers are sent as they are). */
  sendBinary(v: unknown): void;
  next(pred?: Predicate, timeoutMs?: number): Promise<any>;
  nextType(type: string, request_id?: string, timeoutMs?: number): Promise<any>;
  /** The close, if it has happened or happens within the timeout. */
  closed(timeoutMs?: number): Promise<CloseInfo>;
  /** Close (if open) and wait until the socket is fully closed. */
  close(): Promise<void>;
}

const collectors = new WeakMap<WebSocket, FrameCollector>();

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
  const frames = new FrameCollector(ws);
  collectors.set(ws, frames);
  const client: WsClient = {
    ws,
    frames,
    sendText: (v) => ws.send(typeof v === 'string' || Buffer.isBuffer(v) ? v : JSON.stringify(v), { binary: false }),
    sendBinary: (v) => ws.send(Buffer.isBuffer(v) ? v : packr.pack(v), { binary: true }),
    next: (p, t) => frames.next(p, t),
    nextType: (type, rid, t) => frames.nextType(type, rid, t),
    closed: (t) => closed(ws, t),
    close: () => closeWs(ws),
  };
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
