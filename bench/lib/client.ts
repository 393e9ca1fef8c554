// The load side: agents registered over REST, lean WebSocket clients (`ws`, JSON frames, API key
// in the upgrade header), message frames signed ahead of time, batched acks.

import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import WebSocket from 'ws';
import { canonicalString, payloadHash } from '../../proto/index.js';

const CONNECT_TIMEOUT_MS = 30_000;
/** Ids a receiver collects before it sends one ack frame (the server takes up to 1000). */
const ACK_BATCH = 500;

export interface BenchAgent {
  name: string;
  address: string;
  apiKey: string;
  privateKey: KeyObject;
}

/** Register `n` agents named `${prefix}-${i}`, `concurrency` requests at a time. */
export async function registerMany(api: string, prefix: string, n: number, concurrency = 64): Promise<BenchAgent[]> {
  const out: BenchAgent[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const name = `${prefix}-${i}`;
      const res = await fetch(`${api}/register`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({
          name,
          tenant: 'bench',
          public_key: publicKey.export({ format: 'pem', type: 'spki' }),
          key_algorithm: 'Ed25519',
        }),
      });
      const body = (await res.json()) as { address: string; api_key: string };
      if (res.status !== 201) throw new Error(`register ${name}: ${res.status} ${JSON.stringify(body)}`);
      out[i] = { name, address: body.address, apiKey: body.api_key, privateKey };
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return out;
}

/** A payload of about `bytes` bytes whose context names the sender and sequence (for latency). */
export function payload(sender: number, seq: number, bytes: number): Record<string, unknown> {
  return { type: 'request', message: FILLER.slice(0, Math.max(0, bytes - 60)), context: { s: sender, n: seq } };
}
const FILLER = 'amp-relay bench payload. '.repeat(4096);

/** Signed `route` frames for `count` messages from `from` (message seq goes to `toOf(seq)`), built ahead. */
export async function buildRouteFrames(
  from: BenchAgent,
  toOf: (seq: number) => string,
  sender: number,
  count: number,
  bytes: number,
): Promise<string[]> {
  const frames: string[] = new Array(count);
  const subject = 'bench';
  const jobs: Promise<void>[] = [];
  for (let seq = 0; seq < count; seq++) {
    const p = payload(sender, seq, bytes);
    const to = toOf(seq);
    const data = Buffer.from(
      canonicalString({ from: from.address, to, subject, priority: 'normal', payload_hash: payloadHash(p) }),
      'utf8',
    );
    // crypto.sign with a callback runs on the libuv pool: both cores sign while the server idles.
    jobs.push(
      new Promise<void>((resolve, reject) =>
        sign(null, data, from.privateKey, (err, sig) => {
          if (err) return reject(err);
          frames[seq] = JSON.stringify({
            type: 'route',
            request_id: String(seq),
            data: { to, subject, priority: 'normal', payload: p, signature: sig.toString('base64') },
          });
          resolve();
        }),
      ),
    );
    if (jobs.length >= 512) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  return frames;
}

export interface Pushed {
  id: string;
  sender: number;
  seq: number;
  replay: boolean;
}

/** One agent's socket. Handlers are plain fields so the hot path has no emitter in it. */
export class BenchSocket {
  onPush: (m: Pushed) => void = () => {};
  onRouteResult: (requestId: string, ok: boolean, error?: string) => void = () => {};
  private readonly ackIds: string[] = [];
  errors = 0;
  lastError = '';

  private constructor(
    readonly agent: BenchAgent,
    private readonly ws: WebSocket,
  ) {}

  /** `init` sets handlers before any frame arrives (a backlog replay follows `connected` at once). */
  static connect(url: string, agent: BenchAgent, init?: (s: BenchSocket) => void): Promise<BenchSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${agent.apiKey}` }, perMessageDeflate: false });
      const s = new BenchSocket(agent, ws);
      init?.(s);
      const timer = setTimeout(() => {
        ws.terminate();
        reject(new Error(`${agent.name}: no 'connected' frame within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      ws.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      ws.on('close', (code, reason) => {
        clearTimeout(timer);
        reject(new Error(`${agent.name}: closed ${code} ${reason}`));
      });
      ws.on('message', (raw: Buffer) => {
        const f = JSON.parse(raw.toString('utf8')) as {
          type: string;
          request_id?: string;
          replay?: boolean;
          data?: any;
          error?: string;
          message?: string;
        };
        switch (f.type) {
          case 'connected':
            clearTimeout(timer);
            resolve(s);
            return;
          case 'message.new': {
            const ctx = f.data.payload?.context ?? {};
            s.onPush({ id: f.data.id, sender: ctx.s, seq: ctx.n, replay: f.replay === true });
            return;
          }
          case 'route.result':
            s.onRouteResult(f.request_id ?? '', f.error === undefined, f.error);
            if (f.error !== undefined) s.noteError(`${f.error}: ${f.message}`);
            return;
          case 'error':
            s.noteError(`${f.error}: ${f.message}`);
            return;
          default:
            return; // ack.result, receipts, pong
        }
      });
    });
  }

  private noteError(text: string): void {
    this.errors++;
    this.lastError = text;
  }

  send(frame: string): void {
    this.ws.send(frame);
  }

  /** Collect an id to ack; a full batch is sent at once, the rest by flushAcks(). */
  ack(id: string): void {
    this.ackIds.push(id);
    if (this.ackIds.length >= ACK_BATCH) this.flushAcks();
  }

  flushAcks(): void {
    if (this.ackIds.length === 0 || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: 'ack', ids: this.ackIds.splice(0) }));
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.removeAllListeners('close');
      this.ws.once('close', () => resolve());
      this.ws.close(1000, 'bench done');
    });
  }
}

/** Connect sockets `concurrency` at a time. */
export async function connectMany(url: string, agents: BenchAgent[], concurrency = 128): Promise<BenchSocket[]> {
  const out: BenchSocket[] = new Array(agents.length);
  let next = 0;
  const worker = async () => {
    while (next < agents.length) {
      const i = next++;
      out[i] = await BenchSocket.connect(url, agents[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, agents.length) }, worker));
  return out;
}
