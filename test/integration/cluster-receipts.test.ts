// Receipts in cluster mode (issue 18): the outbox of kept receipts is shared by the nodes. Two
// in-process relay nodes on one nats-server (replicas 1): a receipt made on node A for a sender
// that is offline reaches it at its next connect on node B, once (taken on B, it is gone on A too);
// a sender online on B with two sessions gets a receipt made on A in both.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { StartOptions } from '../../src/server.js';
import { known } from '../helpers/cluster.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { call, type Registered, register, routeOk, startTestServer, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { closeAllWs, connectWs, type WsClient } from '../helpers/ws.js';

let nats: NatsCluster;
setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 1 });
});
afterAll(async () => {
  await closeAllWs();
  await nats?.close();
});

const started: TestServer[] = [];
afterEach(async () => {
  await closeAllWs();
  await Promise.all(started.splice(0).map((s) => s.close()));
});

async function twoNodes(): Promise<[TestServer, TestServer]> {
  const opts = { store: 'nats', natsUrl: nats.urls, natsPrefix: uniquePrefix('rcpt'), natsReplicas: 1 } as StartOptions;
  const a = await startTestServer(opts);
  started.push(a);
  const b = await startTestServer(opts);
  started.push(b);
  return [a, b];
}

const ws = (t: TestServer, a: Registered): Promise<WsClient> =>
  connectWs(`${t.url.replace(/^http/, 'ws')}/v1/ws`, a.api_key);

const note = (to: string, subject: string) => ({
  to,
  subject,
  payload: { type: 'notification', message: subject },
  options: { receipt: true },
});

async function readOn(t: TestServer, reader: Registered, id: string): Promise<void> {
  const r = await call('POST', `${t.api}/messages/${id}/read`, { key: reader.api_key });
  expect(r.status).toBe(200);
  expect(r.body.read_receipt_sent).toBe(true);
}

const readIds = (c: WsClient): string[] =>
  c.frames
    .list()
    .filter((f) => f?.type === 'message.read')
    .map((f) => f.data.id);

describe('receipts across nodes (nats)', () => {
  it('a sender offline gets a receipt made on another node at its next connect, once', async () => {
    const [a, b] = await twoNodes();
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    const first = await routeOk(a.api, alice, note(bob.address, 'one'));
    await readOn(a, bob, first.id);

    const onB = await ws(b, alice);
    await onB.until(() => readIds(onB).includes(first.id), 'the kept read receipt on node B', 5000);
    await onB.barrier();
    expect(readIds(onB)).toEqual([first.id]);
    await onB.close();

    // Taken on B: gone on A too. A receipt kept after the take comes alone.
    const second = await routeOk(a.api, alice, note(bob.address, 'two'));
    await readOn(a, bob, second.id);
    const onA = await ws(a, alice);
    await onA.until(() => readIds(onA).includes(second.id), 'the second kept read receipt on node A', 5000);
    await onA.barrier();
    expect(readIds(onA)).toEqual([second.id]);
  });

  it('a sender with two sessions on another node gets the receipt in both', async () => {
    const [a, b] = await twoNodes();
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    const s1 = await ws(b, alice);
    const s2 = await ws(b, alice);
    const sent = await routeOk(a.api, alice, note(bob.address, 'both'));
    await readOn(a, bob, sent.id);
    for (const s of [s1, s2]) await s.until(() => readIds(s).includes(sent.id), 'the read receipt', 5000);
    for (const s of [s1, s2]) {
      await s.barrier();
      expect(readIds(s)).toEqual([sent.id]);
    }
  });
});
