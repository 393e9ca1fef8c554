// Scenario 3: REST `POST /api/v1/route` under autocannon: one sender, one offline recipient, 1 KB
// unsigned messages, every 200 a durable queued message.

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

export async function restRoute(
  server: BenchServer,
  o: { label: string; connections: number; seconds: number; bytes: number },
): Promise<{ rate: number; result: AutocannonResult; queued: number; cpu: CpuUse }> {
  const [sender, target] = await registerMany(server.api, 'rest', 2);
  const body = JSON.stringify({ to: target!.address, subject: 'bench', payload: payload(0, 0, o.bytes) });
  let last = 0;
  let stop = () => {};
  const cpu = cpuMeter(server);
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    const inst = autocannon(
      {
        url: `${server.api}/route`,
        method: 'POST',
        headers: { Authorization: `Bearer ${sender!.apiKey}`, 'Content-Type': 'application/json' },
        body,
        connections: o.connections,
        duration: o.seconds,
        pipelining: 1,
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    );
    inst.on('tick', (t) => (last = t.counter));
    stop = progress(o.label, () => `requests=${last}/s`);
  });
  stop();
  const cpuUse = cpu();
  const r = await fetch(`${server.api}/messages/pending?limit=1`, {
    headers: { Authorization: `Bearer ${target!.apiKey}` },
  });
  const b = (await r.json()) as { count: number; remaining: number };
  return { rate: Math.round(result['2xx'] / result.duration), result, queued: b.count + b.remaining, cpu: cpuUse };
}
