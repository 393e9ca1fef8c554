// Review of the queue mirror's catch-up (queue-catch-up.ts): cases it must survive against a real
// nats-server. A node's queue follower is stopped to stand for a consumer that cannot be recreated
// (as the catch-up test in nats-queue.test.ts does).

import { afterAll, describe, expect, it } from 'vitest';
import type { QueuedMessage } from '../../proto/index.js';
import { type NatsDoor, openNats } from '../../src/store/nats/door.js';
import { NatsQueue } from '../../src/store/nats/queue.js';
import type { AppendInput } from '../../src/store/types.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

let counter = 0;
const agentId = () => `agt_${(++counter).toString(16).padStart(24, '0')}`;
const msgId = () => `msg_${Date.now()}_${Math.random().toString(36).slice(2, 10)}`;

function input(id: string): AppendInput {
  const now = Date.now();
  const expiresAtMs = now + 3600_000;
  const msg = {
    id,
    envelope: { version: 'amp/0.1', id, thread_id: id, from: 'a@t.example', to: 'b@t.example', subject: 's' },
    payload: { text: `hello ${id}` },
    queued_at: new Date(now).toISOString(),
    expires_at: new Date(expiresAtMs).toISOString(),
    sender_public_key: '',
    security: { trust_level: 'verified', signature_verified: false, sender_authenticated: true },
  } as unknown as QueuedMessage;
  return { msg, json: JSON.stringify(msg), expiresAtMs, senderId: 'agt_sender', receipt: false };
}

function stopFollower(q: NatsQueue): void {
  (q as unknown as { queueFollower: { stop(): void } }).queueFollower.stop();
}

describe('queue mirror catch-up (review)', () => {
  let nats: NatsCluster;
  const doors: NatsDoor[] = [];
  const queues: NatsQueue[] = [];

  async function node(prefix: string): Promise<{ q: NatsQueue; door: NatsDoor }> {
    const door = await openNats({
      servers: nats.urls,
      name: `r-${doors.length}`,
      replicas: 1,
      prefix,
      timeoutMs: 2000,
    });
    doors.push(door);
    const q = new NatsQueue(door, { maxQueue: 100, relayTtlS: 3600, timeoutMs: 2000 });
    queues.push(q);
    await q.open();
    return { q, door };
  }

  setupOrFailEveryTest(async () => {
    nats = await startNats({ cluster: 1 });
  });
  afterAll(async () => {
    for (const q of queues) await q.close();
    for (const d of doors) await d.close().catch(() => {});
    await nats?.close();
  });

  it('a node opens on a stream whose messages were all acked (a drained relay restarts)', async () => {
    const prefix = uniquePrefix('drained');
    const { q: q2 } = await node(prefix);
    const a = agentId();
    const m = msgId();
    await q2.append(a, input(m)).committed;
    expect(await q2.ack(a, [m], Date.now())).toEqual(['acked']);
    // The restart: a new node opens on the stream (now: no message; first seq 2, last seq 1).
    const opened = node(prefix).then(() => 'opened');
    const bound = new Promise((r) => setTimeout(r, 15_000, 'still opening after 15 s'));
    expect(await Promise.race([opened, bound])).toBe('opened');
  }, 30_000);

  it('catches up past a long run of deleted seqs: an append commits after the stream moved far ahead of the mirror', async () => {
    const prefix = uniquePrefix('gap');
    const { q: q2, door: d2 } = await node(prefix);
    const a = agentId();
    const first = msgId();
    await q2.append(a, input(first)).committed;
    const { q: q1, door: d1 } = await node(prefix);
    expect(q1.lastSeq(a)).toBe(1);
    // Node 1's consumer stops following (as after the loss of the meta leader); meanwhile the
    // other nodes carry on: N messages come and go (delivered and acked; here purged at once).
    stopFollower(q1);
    const fill = q2.subject('x').replace(/\._\.x$/, '.fill');
    const N = Number(process.env.GAP_N ?? 20_000);
    for (let i = 0; i < N; i += 1000) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < Math.min(N, i + 1000); j++) batch.push(d2.js.publish(`${fill}.f${j}`, 'x'));
      await Promise.all(batch);
    }
    await d2.jsm.streams.purge(q2.streamName, { filter: `${fill}.*` });
    const info = await d2.jsm.streams.info(q2.streamName);
    expect(info.state.messages).toBe(1);
    const reads: number[] = [];
    const streams = d1.jsm.streams as unknown as { getMessage: (s: string, q: { seq: number }) => Promise<unknown> };
    const real = streams.getMessage.bind(streams);
    streams.getMessage = (s, q) => {
      reads.push(q.seq);
      return real(s, q);
    };
    const m = msgId();
    const t0 = Date.now();
    const outcome = await q1.append(a, input(m)).committed.then(
      () => 'committed',
      (e: unknown) => `rejected after ${Date.now() - t0} ms: ${String((e as { code?: string }).code ?? e)}`,
    );
    const last = Math.max(...reads);
    expect(outcome, `${reads.length} message gets, the highest of seq ${last} (stream last seq ${N + 2})`).toBe(
      'committed',
    );
    expect(q1.readFrom(a, 0, 10, Date.now()).entries.map((e) => e.id)).toEqual([first, m]);
  }, 60_000);
});
