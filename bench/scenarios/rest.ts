// Scenario 3: REST `POST /api/v1/route` under autocannon: one sender, one offline recipient, 1 KB
// unsigned messages, every 200 a durable queued message. In cluster mode (`--store nats`) the
// connections are split over the relay nodes.

import { createRequire } from 'node:module';
import { payload, registerMany } from '../lib/client.js';
import { cpuMeter, type BenchServer, type CpuUse } from '../lib/proc.js';
import { progress } from '../lib/report.js';

interface AutocannonStats {
  average: number;
  p50: number;
  p90: number;
  p99: number;
  p99_9: number;
  max: number;
  mean: number;
  total: number;
}
interface AutocannonResult {
  requests: AutocannonStats;
  latency: AutocannonStats;
  non2xx: number;
  errors: number;
  timeouts: number;
  duration: number;
  '2xx': number;
}
interface AutocannonInstance {
  on(event: 'tick', fn: (t: { counter: number }) => void): void;
  on(event: 'done', fn: (r: AutocannonResult) => void): void;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (
  opts: Record<string, unknown>,
  cb?: (err: Error | null, r: AutocannonResult) => void,
) => AutocannonInstance;

/** One autocannon run of `POST {api}/route` as `apiKey` with `body`. */
function cannon(
  api: string,
  apiKey: string,
  body: string,
  connections: number,
  seconds: number,
  onTick: (n: number) => void,
): Promise<AutocannonResult> {
  return new Promise<AutocannonResult>((resolve, reject) => {
    const inst = autocannon(
      {
        url: `${api}/route`,
        method: 'POST',
        headers: { Authorization: `Bearer ${apiKey}`, 'Content-Type': 'application/json' },
        body,
        connections,
        duration: seconds,
        pipelining: 1,
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
    inst.on('tick', (t) => onTick(t.counter));
  });
}

/** Several runs at once as one: counts summed, latency percentiles the worst of them (conservative). */
function merge(rs: AutocannonResult[]): AutocannonResult {
  if (rs.length === 1) return rs[0]!;
  const sum = (f: (r: AutocannonResult) => number) => rs.reduce((n, r) => n + f(r), 0);
  const worst = (k: keyof AutocannonStats) => Math.max(...rs.map((r) => r.latency[k]));
  const latency = {} as AutocannonStats;
  for (const k of ['average', 'p50', 'p90', 'p99', 'p99_9', 'max', 'mean', 'total'] as const) latency[k] = worst(k);
  return {
    ...rs[0]!,
    latency,
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    duration: Math.max(...rs.map((r) => r.duration)),
    '2xx': sum((r) => r['2xx']),
  };
}

/**
 * `o.nodes` (cluster mode): the connections are split over these relay nodes, one autocannon each,
 * run at once; the sender and the recipient are registered on the first. `server` is what the CPU
 * is measured on (in cluster mode: both nodes together).
 */
export async function restRoute(
  server: BenchServer,
  o: { label: string; connections: number; seconds: number; bytes: number; nodes?: BenchServer[] },
): Promise<{ rate: number; result: AutocannonResult; queued: number; cpu: CpuUse }> {
  const nodes = o.nodes ?? [server];
  const [sender, target] = await registerMany(nodes[0]!.api, 'rest', 2);
  await Promise.all(nodes.map((n) => knows(n, sender!.apiKey)));
  const body = JSON.stringify({ to: target!.address, subject: 'bench', payload: payload(0, 0, o.bytes) });
  const last = nodes.map(() => 0);
  const cpu = cpuMeter(server);
  const stop = progress(o.label, () => `requests=${last.reduce((a, b) => a + b, 0)}/s`);
  const per = Math.max(1, Math.floor(o.connections / nodes.length));
  const result = merge(
    await Promise.all(nodes.map((n, i) => cannon(n.api, sender!.apiKey, body, per, o.seconds, (c) => (last[i] = c)))),
  );
  stop();
  const cpuUse = cpu();
  // Every node's writes reach the first node's copy within its watch latency: wait for them (bounded).
  let queued = 0;
  const end = Date.now() + (nodes.length > 1 ? QUEUED_WAIT_MS : 0);
  do {
    const r = await fetch(`${nodes[0]!.api}/messages/pending?limit=1`, {
      headers: { Authorization: `Bearer ${target!.apiKey}` },
    });
    const b = (await r.json()) as { count: number; remaining: number };
    queued = b.count + b.remaining;
    if (queued >= result['2xx']) break;
    await new Promise((res) => setTimeout(res, 50));
  } while (Date.now() < end);
  return { rate: Math.round(result['2xx'] / result.duration), result, queued, cpu: cpuUse };
}

/**
 * The REST calibrator: the same autocannon run (connections, seconds, a body of the same size and
 * shape) against the bare uWS POST handler of bench/bare-http.ts at `api`. Requests/s answered 200.
 */
export async function bareHttpRate(
  api: string,
  o: { label: string; connections: number; seconds: number; bytes: number },
): Promise<{ rate: number; result: AutocannonResult }> {
  const body = JSON.stringify({
    to: 'rest-1@bench.aimaestro.local',
    subject: 'bench',
    payload: payload(0, 0, o.bytes),
  });
  let last = 0;
  const stop = progress(o.label, () => `requests=${last}/s`);
  const result = await cannon(api, 'amp_live_calibrator', body, o.connections, o.seconds, (c) => (last = c));
  stop();
  return { rate: Math.round(result['2xx'] / result.duration), result };
}

const QUEUED_WAIT_MS = 10_000;

/** Resolves once `node` accepts the API key (in cluster mode the directory reaches a node by its watch). */
async function knows(node: BenchServer, apiKey: string): Promise<void> {
  const end = Date.now() + QUEUED_WAIT_MS;
  for (;;) {
    const r = await fetch(`${node.api}/messages/pending?limit=1`, { headers: { Authorization: `Bearer ${apiKey}` } });
    await r.arrayBuffer();
    if (r.status === 200) return;
    if (Date.now() > end) throw new Error(`${node.url} does not know the bench sender after ${QUEUED_WAIT_MS} ms`);
    await new Promise((res) => setTimeout(res, 20));
  }
}
