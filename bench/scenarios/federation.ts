// Scenario 8: federation (spec §19.1) between two providers on this machine, against one provider
// in the same run. Senders on provider A route signed 1 KB messages to recipients holding a
// WebSocket, first on A itself (single provider), then on B (federated: A's outbound engine POSTs
// each message to B's /v1/federation/deliver, B checks both signatures and pushes). The loop is
// closed end to end: a sender's slot frees when its message reaches the recipient (or its route
// is refused), since a federated route answers `queued`/`relay` before the delivery. Latency is
// route → receipt, as in the other scenarios. Every message is counted by id at the recipient:
// losses and duplicates are reported. Each phase runs loaded (N in flight) and with 1 in flight.

import { loadavg } from 'node:os';
import { type BenchAgent, type BenchSocket, buildRouteFrames, connectMany, registerMany } from '../lib/client.js';
import { Latency, type LatencySummary } from '../lib/hist.js';
import { cpuMeter, type BenchServer, type CpuUse } from '../lib/proc.js';
import type { Providers } from '../lib/providers.js';
import { perSecond, progress, type ScenarioResult } from '../lib/report.js';

const ACK_FLUSH_MS = 5;
/** How long the senders' first messages of a phase may take (federation: first connection, key lookups). */
const PROBE_TIMEOUT_MS = 15_000;
/** Pre-signed frames for the 1-in-flight runs: this many per second of the run. */
const LIGHT_MAX_RATE = 5000;
/** Pending messages read per recipient when looking for missing ones. */
const DIAG_PAGE = 1000;

export interface FederationOptions {
  label: string;
  senders: number;
  /** Messages in flight per sender (end to end) in the loaded runs. */
  window: number;
  seconds: number;
  warmupSeconds: number;
  /** Length of the 1-in-flight runs. */
  lightSeconds: number;
  bytes: number;
  /** Pre-signed frames per sender for the loaded single-provider run (the federated one is sized from it). */
  framesPerSender: number;
  /** After the measured window: how long to wait for the messages still on their way. */
  drainMs: number;
  /** Where the load runs, for the notes. */
  placementNote: string;
}

/** One measured run: who sends to whom, how much. */
interface PhaseSpec {
  label: string;
  /** Names the phase's senders (`fs-<tag>-<i>`). */
  tag: string;
  target: BenchServer;
  /** How many senders, registered on A for this phase. */
  senders: number;
  recipients: BenchAgent[];
  window: number;
  seconds: number;
  warmupSeconds: number;
  framesPerSender: number;
}

export interface PhaseOutcome {
  /** False when the first message did not arrive (federation not working): nothing was measured. */
  measured: boolean;
  rate: number;
  latency: LatencySummary;
  /** The slowest of the senders' first messages (sent together, one each, before the run). */
  first_delivery_ms: number | undefined;
  sent: number;
  routed_ok: number;
  route_errors: number;
  arrived: number;
  lost: number;
  /** Sent, with no route answer and no push by the end of the drain. */
  unresolved: number;
  duplicates: number;
  exhausted: boolean;
  cpu_a?: CpuUse;
  cpu_b?: CpuUse;
  cpu_us_per_msg?: { a: number | undefined; b: number | undefined };
  last_error: string;
  /** When messages went missing: where they are after the drain (see diagnose()). */
  missing?: Missing;
}

/** Where missing messages are after the drain, from the servers' own REST views. */
export interface Missing {
  /** `sender/seq` of each message answered 2xx and not pushed by the end of the drain (at most 20). */
  keys: string[];
  /** Of those, how many the recipient's provider holds as pending (GET /messages/pending). */
  pending_at_recipient: number;
  /** A's `GET /peers` federation entries (waiting and parked messages, last error). */
  peers_at_sender: unknown;
}

export interface FederationOutcome {
  single: PhaseOutcome;
  federated: PhaseOutcome;
  singleLight: PhaseOutcome;
  federatedLight: PhaseOutcome;
  notes: string[];
  /** The machine's 1-minute load average when the scenario started and ended (a shared machine). */
  load_average: { start: number; end: number };
}

/** Wait until `done()` or the time is up; polls on a timer because the events are counted, not awaited. */
async function until(done: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done() && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
  return done();
}

export async function federation(p: Providers, o: FederationOptions): Promise<FederationOutcome> {
  const loadStart = loadavg()[0]!;
  const onA = await registerMany(p.a.api, 'frcpt', o.senders);
  const onB = await registerMany(p.b.api, 'frcpt', o.senders);
  // Senders are new in every phase: a signed message sent again is a replay (the same answer, no
  // new push), and the frames of two phases would otherwise repeat each other.
  const spec = (tag: string, target: BenchServer, recipients: BenchAgent[], light: boolean, frames: number) => ({
    label: `${o.label} ${tag}`,
    tag,
    target,
    senders: light ? 1 : o.senders,
    recipients: light ? recipients.slice(0, 1) : recipients,
    window: light ? 1 : o.window,
    seconds: light ? o.lightSeconds : o.seconds,
    warmupSeconds: light ? Math.min(1, o.warmupSeconds) : o.warmupSeconds,
    framesPerSender: frames,
  });
  const single = await phase(p, spec('single', p.a, onA, false, o.framesPerSender), o);
  // The federated run cannot be faster than twice the single one: its frames are sized from that.
  const fedFrames = Math.ceil((Math.max(single.rate, 100) * (o.seconds + o.warmupSeconds) * 2) / o.senders) + 64;
  const federated = await phase(p, spec('federated', p.b, onB, false, fedFrames), o);
  // One in flight: the rate is one over the round trip; 5,000/s (200 µs) is more than this path does.
  const lightFrames = Math.ceil((o.lightSeconds + 2) * LIGHT_MAX_RATE);
  const singleLight = await phase(p, spec('single-1', p.a, onA, true, lightFrames), o);
  const federatedLight = await phase(p, spec('federated-1', p.b, onB, true, lightFrames), o);
  const load_average = { start: +loadStart.toFixed(2), end: +loadavg()[0]!.toFixed(2) };
  return { single, federated, singleLight, federatedLight, notes: [...p.notes], load_average };
}

/** Per-sender bookkeeping of one phase. */
interface Books {
  sentAt: Map<number, number>[];
  arrived: Set<number>[];
  ok: Set<number>[];
  ids: Set<string>;
  next: number[];
  outstanding: number[];
}

async function phase(p: Providers, s: PhaseSpec, o: FederationOptions): Promise<PhaseOutcome> {
  const receivers = await connectMany(s.target.wsUrl, s.recipients);
  const sockets = await connectMany(p.a.wsUrl, await registerMany(p.a.api, `fs-${s.tag}`, s.senders));
  const frames = await Promise.all(
    sockets.map((x, i) => buildRouteFrames(x.agent, () => s.recipients[i]!.address, i, s.framesPerSender, o.bytes)),
  );
  try {
    return await runPhase(p, s, o, sockets, receivers, frames);
  } finally {
    await Promise.all([...sockets, ...receivers].map((x) => x.close()));
  }
}

async function runPhase(
  p: Providers,
  s: PhaseSpec,
  o: FederationOptions,
  sockets: BenchSocket[],
  receivers: BenchSocket[],
  frames: string[][],
): Promise<PhaseOutcome> {
  const n = sockets.length;
  const b: Books = {
    sentAt: sockets.map(() => new Map()),
    arrived: sockets.map(() => new Set()),
    ok: sockets.map(() => new Set()),
    ids: new Set(),
    next: sockets.map(() => 0),
    outstanding: sockets.map(() => 0),
  };
  const lat = new Latency();
  let routeErrors = 0;
  let duplicates = 0;
  let measuring = false;
  let sending = false;
  let exhausted = false;
  let measuredArrived = 0;
  let firstAt: number | undefined;
  const count = () => ({
    sent: b.next.reduce((x, y) => x + y, 0),
    ok: b.ok.reduce((x, y) => x + y.size, 0),
    arrived: b.arrived.reduce((x, y) => x + y.size, 0),
    inFlight: b.outstanding.reduce((x, y) => x + y, 0),
  });
  const sendOne = (i: number) => {
    const seq = b.next[i]!;
    if (seq >= s.framesPerSender) return void (exhausted = true);
    b.next[i] = seq + 1;
    b.outstanding[i]!++;
    b.sentAt[i]!.set(seq, performance.now());
    sockets[i]!.send(frames[i]![seq]!);
  };
  const refill = (i: number) => {
    while (sending && b.outstanding[i]! < s.window && !exhausted) sendOne(i);
  };
  sockets.forEach((x, i) => {
    x.onRouteResult = (rid, okay) => {
      const seq = Number(rid);
      if (okay) return void b.ok[i]!.add(seq);
      routeErrors++;
      if (b.sentAt[i]!.delete(seq)) b.outstanding[i]!--;
      refill(i);
    };
  });
  receivers.forEach((r) => {
    r.onPush = (m) => {
      r.ack(m.id);
      if (b.ids.has(m.id)) return void duplicates++;
      b.ids.add(m.id);
      const i = m.sender;
      const t0 = b.sentAt[i]?.get(m.seq);
      if (t0 === undefined) {
        // Not in flight: a second copy under another id, or something this phase did not send.
        if (b.arrived[i]?.has(m.seq)) duplicates++;
        return;
      }
      b.sentAt[i]!.delete(m.seq);
      b.arrived[i]!.add(m.seq);
      b.outstanding[i]!--;
      // The slowest first message (the probes below): first contact, key lookups.
      if (b.arrived[i]!.size === 1) firstAt = Math.max(firstAt ?? 0, performance.now() - t0);
      if (measuring) {
        lat.recordMs(performance.now() - t0);
        measuredArrived++;
      }
      refill(i);
    };
  });
  const acker = setInterval(() => {
    for (const r of receivers) r.flushAcks();
  }, ACK_FLUSH_MS);
  let last = 0;
  const stop = progress(s.label, () => {
    const c = count();
    const line = `sent=${c.sent} arrived=${c.arrived} (+${c.arrived - last}/s) in_flight=${c.inFlight} route_errors=${routeErrors} dup=${duplicates} p99=${lat.count ? lat.percentileMs(99).toFixed(2) : '-'}ms`;
    last = c.arrived;
    return line;
  });
  const lastError = () => [...sockets, ...receivers].find((x) => x.lastError)?.lastError ?? '';
  try {
    // One message per sender first, alone: on the federated path the first ones pay for the
    // first connection and B's lookup of each sender's key at A (cached afterwards), which the
    // loaded run should not count. Senders have different addresses, so no two lookups coincide.
    sending = false;
    for (let i = 0; i < n; i++) sendOne(i);
    const probed = () => b.arrived.every((a) => a.size > 0);
    await until(() => probed() || routeErrors > 0, PROBE_TIMEOUT_MS);
    if (!probed()) {
      return outcome(false, 0, lat, firstAt, count(), routeErrors, duplicates, exhausted, lastError());
    }
    sending = true;
    for (let i = 0; i < n; i++) refill(i);
    await new Promise((r) => setTimeout(r, s.warmupSeconds * 1000));
    measuring = true;
    const t0 = performance.now();
    const cpuA = cpuMeter(p.a);
    const cpuB = cpuMeter(p.b);
    await new Promise((r) => setTimeout(r, s.seconds * 1000));
    measuring = false;
    sending = false;
    const ms = performance.now() - t0;
    const cpu = { a: cpuA(), b: cpuB() };
    await until(() => count().inFlight === 0, o.drainMs);
    const out = outcome(
      true,
      perSecond(measuredArrived, ms),
      lat,
      firstAt,
      count(),
      routeErrors,
      duplicates,
      exhausted,
      lastError(),
    );
    // Lost (or late): answered 2xx, not pushed by the end of the drain.
    out.lost = b.sentAt.reduce((x, m, i) => x + [...m.keys()].filter((q) => b.ok[i]!.has(q)).length, 0);
    out.unresolved = b.sentAt.reduce((x, m) => x + m.size, 0) - out.lost;
    if (out.lost + out.unresolved > 0) out.missing = await diagnose(p, s, sockets, receivers, b);
    out.cpu_a = cpu.a;
    out.cpu_b = cpu.b;
    // Server CPU per message received (µs): what one message costs each provider.
    const per = (pct: number) => (out.rate > 0 ? Math.round((pct * 10_000) / out.rate) : undefined);
    out.cpu_us_per_msg = { a: per(cpu.a.server_cpu_pct), b: per(cpu.b.server_cpu_pct) };
    return out;
  } finally {
    stop();
    clearInterval(acker);
    for (const r of receivers) r.flushAcks();
  }
}

/** Looks for the messages still in flight after the drain: pending at the recipient, or waiting at A. */
async function diagnose(
  p: Providers,
  s: PhaseSpec,
  sockets: BenchSocket[],
  receivers: BenchSocket[],
  b: Books,
): Promise<Missing> {
  const get = async (url: string, key: string) => {
    const res = await fetch(url, { headers: { Authorization: `Bearer ${key}` } });
    return res.ok ? ((await res.json()) as Record<string, unknown>) : { status: res.status };
  };
  const keys: string[] = [];
  let pending = 0;
  for (const [i, m] of b.sentAt.entries()) {
    if (m.size === 0) continue;
    for (const q of m.keys()) if (keys.length < 20) keys.push(`${i}/${q}`);
    const page = await get(`${s.target.api}/messages/pending?limit=${DIAG_PAGE}`, receivers[i]!.agent.apiKey);
    const list = (page.messages ?? []) as { payload?: { context?: { s?: number; n?: number } } }[];
    pending += list.filter((x) => x.payload?.context?.s === i && m.has(x.payload.context.n ?? -1)).length;
  }
  const peers = await get(`${p.a.api}/peers`, sockets[0]!.agent.apiKey);
  return { keys, pending_at_recipient: pending, peers_at_sender: peers.federation ?? peers };
}

function outcome(
  measured: boolean,
  rate: number,
  lat: Latency,
  firstAt: number | undefined,
  c: { sent: number; ok: number; arrived: number },
  routeErrors: number,
  duplicates: number,
  exhausted: boolean,
  lastError: string,
): PhaseOutcome {
  return {
    measured,
    rate,
    latency: lat.summary(),
    first_delivery_ms: firstAt === undefined ? undefined : +firstAt.toFixed(3),
    sent: c.sent,
    routed_ok: c.ok,
    route_errors: routeErrors,
    arrived: c.arrived,
    lost: 0,
    unresolved: 0,
    duplicates,
    exhausted,
    last_error: lastError,
  };
}

const ms3 = (x: number) => +x.toFixed(3);

/** The federated figure against the single one: added latency per hop (p50, p99) and the rate ratio. */
export function addedLatency(single: PhaseOutcome, fed: PhaseOutcome): { p50_ms: number; p99_ms: number } {
  return {
    p50_ms: ms3(fed.latency.p50_ms - single.latency.p50_ms),
    p99_ms: ms3(fed.latency.p99_ms - single.latency.p99_ms),
  };
}

/** The scenario's rows for the result files. */
export function federationRows(r: FederationOutcome, o: FederationOptions): ScenarioResult[] {
  const loaded = addedLatency(r.single, r.federated);
  const light = addedLatency(r.singleLight, r.federatedLight);
  const ratio = r.single.rate > 0 ? +(r.federated.rate / r.single.rate).toFixed(3) : undefined;
  const setup = {
    senders: o.senders,
    window: o.window,
    in_flight: o.senders * o.window,
    seconds: o.seconds,
    payload_bytes: o.bytes,
    placement: o.placementNote,
    load_average: r.load_average,
  };
  const phaseNotes = (x: PhaseOutcome, name: string) => [
    ...(x.measured
      ? []
      : [
          `${name}: a sender's first message was refused or did not arrive within ${PROBE_TIMEOUT_MS} ms; not measured${x.last_error ? ` (${x.last_error})` : ''}`,
        ]),
    ...(x.lost
      ? [
          `${name}: ${x.lost} messages answered 2xx and not pushed within the ${o.drainMs} ms drain (LOST, or late)${x.missing ? `; ${x.missing.pending_at_recipient} of them pending at the recipient's provider; sender's peers: ${JSON.stringify(x.missing.peers_at_sender)}` : ''}`,
        ]
      : []),
    ...(x.unresolved ? [`${name}: ${x.unresolved} messages neither answered nor pushed by the end of the drain`] : []),
    ...(x.duplicates ? [`${name}: ${x.duplicates} duplicate pushes`] : []),
    ...(x.route_errors ? [`${name}: ${x.route_errors} routes refused (last: ${x.last_error})`] : []),
    ...(x.exhausted ? [`${name}: a sender used all its pre-signed frames: the rate is a lower bound`] : []),
  ];
  const row = (name: string, title: string, x: PhaseOutcome, extra: Partial<ScenarioResult> = {}): ScenarioResult => ({
    name,
    title,
    value: x.rate,
    unit: 'msg/s',
    latency: x.measured ? x.latency : undefined,
    details: { ...setup, ...x },
    errors: x.lost + x.unresolved + x.duplicates + x.route_errors,
    notes: phaseNotes(x, name),
    ...extra,
  });
  const lightSetup = { ...setup, senders: 1, window: 1, in_flight: 1, seconds: o.lightSeconds };
  const added = `added latency per hop: p50 ${loaded.p50_ms} ms, p99 ${loaded.p99_ms} ms (${o.senders * o.window} in flight); 1 in flight: p50 ${light.p50_ms} ms, p99 ${light.p99_ms} ms`;
  return [
    row('federation_single', '8 one provider, A→A signed 1 KB', r.single, {
      notes: [
        `load average ${r.load_average.start} → ${r.load_average.end}; ${o.placementNote}`,
        ...r.notes,
        ...phaseNotes(r.single, 'single'),
      ],
    }),
    row('federation_federated', '8 federated, A→B signed 1 KB', r.federated, {
      calibrator: 'federation_single',
      ratio,
      details: {
        ...setup,
        ...r.federated,
        added_latency_per_hop_ms: loaded,
        added_latency_per_hop_1_in_flight_ms: light,
        rate_ratio: ratio,
      },
      notes: [
        ...(r.federated.measured ? [added, `federated ÷ single: ${ratio} × msg/s`] : []),
        ...phaseNotes(r.federated, 'federated'),
      ],
    }),
    row('federation_single_1', '8 one provider, 1 in flight', r.singleLight, {
      details: { ...lightSetup, ...r.singleLight },
    }),
    row('federation_federated_1', '8 federated, 1 in flight', r.federatedLight, {
      details: { ...lightSetup, ...r.federatedLight },
    }),
  ];
}
