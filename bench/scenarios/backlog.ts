// Scenario 5: a backlog queued for an offline agent, then drained: over a WebSocket (the replay
// after `connected`, acked in batches) and over REST (GET pending pages + POST batch acks).

import { BenchSocket, payload, registerMany, type BenchAgent } from '../lib/client.js';
import { cpuMeter, rssPartsOf, type BenchServer, type CpuUse } from '../lib/proc.js';
import { perSecond, progress } from '../lib/report.js';

const FILL_WINDOW = 512;
const DRAIN_TIMEOUT_MS = 300_000;
/** After the drain, RSS is read every RSS_SETTLE_STEP_MS until it stops falling (bounded). */
const RSS_SETTLE_STEP_MS = 500;
const RSS_SETTLE_MAX_MS = 10_000;

/** Queue `n` unsigned messages for `to`, FILL_WINDOW routes in flight; returns routes/s. */
async function fill(
  server: BenchServer,
  from: BenchAgent,
  to: string,
  n: number,
  bytes: number,
  label: string,
): Promise<number> {
  const frame = (k: number) =>
    JSON.stringify({
      type: 'route',
      request_id: String(k),
      data: { to, subject: 'backlog', payload: payload(0, k, bytes) },
    });
  let routed = 0;
  let failed = 0;
  let sent = 0;
  const t0 = performance.now();
  const stop = progress(label, () => `queued=${routed}/${n}`);
  const s = await BenchSocket.connect(server.wsUrl, from);
  await new Promise<void>((resolve) => {
    s.onRouteResult = (_rid, ok) => {
      if (ok) routed++;
      else failed++;
      if (routed + failed >= n) resolve();
      else if (sent < n) s.send(frame(sent++));
    };
    while (sent < Math.min(n, FILL_WINDOW)) s.send(frame(sent++));
  });
  const rate = perSecond(routed, performance.now() - t0);
  stop();
  await s.close();
  if (failed > 0)
    throw new Error(`${label}: ${failed} of ${n} routes failed while filling the backlog (${s.lastError})`);
  return rate;
}

async function pendingTotal(server: BenchServer, agent: BenchAgent): Promise<number> {
  const r = await fetch(`${server.api}/messages/pending?limit=1`, {
    headers: { Authorization: `Bearer ${agent.apiKey}` },
  });
  const b = (await r.json()) as { count: number; remaining: number };
  return b.count + b.remaining;
}

export interface BacklogOutcome {
  fillRate: number;
  /** rate: received/s (connect to last message); acked_rate: until the queue is empty. */
  ws: { messages: number; rate: number; acked_rate: number; remaining_after: number; cpu?: CpuUse };
  /** Server RSS (MiB) before the fill, with the backlog queued, and after the WS drain settled. */
  rss: {
    start_mb: number;
    filled_mb: number;
    drained_mb: number;
    return_pct: number;
    /** The same split: anonymous memory (heap, buffers) and mapped file pages (LMDB's data file). */
    anon_mb: [number, number, number];
    file_mb: [number, number, number];
    anon_return_pct: number;
  };
  rest: { page: number; messages: number; rate: number; round_trips: number; remaining_after: number }[];
}

export async function backlog(
  server: BenchServer,
  o: { label: string; messages: number; restMessages: number; pages: number[]; bytes: number },
): Promise<BacklogOutcome> {
  const [sender, target] = await registerMany(server.api, 'drain', 2);
  const rssStart = server.rss();
  const partsStart = rssPartsOf(server.pid);
  const fillRate = await fill(server, sender!, target!.address, o.messages, o.bytes, `${o.label} fill`);
  const rssFilled = server.rss();
  const partsFilled = rssPartsOf(server.pid);

  // Over WS: from before the upgrade to the last replayed message.
  let received = 0;
  const t0 = performance.now();
  const cpu = cpuMeter(server);
  let cpuUse: CpuUse | undefined;
  let tLast = t0;
  const stop = progress(`${o.label} ws`, () => `received=${received}/${o.messages}`);
  let sock: BenchSocket | undefined;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${o.label}: WS drain timed out at ${received}/${o.messages}`)),
      DRAIN_TIMEOUT_MS,
    );
    void BenchSocket.connect(server.wsUrl, target!, (s) => {
      s.onPush = (m) => {
        received++;
        s.ack(m.id);
        if (received === o.messages) {
          tLast = performance.now();
          cpuUse = cpu();
          s.flushAcks();
          clearTimeout(timer);
          resolve();
        }
      };
    }).then((s) => (sock = s), reject);
  });
  stop();
  const wsRate = perSecond(o.messages, tLast - t0);
  // Drained means acked and committed too: the queue is empty (polled, so ±10 ms).
  await waitEmpty(server, target!);
  const ackedRate = perSecond(o.messages, performance.now() - t0);
  await sock?.close();
  const wsRemaining = await pendingTotal(server, target!);
  const rssDrained = await settledRss(server);
  const partsDrained = rssPartsOf(server.pid);

  const rest: BacklogOutcome['rest'] = [];
  for (const page of o.pages) {
    const n = Math.min(o.restMessages, page * 1000);
    await fill(server, sender!, target!.address, n, o.bytes, `${o.label} fill`);
    const headers = { Authorization: `Bearer ${target!.apiKey}`, 'Content-Type': 'application/json' };
    let drained = 0;
    let trips = 0;
    const t1 = performance.now();
    const stopRest = progress(`${o.label} rest page=${page}`, () => `drained=${drained}/${n}`);
    for (let i = 0; i < n; i++) {
      const r = await fetch(`${server.api}/messages/pending?limit=${page}`, { headers });
      const b = (await r.json()) as { messages: { id: string }[] };
      trips++;
      if (b.messages.length === 0) break;
      const a = await fetch(`${server.api}/messages/pending`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ ids: b.messages.map((m) => m.id) }),
      });
      await a.arrayBuffer();
      if (a.status !== 200) throw new Error(`${o.label}: batch ack answered ${a.status}`);
      drained += b.messages.length;
    }
    const ms = performance.now() - t1;
    stopRest();
    rest.push({
      page,
      messages: drained,
      rate: perSecond(drained, ms),
      round_trips: trips,
      remaining_after: await pendingTotal(server, target!),
    });
  }
  return {
    fillRate,
    ws: { messages: o.messages, rate: wsRate, acked_rate: ackedRate, remaining_after: wsRemaining, cpu: cpuUse },
    rest,
    rss: {
      start_mb: mib(rssStart),
      filled_mb: mib(rssFilled),
      drained_mb: mib(rssDrained),
      return_pct: pct(rssDrained, rssStart),
      anon_mb: [mib(partsStart.anon), mib(partsFilled.anon), mib(partsDrained.anon)],
      file_mb: [mib(partsStart.file), mib(partsFilled.file), mib(partsDrained.file)],
      anon_return_pct: pct(partsDrained.anon, partsStart.anon),
    },
  };
}

const mib = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;
const pct = (now: number, start: number) => (start > 0 ? +(((now - start) / start) * 100).toFixed(1) : 0);

/** The server's RSS once it stops falling (two readings within 1 %), or after RSS_SETTLE_MAX_MS. */
async function settledRss(server: BenchServer): Promise<number> {
  let last = server.rss();
  const end = performance.now() + RSS_SETTLE_MAX_MS;
  while (performance.now() < end) {
    await new Promise((r) => setTimeout(r, RSS_SETTLE_STEP_MS));
    const now = server.rss();
    if (Math.abs(now - last) <= last * 0.01) return now;
    last = now;
  }
  return last;
}

/** The WS acks are in flight when the last message arrives; wait (bounded) until they land. */
async function waitEmpty(server: BenchServer, agent: BenchAgent): Promise<void> {
  const end = performance.now() + 30_000;
  while (performance.now() < end && (await pendingTotal(server, agent)) > 0)
    await new Promise((r) => setTimeout(r, 10));
}
