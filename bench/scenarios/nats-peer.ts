// The peer in the same run (issue 19): Debian's nats-server with JetStream (file storage, one
// replica) on the server's core, and the loop of the trusted WS→WS scenario done the NATS way:
// per pair, a publisher keeps `window` JetStream publishes in flight (a new one on each publish
// ack) on its own subject, and a push consumer of that subject acks every message it is given.
// The rate is publish acks per second over the measured window; the latency is publish → the
// consumer's callback. JetStream acknowledges a publish once the message is written to its file
// store, without an fsync per message (it syncs on an interval); amp-relay answers a route after
// an fsync. The report says so.

import { execFileSync } from 'node:child_process';
import { AckPolicy, jetstream, jetstreamManager, type JsMsg, StorageType } from '@nats-io/jetstream';
import { connect, createInbox } from '@nats-io/transport-node';
import { type NatsCluster, startNats } from '../../test/helpers/nats.js';
import { payload } from '../lib/client.js';
import { Latency, type LatencySummary } from '../lib/hist.js';
import { cpuSecondsOf } from '../lib/proc.js';
import { progress } from '../lib/report.js';

const DRAIN_WAIT_MS = 15_000;
const STREAM = 'PEER';

export interface PeerOptions {
  label: string;
  pairs: number;
  window: number;
  seconds: number;
  warmupSeconds: number;
  bytes: number;
}

export interface PeerOutcome {
  rate: number;
  latency: LatencySummary;
  cpu_seconds_per_s: number;
  errors: number;
  notes: string[];
}

/** Pin every thread of `pid` to `cores` (taskset -a -p), when a core list is given. */
function pin(pid: number, cores: string | undefined): void {
  if (cores !== undefined) execFileSync('taskset', ['-a', '-cp', cores, String(pid)], { stdio: 'ignore' });
}

export async function natsPeer(cores: string | undefined, o: PeerOptions): Promise<PeerOutcome> {
  const nats: NatsCluster = await startNats({ cluster: 1 });
  const server = nats.servers[0]!;
  try {
    pin(server.pid!, cores);
    const nc = await connect({ servers: nats.urls[0]! });
    try {
      return await loop(nc, server.pid!, o);
    } finally {
      await nc.close();
    }
  } finally {
    await nats.close();
  }
}

async function loop(nc: Awaited<ReturnType<typeof connect>>, pid: number, o: PeerOptions): Promise<PeerOutcome> {
  const jsm = await jetstreamManager(nc);
  const js = jetstream(nc);
  await jsm.streams.add({ name: STREAM, subjects: ['peer.>'], storage: StorageType.File, num_replicas: 1 });
  const lat = new Latency();
  let measuring = false;
  let stopping = false;
  let acked = 0;
  let measuredAcked = 0;
  let received = 0;
  let inFlight = 0;
  let errors = 0;
  const sentAt = new Map<string, number>();
  const consumers = [];
  for (let i = 0; i < o.pairs; i++) {
    const name = `c${i}`;
    await jsm.consumers.add(STREAM, {
      durable_name: name,
      deliver_subject: createInbox(),
      filter_subject: `peer.${i}`,
      ack_policy: AckPolicy.Explicit,
      max_ack_pending: o.window * 4,
    });
    const c = await js.consumers.getPushConsumer(STREAM, name);
    consumers.push(
      await c.consume({
        callback: (m: JsMsg) => {
          const key = m.headers?.get('Nats-Msg-Id') ?? '';
          const t0 = sentAt.get(key);
          if (t0 !== undefined) {
            sentAt.delete(key);
            if (measuring) lat.recordMs(performance.now() - t0);
          }
          received++;
          m.ack();
        },
      }),
    );
  }
  const body = new TextEncoder().encode(JSON.stringify(payload(0, 0, o.bytes)));
  const next = new Array<number>(o.pairs).fill(0);
  const sendOne = (i: number): void => {
    const id = `${i}-${next[i]!++}`;
    sentAt.set(id, performance.now());
    inFlight++;
    js.publish(`peer.${i}`, body, { msgID: id }).then(
      () => {
        inFlight--;
        acked++;
        if (measuring) measuredAcked++;
        if (!stopping) sendOne(i);
      },
      () => {
        inFlight--;
        errors++;
        if (!stopping) sendOne(i);
      },
    );
  };
  let last = 0;
  const stop = progress(o.label, () => {
    const line = `acked=${acked} (+${acked - last}/s) received=${received} in_flight=${inFlight}`;
    last = acked;
    return line;
  });
  for (let i = 0; i < o.pairs; i++) for (let w = 0; w < o.window; w++) sendOne(i);
  await new Promise((r) => setTimeout(r, o.warmupSeconds * 1000));
  measuring = true;
  const cpu0 = cpuSecondsOf(pid);
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, o.seconds * 1000));
  measuring = false;
  const ms = performance.now() - t0;
  const cpu = cpuSecondsOf(pid) - cpu0;
  stopping = true;
  const end = Date.now() + DRAIN_WAIT_MS;
  while ((inFlight > 0 || received < acked) && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  stop();
  for (const c of consumers) await c.close();
  const drained = inFlight === 0 && received >= acked;
  return {
    rate: Math.round((measuredAcked * 1000) / ms),
    latency: lat.summary(),
    cpu_seconds_per_s: +((cpu * 1000) / ms).toFixed(2),
    errors,
    notes: drained ? [] : [`not drained within ${DRAIN_WAIT_MS} ms: ${received} of ${acked} received`],
  };
}
