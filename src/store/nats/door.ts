// The one door to NATS: connect to the seeds (token or creds file), reconnect forever with jitter,
// and hand out the JetStream handles the store's parts are built from.

import { readFile } from 'node:fs/promises';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import { connect, credsAuthenticator, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import type { NatsParts } from './parts.js';

export interface NatsDoorOptions {
  /** Seed URLs (`nats://host:port`); the client learns the rest of the cluster from them. */
  servers: string[];
  token?: string;
  /** Path of a `.creds` file (JWT + nkey seed). */
  credsFile?: string;
  /** The client name the servers show: the node id. */
  name: string;
  replicas: number;
  prefix: string;
  /** JetStream API and publish timeout (ms); default 5000. */
  timeoutMs?: number;
}

export type NatsStatus = 'connected' | 'reconnecting' | 'closed';

export interface NatsDoor extends NatsParts {
  /** Drains and closes the connection. */
  close(): Promise<void>;
  status(): NatsStatus;
  /** Calls `cb` on every status change; returns an unsubscribe function. */
  onStatus(cb: (status: NatsStatus) => void): () => void;
}

/** Opens the connection; rejects (naming the seeds it tried) when none of them answers. */
export async function openNats(opts: NatsDoorOptions): Promise<NatsDoor> {
  const connOpts: NodeConnectionOptions = {
    servers: opts.servers,
    name: opts.name,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    reconnectJitter: 500,
    waitOnFirstConnect: false,
    timeout: 5000,
    pingInterval: 10_000,
    maxPingOut: 2,
  };
  if (opts.token) connOpts.token = opts.token;
  if (opts.credsFile) {
    const creds = await readFile(opts.credsFile);
    connOpts.authenticator = credsAuthenticator(new Uint8Array(creds));
  }
  const seeds = opts.servers.join(', ');
  let nc: Awaited<ReturnType<typeof connect>>;
  try {
    nc = await connect(connOpts);
  } catch (err) {
    throw new Error(`NATS: could not connect to any of ${seeds}: ${(err as Error).message}`);
  }
  const timeout = opts.timeoutMs ?? 5000;
  let jsm: Awaited<ReturnType<typeof jetstreamManager>>;
  try {
    jsm = await jetStreamReady(nc, timeout);
  } catch (err) {
    await nc.close().catch(() => {});
    throw new Error(`NATS at ${seeds}: JetStream is not available: ${(err as Error).message}`);
  }
  const js = jetstream(nc, { timeout });
  const kvm = new Kvm(js);

  let status: NatsStatus = 'connected';
  /** When the connection last went down (0 while connected). */
  let downSince = 0;
  const listeners = new Set<(s: NatsStatus) => void>();
  const set = (s: NatsStatus): void => {
    if (s === status) return;
    status = s;
    downSince = s === 'connected' ? 0 : Date.now();
    for (const cb of listeners) cb(s);
  };
  void (async () => {
    for await (const s of nc.status()) {
      if (s.type === 'disconnect' || s.type === 'reconnecting' || s.type === 'staleConnection') set('reconnecting');
      else if (s.type === 'reconnect') set('connected');
      else if (s.type === 'close') set('closed');
    }
  })().catch(() => {});
  void nc.closed().then(() => set('closed'));

  return {
    nc,
    js,
    jsm,
    kvm,
    replicas: opts.replicas,
    prefix: opts.prefix,
    status: () => status,
    downForMs: () => (downSince === 0 ? 0 : Date.now() - downSince),
    onStatus(cb) {
      listeners.add(cb);
      return () => listeners.delete(cb);
    },
    async close() {
      if (nc.isClosed()) return;
      // A drain needs the server; while it is away (or slow) the connection is simply closed.
      const drained = status === 'connected' ? nc.drain().catch(() => {}) : Promise.resolve();
      await Promise.race([drained, new Promise((r) => setTimeout(r, CLOSE_DRAIN_MS).unref())]);
      if (!nc.isClosed()) await nc.close().catch(() => {});
      set('closed');
    },
  };
}

/** How long close() waits for a drain. */
const CLOSE_DRAIN_MS = 2000;

/** How long a start waits for JetStream to answer (a cluster just started elects its leaders first). */
const JETSTREAM_READY_MS = 30_000;

/** The JetStream manager once its API answers (account info), tried again until JETSTREAM_READY_MS. */
async function jetStreamReady(nc: NatsConnection, timeout: number) {
  const deadline = Date.now() + JETSTREAM_READY_MS;
  for (;;) {
    try {
      return await jetstreamManager(nc, { timeout });
    } catch (err) {
      if (Date.now() >= deadline || /not enabled|no responders/i.test(String(err))) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
