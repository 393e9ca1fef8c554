// Cluster mode, §12.5 across nodes: an idempotency key is claimed in the shared IDEM bucket before
// delivery (NatsRecords.claimIdempotency). Two "nodes" (each its own NATS connection) on one
// nats-server; then two relay nodes racing one key with different bodies.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { StartOptions } from '../../src/server.js';
import { type NatsDoor, openNats } from '../../src/store/nats/door.js';
import { NatsRecords } from '../../src/store/nats/records.js';
import type { IdempotencyRecord } from '../../src/store/types.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { call, register, route, startTestServer, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { until } from '../helpers/ws.js';

let nats: NatsCluster;
const doors: NatsDoor[] = [];
const recs: NatsRecords[] = [];
const servers: TestServer[] = [];

setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 1 });
});
afterEach(async () => {
  for (const r of recs.splice(0)) r.close();
  await Promise.all(doors.splice(0).map((d) => d.close()));
  await Promise.all(servers.splice(0).map((s) => s.close()));
});
afterAll(async () => nats?.close());

async function twoNodes(tag: string): Promise<[NatsRecords, NatsRecords]> {
  const prefix = uniquePrefix(tag);
  const open = async (name: string) => {
    const door = await openNats({ servers: nats.urls, name, replicas: 1, prefix });
    doors.push(door);
    const rec = new NatsRecords(door, { idempotencyTtlMs: 60_000 });
    recs.push(rec);
    await rec.open();
    return rec;
  };
  return [await open('node-1'), await open('node-2')];
}

const answer = (id: string): IdempotencyRecord => ({
  digest: 'd1',
  result: { id, status: 'queued' },
  expiresAt: Date.now() + 60_000,
});

describe('NatsRecords.claimIdempotency across two nodes', () => {
  it('one node claims; the other waits for its stored answer; the pending claim is no answer', async () => {
    const [n1, n2] = await twoNodes('claim');
    const c1 = n1.claimIdempotency('s', 'k', 'd1', 10_000);
    const c2 = n2.claimIdempotency('s', 'k', 'd1', 10_000);
    const first = await Promise.race([
      c1.then((got) => ({ got, node: n1, other: c2 })),
      c2.then((got) => ({ got, node: n2, other: c1 })),
    ]);
    expect(first.got).toBe('claimed');
    for (const n of [n1, n2]) expect(n.getIdempotency('s', 'k', Date.now())).toBeUndefined();
    const stored = answer('msg_1');
    await first.node.putIdempotency('s', 'k', stored);
    expect(await first.other).toEqual(stored);
  });

  it('a claim released (stored expired) or whose owner died is taken by the other node', async () => {
    const [n1, n2] = await twoNodes('claim-dead');
    expect(await n1.claimIdempotency('s', 'released', 'd1', 10_000)).toBe('claimed');
    const waiting = n2.claimIdempotency('s', 'released', 'd1', 10_000);
    await n1.putIdempotency('s', 'released', { digest: 'd1', result: {}, expiresAt: 0 });
    expect(await waiting).toBe('claimed');
    // The owner never answers: its claim runs out after claimMs, then the other node has it.
    expect(await n1.claimIdempotency('s', 'dead', 'd1', 400)).toBe('claimed');
    const t0 = Date.now();
    expect(await n2.claimIdempotency('s', 'dead', 'd1', 400)).toBe('claimed');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
  });
});

describe('two relay nodes, one Idempotency-Key, different bodies at once', () => {
  it('one 200 and one 409 duplicate_idempotency_key; one message stored', async () => {
    const opts = { store: 'nats', natsUrl: nats.urls, natsPrefix: uniquePrefix('claim-route'), natsReplicas: 1 };
    for (let i = 0; i < 2; i++) servers.push(await startTestServer(opts as StartOptions));
    const [a, b] = servers as [TestServer, TestServer];
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    const knows = async () => (await call('GET', `${b.api}/agents/me`, { key: alice.api_key })).status === 200;
    expect(await until(knows, 5000)).toBe(true);
    const body = (subject: string) => ({
      to: bob.address,
      subject,
      payload: { type: 'notification', message: subject },
    });
    const h = { 'Idempotency-Key': 'same' };
    const [r1, r2] = await Promise.all([route(a.api, alice, body('one'), h), route(b.api, alice, body('two'), h)]);
    expect([r1.status, r2.status].sort()).toEqual([200, 409]);
    expect([r1, r2].find((r) => r.status === 409)!.body.error).toBe('duplicate_idempotency_key');
    const pending = await call('GET', `${a.api}/messages/pending?limit=10`, { key: bob.api_key });
    expect(pending.body.messages.map((m: { id: string }) => m.id)).toEqual([
      [r1, r2].find((r) => r.status === 200)!.body.id,
    ]);
  });
});
