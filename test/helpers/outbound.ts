// Outbound engine test parts: an in-process adapter the test scripts, a tiny HTTP adapter (what a
// webhook adapter does, minus signing and SSRF checks) and a local HTTP receiver on 127.0.0.1.

import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Adapter, OutboundItem, Outcome } from '../../src/outbound/index.js';

type Script = (item: OutboundItem, signal: AbortSignal) => Outcome | Promise<Outcome>;

/** Records every call; answers with `script` (default: delivered). Emits 'call' and 'settled'. */
export class FakeAdapter extends EventEmitter implements Adapter {
  readonly calls: OutboundItem[] = [];
  inFlight = 0;
  maxInFlight = 0;

  constructor(public script: Script = () => 'delivered') {
    super();
  }

  async deliver(item: OutboundItem, signal: AbortSignal): Promise<Outcome> {
    this.calls.push(item);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    this.emit('call', item);
    try {
      return await this.script(item, signal);
    } finally {
      this.inFlight--;
      this.emit('settled', item);
    }
  }

  ids(): string[] {
    return this.calls.map((c) => c.id);
  }
}

/** A promise settled from outside, for adapters that hold an attempt open. */
export function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Resolves when `signal` aborts, rejecting as fetch does. */
export function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
  });
}

/** POST the body to `urlFor(item)`: 2xx delivered, 4xx parked, anything else retried. */
export function httpAdapter(urlFor: (item: OutboundItem) => string): Adapter {
  return {
    async deliver(item, signal) {
      const res = await fetch(urlFor(item), {
        method: 'POST',
        body: item.body,
        headers: {
          'content-type': 'application/json',
          'x-amp-message-id': item.id,
          'x-amp-delivery-attempt': String(item.attempts + 1),
        },
        signal,
      });
      await res.arrayBuffer();
      if (res.ok) return 'delivered';
      if (res.status >= 400 && res.status < 500) return { park: true, reason: `HTTP ${res.status}` };
      return { retry: true, reason: `HTTP ${res.status}` };
    },
  };
}

export interface Received {
  id: string;
  attempt: string;
  body: string;
  status: number;
}

/**
 * A local HTTP receiver: answers each request with the next status of `statuses` (then 200),
 * records it, and emits 'request'.
 */
export class Receiver extends EventEmitter {
  readonly received: Received[] = [];
  private server: Server | undefined;
  url = '';
  /** While true, answers wait for release(): requests open at once can be counted. */
  hold = false;
  open = 0;
  maxOpen = 0;
  private held: Array<() => void> = [];

  constructor(public statuses: number[] = []) {
    super();
  }

  async listen(port = 0): Promise<string> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const status = this.statuses.shift() ?? 200;
        const rec: Received = {
          id: String(req.headers['x-amp-message-id']),
          attempt: String(req.headers['x-amp-delivery-attempt']),
          body: Buffer.concat(chunks).toString('utf8'),
          status,
        };
        this.received.push(rec);
        this.open++;
        this.maxOpen = Math.max(this.maxOpen, this.open);
        const answer = () => {
          this.open--;
          res.writeHead(status, { 'content-type': 'application/json' }).end('{}');
        };
        if (this.hold) this.held.push(answer);
        else answer();
        this.emit('request', rec);
      });
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    return this.url;
  }

  /** Answer every held request; returns how many. */
  release(): number {
    const held = this.held.splice(0);
    for (const answer of held) answer();
    return held.length;
  }

  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  }
}

/**
 * Resolves once `cond()` holds: checked now and after each `event` of `emitter` (never by polling);
 * rejects after `timeoutMs` with `what`.
 */
export function until(
  emitter: EventEmitter<any>,
  event: string,
  cond: () => boolean,
  what = event,
  timeoutMs = 5000,
): Promise<void> {
  if (cond()) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, on);
      reject(new Error(`not within ${timeoutMs} ms: ${what}`));
    }, timeoutMs);
    const on = () => {
      if (!cond()) return;
      clearTimeout(timer);
      emitter.off(event, on);
      resolve();
    };
    emitter.on(event, on);
  });
}

/** Counts an engine's events by name. */
export function countEvents(emitter: EventEmitter<any>, names: string[]): Record<string, number> {
  const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
  for (const n of names) emitter.on(n, () => counts[n]!++);
  return counts;
}
