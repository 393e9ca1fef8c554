// `--store nats`: a 3-server NATS JetStream cluster (the tests' harness, test/helpers/nats.ts) and
// two relay nodes in cluster mode (AMP_STORE=nats, replicas 3), for the trusted and REST scenarios.
// The scenarios see one BenchServer whose CPU and RSS are both nodes' summed; the NATS servers'
// CPU is measured on its own.

import { type NatsCluster, startNats } from '../../test/helpers/nats.js';
import { type BenchAgent, type BenchSocket, connectMany, registerMany } from './client.js';
import { cpuSecondsOf, rssOf, startBenchServer, type BenchServer, type ServerOptions } from './proc.js';
import type { PairsSetup } from '../scenarios/routing.js';

const KNOWN_WITHIN_MS = 10_000;

export interface BenchCluster {
  nodes: BenchServer[];
  nats: NatsCluster;
  /** Node 1's URLs; CPU seconds and RSS of both nodes together. */
  combined: BenchServer;
  /** CPU seconds the NATS servers have used so far. */
  natsCpuSeconds(): number;
  stop(): Promise<void>;
}

/** Three NATS servers (not pinned) and `nodes` relays in nats mode (on `cores`, as the single server). */
export async function startBenchCluster(
  cores: string | undefined,
  opts: ServerOptions & { nodes?: number },
): Promise<BenchCluster> {
  const nats = await startNats({ cluster: 3 });
  const prefix = `BENCH${Date.now().toString(36).toUpperCase()}`;
  const nodes: BenchServer[] = [];
  try {
    // One after the other: the first creates the streams, buckets and secrets, the next adopts them.
    for (let i = 0; i < (opts.nodes ?? 2); i++) {
      const env = {
        ...opts.env,
        AMP_STORE: 'nats',
        AMP_NATS_URL: nats.urls.join(','),
        AMP_NATS_PREFIX: prefix,
        AMP_NATS_REPLICAS: '3',
        AMP_NODE_ID: `bench${i + 1}`,
      };
      nodes.push(await startBenchServer(cores, { ...opts, env }));
    }
  } catch (e) {
    await Promise.all(nodes.map((n) => n.stop()));
    await nats.close();
    throw e;
  }
  const first = nodes[0]!;
  const combined: BenchServer = {
    ...first,
    rss: () => nodes.reduce((n, s) => n + s.rss(), 0),
    cpuSeconds: () => nodes.reduce((n, s) => n + s.cpuSeconds(), 0),
    stop: async () => {},
  };
  return {
    nodes,
    nats,
    combined,
    natsCpuSeconds: () => nats.servers.reduce((n, s) => n + (s.pid ? cpuSecondsOf(s.pid) : 0), 0),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
      await nats.close();
    },
  };
}

/** RSS of the NATS servers, in bytes. */
export function natsRss(c: BenchCluster): number {
  return c.nats.servers.reduce((n, s) => n + (s.pid ? rssOf(s.pid) : 0), 0);
}

/** Resolves once every node answers every agent's API key (the directory reached them all). */
async function knownEverywhere(nodes: BenchServer[], agents: BenchAgent[]): Promise<void> {
  const end = Date.now() + KNOWN_WITHIN_MS;
  for (const n of nodes) {
    for (const a of agents) {
      for (;;) {
        const r = await fetch(`${n.api}/messages/pending?limit=1`, {
          headers: { Authorization: `Bearer ${a.apiKey}` },
        });
        await r.arrayBuffer();
        if (r.status === 200) break;
        if (Date.now() > end) throw new Error(`${n.url} does not know ${a.address} after ${KNOWN_WITHIN_MS} ms`);
        await new Promise((res) => setTimeout(res, 20));
      }
    }
  }
}

/**
 * Pairs whose every message crosses nodes: pair i's sender on node i mod N, its recipient on the
 * next node. Agents are registered on node 1.
 */
export async function setupPairsAcross(nodes: BenchServer[], pairs: number): Promise<PairsSetup> {
  const agents = await registerMany(nodes[0]!.api, 'pair', pairs * 2);
  await knownEverywhere(nodes, agents);
  const senderAgents = agents.slice(0, pairs);
  const recipients = agents.slice(pairs);
  const receivers: BenchSocket[] = new Array(pairs);
  const senders: BenchSocket[] = new Array(pairs);
  for (const [k, n] of nodes.entries()) {
    const mine = (i: number) => i % nodes.length === k;
    const sIdx = senderAgents.map((_, i) => i).filter(mine);
    const rIdx = recipients.map((_, i) => i).filter((i) => (i + 1) % nodes.length === k);
    const rs = await connectMany(
      n.wsUrl,
      rIdx.map((i) => recipients[i]!),
    );
    for (const [j, i] of rIdx.entries()) receivers[i] = rs[j];
    const ss = await connectMany(
      n.wsUrl,
      sIdx.map((i) => senderAgents[i]!),
    );
    for (const [j, i] of sIdx.entries()) senders[i] = ss[j];
  }
  return { senders, receivers, recipients, pick: (i) => i };
}
