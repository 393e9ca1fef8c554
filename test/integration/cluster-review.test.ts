// Review of cluster mode (issue 18): behaviours the relay has on one LMDB node, checked with two
// in-process relay nodes on one nats-server (replicas 1). Every test runs in both modes: in lmdb
// mode "both nodes" are the same server, so the test states what the single node does; a test
// failing only in nats mode is a cluster-mode defect.

import { sign } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { StartOptions } from '../../src/server.js';
import { known } from '../helpers/cluster.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import {
  call,
  newKeypair,
  register,
  type Registered,
  route,
  routeOk,
  startTestServer,
  type TestServer,
} from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { closeAllWs, connectWs, until } from '../helpers/ws.js';

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

/** Two nodes of one deployment (nats), or one LMDB server twice. */
async function nodes(mode: 'lmdb' | 'nats', extra: StartOptions = {}): Promise<[TestServer, TestServer]> {
  if (mode === 'lmdb') {
    const t = await startTestServer(extra);
    started.push(t);
    return [t, t];
  }
  const prefix = uniquePrefix('review');
  const opts = { store: 'nats', natsUrl: nats.urls, natsPrefix: prefix, natsReplicas: 1, ...extra } as StartOptions;
  const a = await startTestServer(opts);
  started.push(a);
  const b = await startTestServer(opts);
  started.push(b);
  return [a, b];
}

const note = (to: string, subject: string, more: Record<string, unknown> = {}) => ({
  to,
  subject,
  payload: { type: 'notification', message: subject },
  ...more,
});

const pendingIds = async (api: string, a: Registered): Promise<string[]> => {
  const r = await call('GET', `${api}/messages/pending?limit=100`, { key: a.api_key });
  expect(r.status).toBe(200);
  return r.body.messages.map((m: { id: string }) => m.id);
};

describe.each(['lmdb', 'nats'] as const)('cluster review (%s)', (mode) => {
  it('defect: a read receipt does not reach the sender connected to another node', async () => {
    const [a, b] = await nodes(mode);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    const aliceWs = await connectWs(b.url.replace(/^http/, 'ws') + '/v1/ws', alice.api_key);
    const sent = await routeOk(a.api, alice, note(bob.address, 'read me', { options: { receipt: true } }));
    const read = await call('POST', `${a.api}/messages/${sent.id}/read`, { key: bob.api_key });
    expect(read.status).toBe(200);
    expect(read.body.read_receipt_sent).toBe(true);
    const f = await aliceWs.next((x) => x?.type === 'message.read' && x.data?.id === sent.id, 5000);
    expect(f.data.reader).toBe(bob.address);
  });

  it('defect: a delivery receipt does not reach the sender connected to another node', async () => {
    const [a, b] = await nodes(mode);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    const aliceWs = await connectWs(b.url.replace(/^http/, 'ws') + '/v1/ws', alice.api_key);
    const sent = await routeOk(a.api, alice, note(bob.address, 'deliver me', { options: { receipt: true } }));
    // Bob takes it on node A (the first pending list that contains it is a hand-over).
    expect(await pendingIds(a.api, bob)).toEqual([sent.id]);
    const f = await aliceWs.next((x) => x?.type === 'message.delivered' && x.data?.id === sent.id, 5000);
    expect(f.data.to).toBe(bob.address);
  });

  it('defect: one Idempotency-Key sent to two nodes at once stores two messages', async () => {
    const [a, b] = await nodes(mode);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    await known(b.api, bob);
    for (let i = 0; i < 5; i++) {
      const body = note(bob.address, `twice ${i}`);
      const h = { 'Idempotency-Key': `k-${i}` };
      const [r1, r2] = await Promise.all([route(a.api, alice, body, h), route(b.api, alice, body, h)]);
      expect([r1.status, r2.status]).toEqual([200, 200]);
      expect(r2.body.id).toBe(r1.body.id);
    }
    expect(await pendingIds(a.api, bob)).toHaveLength(5);
  });

  it('a retry of an Idempotency-Key on the other node right after the 2xx answers the original result', async () => {
    const [a, b] = await nodes(mode);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    for (let i = 0; i < 10; i++) {
      const body = note(bob.address, `retry ${i}`);
      const h = { 'Idempotency-Key': `r-${i}` };
      const r1 = await route(a.api, alice, body, h);
      const r2 = await route(b.api, alice, body, h);
      expect(r1.status).toBe(200);
      expect(r2.status).toBe(200);
      expect(r2.body.id).toBe(r1.body.id);
    }
    expect(await pendingIds(b.api, bob)).toHaveLength(10);
  });

  it('defect: expired messages keep the queue full (queue_full while nothing is pending)', async () => {
    const [a] = await nodes(mode, { maxQueue: 2 } as StartOptions);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    const expiry = Date.now() + 1500;
    const soon = new Date(expiry).toISOString();
    await routeOk(a.api, alice, note(bob.address, 'short 1', { expires_at: soon }));
    await routeOk(a.api, alice, note(bob.address, 'short 2', { expires_at: soon }));
    const full = await route(a.api, alice, note(bob.address, 'over the cap'));
    expect(full.status).toBe(429);
    expect(full.body.error).toBe('queue_full');
    // Both expire: nothing pending, so there is room again (as on one LMDB node).
    // Their expiry is a known instant: wait for it (not a guess), then nothing is pending.
    await new Promise((r) => setTimeout(r, expiry + 100 - Date.now()));
    expect(await pendingIds(a.api, bob)).toEqual([]);
    const again = await route(a.api, alice, note(bob.address, 'after expiry'));
    expect(again.status, JSON.stringify(again.body)).toBe(200);
  });

  it('queue_full at the cap counts messages routed on either node', async () => {
    const [a, b] = await nodes(mode, { maxQueue: 3 } as StartOptions);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    const answers = await Promise.all(
      [a, b, a, b, a, b].map((t, i) => route(t.api, alice, note(bob.address, `cap ${i}`))),
    );
    const ok = answers.filter((r) => r.status === 200);
    const full = answers.filter((r) => r.status === 429);
    expect(ok).toHaveLength(3);
    expect(full).toHaveLength(3);
    for (const r of full) expect(r.body.error).toBe('queue_full');
    expect(await until(async () => (await pendingIds(b.api, bob)).length === 3, 3000)).toBe(true);
    expect((await pendingIds(b.api, bob)).sort()).toEqual(ok.map((r) => r.body.id).sort());
  });

  it('defect: queue_full refused by the stream (a race across nodes) lacks details.recipient', async () => {
    const [a, b] = await nodes(mode, { maxQueue: 3 } as StartOptions);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    const answers = await Promise.all(
      [a, b, a, b, a, b, a, b].map((t, i) => route(t.api, alice, note(bob.address, `cap ${i}`))),
    );
    const full = answers.filter((r) => r.status === 429);
    expect(full.length).toBe(5);
    for (const r of full) {
      expect(r.body.details).toEqual({ recipient: bob.address, limit: 3 });
      expect(r.headers.get('retry-after')).toBe(answers.find((x) => x.status === 429)!.headers.get('retry-after'));
    }
  });

  it('a REST batch ack on the other node: gone everywhere, not pushed again on reconnect', async () => {
    const [a, b] = await nodes(mode);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, bob);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await routeOk(a.api, alice, note(bob.address, `m${i}`))).id);
    expect(await until(async () => (await pendingIds(b.api, bob)).length === 3, 5000)).toBe(true);
    const ack = await call('POST', `${b.api}/messages/pending/ack`, { key: bob.api_key, json: { ids } });
    expect(ack.status).toBe(200);
    expect(await until(async () => (await pendingIds(a.api, bob)).length === 0, 3000)).toBe(true);
    const again = await call('POST', `${a.api}/messages/pending/ack`, { key: bob.api_key, json: { ids } });
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    // A socket on node A gets nothing of them; a new message after them arrives.
    const ws = await connectWs(a.url.replace(/^http/, 'ws') + '/v1/ws', bob.api_key);
    expect(ws.connected.data.pending_count).toBe(0);
    const last = await routeOk(b.api, alice, note(bob.address, 'after'));
    const f = await ws.next((x) => x?.type === 'message.new', 5000);
    expect(f.data.id).toBe(last.id);
  });

  it('messages routed on both nodes reach a socket once each, in a single stream', async () => {
    const [a, b] = await nodes(mode);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, alice);
    await known(b.api, bob);
    const ws = await connectWs(a.url.replace(/^http/, 'ws') + '/v1/ws', bob.api_key);
    const sent = await Promise.all(
      Array.from({ length: 40 }, (_, i) => routeOk(i % 2 ? b.api : a.api, alice, note(bob.address, `n${i}`))),
    );
    const want = new Set(sent.map((r) => r.id));
    const got: string[] = [];
    while (got.length < want.size) got.push((await ws.next((x) => x?.type === 'message.new', 5000)).data.id);
    expect(new Set(got)).toEqual(want);
    expect(got).toHaveLength(want.size);
    // Acked over WS: none pushed again to a new socket on the other node.
    ws.sendText({ type: 'ack', ids: got, request_id: 'all' });
    expect((await ws.nextType('ack.result', 'all')).data).toEqual({ acknowledged: 40 });
    const ws2 = await connectWs(b.url.replace(/^http/, 'ws') + '/v1/ws', bob.api_key);
    // Node B may see the ack event a moment later; pending_count settles at 0.
    expect(await until(async () => (await pendingIds(b.api, bob)).length === 0, 3000)).toBe(true);
    const marker = await routeOk(a.api, alice, note(bob.address, 'marker'));
    const first = await ws2.next((x) => x?.type === 'message.new', 5000);
    expect(first.data.id).toBe(marker.id);
  });

  it('deregistration on one node: the name is held on every node and the queue is gone', async () => {
    const [a, b] = await nodes(mode);
    const alice = await register(a.api, 'alice', 'acme');
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, bob);
    await routeOk(a.api, alice, note(bob.address, 'doomed'));
    const del = await call('DELETE', `${b.api}/agents/me`, { key: bob.api_key });
    expect(del.status).toBeLessThan(300);
    expect(
      await until(async () => (await call('GET', `${a.api}/agents/me`, { key: bob.api_key })).status === 401, 3000),
    ).toBe(true);
    for (const t of [a, b]) {
      const again = await register(t.api, 'bob', 'acme').then(
        () => 201,
        (e: Error) => Number(/failed: (\d+)/.exec(e.message)?.[1]),
      );
      expect(again).toBe(409);
    }
    const q = await route(a.api, alice, note(bob.address, 'to nobody'));
    expect(q.status).toBe(404);
  });

  it('a keypair rotated on one node closes the signed sessions on the other (4003 key_rotated)', async () => {
    const [a, b] = await nodes(mode);
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, bob);
    const signedWs = await connectWs(a.url.replace(/^http/, 'ws') + '/v1/ws', { signedBy: bob });
    const keyWs = await connectWs(a.url.replace(/^http/, 'ws') + '/v1/ws', bob.api_key);
    const nk = newKeypair();
    const r = await call('POST', `${b.api}/auth/rotate-keys`, {
      key: bob.api_key,
      json: {
        new_public_key: nk.publicPem,
        key_algorithm: 'Ed25519',
        proof: sign(null, Buffer.from(nk.publicPem, 'utf8'), bob.keys.privateKey).toString('base64'),
      },
    });
    expect(r.status).toBe(200);
    const c = await signedWs.closed(5000);
    expect([c.code, c.reason]).toEqual([4003, 'key_rotated']);
    // The API-key socket stays; the old keypair no longer signs in on either node.
    await keyWs.barrier();
    for (const t of [a, b]) {
      await expect(connectWs(t.url.replace(/^http/, 'ws') + '/v1/ws', { signedBy: bob })).rejects.toThrow();
    }
  });

  it('an API key rotated on one node: the old key works for its grace on the other, the new key at once', async () => {
    const [a, b] = await nodes(mode);
    const bob = await register(a.api, 'bob', 'acme');
    await known(b.api, bob);
    const r = await call('POST', `${b.api}/auth/rotate-key`, { key: bob.api_key });
    expect(r.status).toBe(200);
    const fresh = r.body.api_key as string;
    expect(
      await until(async () => (await call('GET', `${a.api}/agents/me`, { key: fresh })).status === 200, 3000),
    ).toBe(true);
    expect((await call('GET', `${a.api}/agents/me`, { key: bob.api_key })).status).toBe(200);
  });

  it('two nodes share the AID signing keys (one JWKS)', async () => {
    const [a, b] = await nodes(mode);
    const j1 = await call('GET', `${a.url}/.well-known/jwks.json`);
    const j2 = await call('GET', `${b.url}/.well-known/jwks.json`);
    expect(j1.status).toBe(200);
    expect(j2.body).toEqual(j1.body);
  });

  it('a registration race for one name on two nodes: one 201, one 409', async () => {
    const [a, b] = await nodes(mode);
    for (let i = 0; i < 5; i++) {
      const body = (t: TestServer) =>
        register(t.api, `racer${i}`, 'acme').then(
          () => 201,
          (e: Error) => Number(/failed: (\d+)/.exec(e.message)?.[1]),
        );
      const codes = await Promise.all([body(a), body(b)]);
      expect(codes.sort()).toEqual([201, 409]);
    }
  });
});
