// What every NATS-backed part of the store (queue, directory, records, secrets) is built from: one
// connection and its JetStream handles, opened by door.ts. Only src/store imports @nats-io/*.

import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';

export interface NatsParts {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  kvm: Kvm;
  /** AMP_NATS_REPLICAS (default 3; 1 for a single server). */
  replicas: number;
  /** Names are prefixed so two deployments (or two tests) can share one NATS: e.g. `AMP_<prefix>_Q`. */
  prefix: string;
  /** How long the connection has been down (ms; 0 while connected): writes stop riding out after a while. */
  downForMs(): number;
  /** Told what the parts recover from on their own (a mirror's consumer recreated): for the log, at warn. */
  warn?: (what: string, err?: unknown) => void;
}
