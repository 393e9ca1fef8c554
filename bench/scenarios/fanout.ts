// Scenario 4: push fan-out to many connected sockets, one agent each. Measures the server's RSS
// per idle socket (before/after connecting, after a settle), then routes from a few senders to
// recipients spread over all sockets and times route → receipt.

import { connectMany, registerMany } from '../lib/client.js';
import type { BenchServer } from '../lib/proc.js';
import { closePairs, closedLoop, type RoutingOutcome } from './routing.js';

const SETTLE_MS = 2000;

export interface FanoutOptions {
  label: string;
  sockets: number;
  senders: number;
  window: number;
  seconds: number;
  warmupSeconds: number;
  bytes: number;
}

export async function fanout(server: BenchServer, o: FanoutOptions): Promise<RoutingOutcome> {
  const t0 = performance.now();
  const recipients = await registerMany(server.api, 'fan', o.sockets, 128);
  const senderAgents = await registerMany(server.api, 'fansend', o.senders);
  const registerMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const rssBefore = server.rss();
  const t1 = performance.now();
  const receivers = await connectMany(server.wsUrl, recipients, 256);
  const connectMs = performance.now() - t1;
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const rssAfter = server.rss();
  const senders = await connectMany(server.wsUrl, senderAgents);
  const n = recipients.length;
  // Sender i's message seq goes to a recipient spread over all of them (a stride prime to n).
  const stride = 7919 % n || 1;
  const setup = { senders, receivers, recipients, pick: (i: number, seq: number) => (i * 104_729 + seq * stride) % n };
  const out = await closedLoop(server, setup, {
    label: o.label,
    window: o.window,
    seconds: o.seconds,
    warmupSeconds: o.warmupSeconds,
    bytes: o.bytes,
    signed: false,
    framesPerSender: 0,
  });
  await closePairs(setup);
  const perSocket = (rssAfter - rssBefore) / o.sockets;
  out.details = {
    ...out.details,
    sockets: o.sockets,
    register_s: +(registerMs / 1000).toFixed(2),
    connect_s: +(connectMs / 1000).toFixed(2),
    server_rss_before_mb: +(rssBefore / 1048576).toFixed(1),
    server_rss_connected_mb: +(rssAfter / 1048576).toFixed(1),
    rss_per_idle_socket_kb: +(perSocket / 1024).toFixed(2),
  };
  return out;
}
