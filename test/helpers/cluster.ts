// Relay nodes of one cluster as child processes (`amp-relay serve`, the built CLI, via spawnServer):
// AMP_STORE=nats against the seeds of a NATS cluster (test/helpers/nats.ts), one prefix shared by
// the nodes of a test file (its own streams and buckets), each node with its own AMP_NODE_ID, data
// dir and free port. A node can be killed with -9 and restarted on its data dir (new port).

import { rmSync } from 'node:fs';
import type { NatsCluster } from './nats.js';
import { type ChildServer, call, type Registered, spawnServer, tempDir } from './server.js';
import { until } from './ws.js';

/** The base URL every node advertises, as behind one load balancer (issuers agree across nodes). */
export const CLUSTER_PUBLIC_URL = 'http://amp-cluster.test';

export interface RelayNode {
  /** AMP_NODE_ID */
  id: string;
  dataDir: string;
  /** `http://127.0.0.1:<port>` of the running process (changes on restart). */
  readonly url: string;
  /** `${url}/api/v1` */
  readonly api: string;
  /** `ws://127.0.0.1:<port>/v1/ws` */
  readonly wsUrl: string;
  readonly child: ChildServer;
  /** SIGKILL; resolves once the process has ended. */
  kill9(): Promise<void>;
  /** SIGTERM; resolves once the process has ended. */
  stop(): Promise<void>;
  /** Start again on the same data dir and environment. */
  restart(): Promise<void>;
}

export interface RelayCluster {
  nodes: RelayNode[];
  prefix: string;
  close(): Promise<void>;
}

export interface RelayOptions {
  /** How many relay nodes (default 2). */
  nodes?: number;
  /** AMP_NATS_PREFIX: unique per test file (see uniquePrefix in nats.ts). */
  prefix: string;
  /** AMP_NATS_REPLICAS; default 3 for three NATS servers, 1 for one. */
  replicas?: number;
  /** More AMP_* variables for every node. */
  env?: Record<string, string>;
}

/** The environment of one relay node in nats mode. */
export function natsEnv(nats: NatsCluster, prefix: string, nodeId: string, replicas?: number): Record<string, string> {
  return {
    AMP_STORE: 'nats',
    AMP_NATS_URL: nats.urls.join(','),
    AMP_NATS_PREFIX: prefix,
    AMP_NATS_REPLICAS: String(replicas ?? (nats.urls.length >= 3 ? 3 : 1)),
    AMP_NODE_ID: nodeId,
    AMP_PUBLIC_URL: CLUSTER_PUBLIC_URL,
  };
}

class Node implements RelayNode {
  child!: ChildServer;
  constructor(
    readonly id: string,
    readonly dataDir: string,
    private readonly env: Record<string, string>,
  ) {}

  get url(): string {
    return this.child.url;
  }
  get api(): string {
    return this.child.api;
  }
  get wsUrl(): string {
    return `${this.child.url.replace(/^http/, 'ws')}/v1/ws`;
  }

  async start(): Promise<void> {
    this.child = await spawnServer(this.dataDir, [], this.env);
  }

  async kill9(): Promise<void> {
    await this.child.stop('SIGKILL');
  }

  async stop(): Promise<void> {
    await this.child.stop('SIGTERM');
  }

  async restart(): Promise<void> {
    await this.child.stop('SIGTERM');
    await this.start();
  }
}

/** Start `nodes` relay processes in nats mode; resolves once every one is listening. */
export async function startRelays(nats: NatsCluster, opts: RelayOptions): Promise<RelayCluster> {
  const n = opts.nodes ?? 2;
  const nodes = Array.from({ length: n }, (_, i) => {
    const id = `node${i + 1}`;
    const env = { ...natsEnv(nats, opts.prefix, id, opts.replicas), ...opts.env };
    return new Node(id, tempDir(`amp-${id}-`), env);
  });
  const close = async () => {
    await Promise.all(nodes.map((x) => x.child?.stop('SIGKILL')));
    for (const x of nodes) rmSync(x.dataDir, { recursive: true, force: true });
  };
  try {
    // One at a time: the first node creates the streams, buckets and shared secrets, the others adopt them.
    for (const x of nodes) await x.start();
  } catch (e) {
    await close();
    throw e;
  }
  return { nodes, prefix: opts.prefix, close };
}

/** Waits until the node at `api` knows the agent (its directory mirror caught up); throws after 5 s. */
export async function known(api: string, a: Registered): Promise<void> {
  const ok = await until(async () => (await call('GET', `${api}/agents/me`, { key: a.api_key })).status === 200, 5000);
  if (!ok) throw new Error(`${api} does not know ${a.address}`);
}

/** Waits until every node knows every agent. */
export async function knownEverywhere(nodes: readonly { api: string }[], agents: readonly Registered[]): Promise<void> {
  for (const n of nodes) for (const a of agents) await known(n.api, a);
}
