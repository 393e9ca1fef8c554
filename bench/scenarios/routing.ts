// WS→WS routing between agent pairs: closed loop (each sender keeps `window` routes in flight;
// scenarios 1 and 2) and open loop at fixed rates (scenario 6). Latency is route → receipt: from
// the moment the sender hands the frame to its socket (open loop: the moment it was due, so a
// stall is not hidden) to the `message.new` at the recipient. Receivers ack in batches.

import {
  type BenchSocket,
  buildRouteFrames,
  connectMany,
  payload,
  registerMany,
  type BenchAgent,
} from '../lib/client.js';
import { Latency } from '../lib/hist.js';
import { cpuMeter, type BenchServer } from '../lib/proc.js';
import { perSecond, progress } from '../lib/report.js';

const ACK_FLUSH_MS = 5;
const DRAIN_WAIT_MS = 15_000;

export interface PairsSetup {
  senders: BenchSocket[];
  receivers: BenchSocket[];
  recipients: BenchAgent[];
  /** Which recipient sender i's message seq goes to: its partner, or spread over all of them. */
  pick: (sender: number, seq: number) => number;
}

export async function setupPairs(server: BenchServer, pairs: number): Promise<PairsSetup> {
  const agents = await registerMany(server.api, 'pair', pairs * 2);
  const senderAgents = agents.slice(0, pairs);
  const recipients = agents.slice(pairs);
  const receivers = await connectMany(server.wsUrl, recipients);
  const senders = await connectMany(server.wsUrl, senderAgents);
  return { senders, receivers, recipients, pick: (i) => i };
}

export async function closePairs(p: PairsSetup): Promise<void> {
  await Promise.all([...p.senders, ...p.receivers].map((s) => s.close()));
}

/** Wait until `done()` or the time is up; polls on a timer because the events are counted, not awaited. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done() && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
  return done();
}

export interface ClosedLoopOptions {
  label: string;
  window: number;
  seconds: number;
  warmupSeconds: number;
  bytes: number;
  signed: boolean;
  /** Signed frames are built ahead; this many per sender at most. */
  framesPerSender: number;
}

export interface RoutingOutcome {
  rate: number;
  latency: Latency;
  details: Record<string, unknown>;
  errors: number;
  notes: string[];
}

/** Closed loop over a set-up (closed by the caller): each sender keeps `window` routes in flight. */
export async function closedLoop(server: BenchServer, p: PairsSetup, o: ClosedLoopOptions): Promise<RoutingOutcome> {
  const toOf = (i: number, seq: number) => p.recipients[p.pick(i, seq)]!.address;
  const frames = o.signed
    ? await Promise.all(
        p.senders.map((s, i) => buildRouteFrames(s.agent, (seq) => toOf(i, seq), i, o.framesPerSender, o.bytes)),
      )
    : undefined;
  const frameOf = (i: number, seq: number) =>
    frames
      ? frames[i]![seq]
      : JSON.stringify({
          type: 'route',
          request_id: String(seq),
          data: { to: toOf(i, seq), subject: 'bench', payload: payload(i, seq, o.bytes) },
        });
  const limit = frames ? o.framesPerSender : Number.MAX_SAFE_INTEGER;
  const sentAt = p.senders.map(() => new Map<number, number>());
  const next = p.senders.map(() => 0);
  const lat = new Latency();
  let routed = 0;
  let received = 0;
  let inFlight = 0;
  let measuring = false;
  let stopping = false;
  let exhausted = false;
  let measuredRouted = 0;

  const sendOne = (i: number) => {
    const seq = next[i]!;
    if (seq >= limit) return void (exhausted = true);
    next[i] = seq + 1;
    sentAt[i]!.set(seq, performance.now());
    inFlight++;
    p.senders[i]!.send(frameOf(i, seq)!);
  };
  p.senders.forEach((s, i) => {
    s.onRouteResult = (_rid, ok) => {
      inFlight--;
      if (ok) {
        routed++;
        if (measuring) measuredRouted++;
      }
      if (!stopping) sendOne(i);
    };
  });
  p.receivers.forEach((r) => {
    r.onPush = (m) => {
      const t0 = sentAt[m.sender]?.get(m.seq);
      if (t0 !== undefined) {
        sentAt[m.sender]!.delete(m.seq);
        if (measuring) lat.recordMs(performance.now() - t0);
      }
      received++;
      r.ack(m.id);
    };
  });
  const acker = setInterval(() => {
    for (const r of p.receivers) r.flushAcks();
  }, ACK_FLUSH_MS);
  let last = 0;
  const stop = progress(o.label, () => {
    const line = `routed=${routed} (+${routed - last}/s) received=${received} in_flight=${inFlight} p99=${lat.count ? lat.percentileMs(99).toFixed(2) : '-'}ms`;
    last = routed;
    return line;
  });

  for (let i = 0; i < p.senders.length; i++) for (let w = 0; w < o.window; w++) sendOne(i);
  await new Promise((r) => setTimeout(r, o.warmupSeconds * 1000));
  measuring = true;
  const t0 = performance.now();
  const cpu = cpuMeter(server);
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  measuring = false;
  const ms = performance.now() - t0;
  const cpuUse = cpu();
  stopping = true;
  const drained = await until(() => inFlight === 0 && received >= routed, DRAIN_WAIT_MS);
  stop();
  clearInterval(acker);
  for (const r of p.receivers) r.flushAcks();
  const errors = [...p.senders, ...p.receivers].reduce((n, s) => n + s.errors, 0);
  const notes: string[] = [];
  if (exhausted)
    notes.push(`a sender used all ${o.framesPerSender} pre-signed frames before the end: the figure is a lower bound`);
  if (!drained)
    notes.push(`not drained within ${DRAIN_WAIT_MS} ms: in_flight=${inFlight}, received ${received} of ${routed}`);
  const lastError = [...p.senders, ...p.receivers].find((s) => s.lastError)?.lastError;
  if (lastError) notes.push(`last error: ${lastError}`);
  const rss = server.rss();
  return {
    rate: perSecond(measuredRouted, ms),
    latency: lat,
    details: {
      senders: p.senders.length,
      recipients: p.receivers.length,
      window: o.window,
      in_flight: p.senders.length * o.window,
      seconds: o.seconds,
      payload_bytes: o.bytes,
      signed: o.signed,
      routed,
      received,
      ...cpuUse,
      server_rss_mb: Math.round(rss / 1048576),
    },
    errors,
    notes,
  };
}

export interface FixedRateOptions {
  label: string;
  rate: number;
  pairs: number;
  seconds: number;
  warmupSeconds: number;
  bytes: number;
}

/** Open loop: messages are due at rate/s, sent on a 1 ms tick; latency counts from when each was due. */
export async function fixedRate(server: BenchServer, o: FixedRateOptions): Promise<RoutingOutcome> {
  const p = await setupPairs(server, o.pairs);
  const lat = new Latency();
  const dueAt = p.senders.map(() => new Map<number, number>());
  const next = p.senders.map(() => 0);
  let sent = 0;
  let received = 0;
  let measuredReceived = 0;
  let lastReceiptAt = 0;
  let measuring = false;
  const total = Math.round(o.rate * (o.seconds + o.warmupSeconds));
  const maxOutstanding = Math.max(1000, o.rate);
  let skipped = 0;
  const warmupCount = Math.round(o.rate * o.warmupSeconds);
  p.receivers.forEach((r) => {
    r.onPush = (m) => {
      const due = dueAt[m.sender]?.get(m.seq);
      if (due !== undefined) {
        dueAt[m.sender]!.delete(m.seq);
        if (measuring) {
          lastReceiptAt = performance.now();
          lat.recordMs(lastReceiptAt - due);
          measuredReceived++;
        }
      }
      received++;
      r.ack(m.id);
    };
  });
  const acker = setInterval(() => {
    for (const r of p.receivers) r.flushAcks();
  }, ACK_FLUSH_MS);
  const stop = progress(
    o.label,
    () =>
      `target=${o.rate}/s sent=${sent} received=${received} p99=${lat.count ? lat.percentileMs(99).toFixed(2) : '-'}ms`,
  );
  const start = performance.now();
  let measureStart = 0;
  let cpu: ReturnType<typeof cpuMeter> | undefined;
  await new Promise<void>((resolve) => {
    const tick = setInterval(() => {
      const now = performance.now();
      const due = Math.min(total, Math.floor(((now - start) * o.rate) / 1000));
      // Open loop, but bounded: past a second's worth outstanding the server is saturated, and
      // messages due meanwhile are skipped (counted) instead of piling up a backlog.
      if (sent - received > maxOutstanding) skipped = due - sent;
      while (sent + skipped < due) {
        if (!measuring && sent + skipped >= warmupCount) {
          measuring = true;
          measureStart = now;
          cpu = cpuMeter(server);
        }
        const i = sent % p.senders.length;
        const seq = next[i]!++;
        dueAt[i]!.set(seq, start + ((sent + skipped) * 1000) / o.rate);
        p.senders[i]!.send(
          JSON.stringify({
            type: 'route',
            data: { to: p.recipients[i]!.address, subject: 'bench', payload: payload(i, seq, o.bytes) },
          }),
        );
        sent++;
      }
      if (sent + skipped >= total) {
        clearInterval(tick);
        resolve();
      }
    }, 1);
  });
  const cpuUse = cpu?.();
  const drained = await until(() => received >= sent, DRAIN_WAIT_MS);
  const ms = lastReceiptAt - measureStart;
  measuring = false;
  stop();
  clearInterval(acker);
  const errors = [...p.senders, ...p.receivers].reduce((n, s) => n + s.errors, 0);
  const notes: string[] = [];
  if (!drained) notes.push(`not drained within ${DRAIN_WAIT_MS} ms: received ${received} of ${sent}`);
  if (skipped > 0)
    notes.push(`saturated: ${skipped} of ${total} messages were not sent (over ${maxOutstanding} outstanding)`);
  await closePairs(p);
  return {
    rate: perSecond(measuredReceived, ms),
    latency: lat,
    details: {
      target_rate: o.rate,
      pairs: o.pairs,
      seconds: o.seconds,
      payload_bytes: o.bytes,
      sent,
      skipped,
      received,
      ...cpuUse,
    },
    errors,
    notes,
  };
}
