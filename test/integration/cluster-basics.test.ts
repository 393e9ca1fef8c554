// Cluster mode (AMP_STORE=nats): two relay processes on one 3-server NATS JetStream cluster share
// one directory and one queue. An agent registered on node 1 authenticates on node 2; a message
// routed on node 1 is pushed to the agent's socket on node 2; acked on node 2, it is gone from node
// 1's pending list. Two nodes racing for one name give one 201 and one 409. A revoked key is
// refused by every node within one second; a suspended agent's sockets close with 4003 on every node.

import { afterAll, describe, expect, it } from 'vitest';
import { mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import { CLUSTER_PUBLIC_URL, type RelayCluster, startRelays } from '../helpers/cluster.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { call, newKeypair, register, type Registered, routeOk } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { closeAllWs, connectWs, until } from '../helpers/ws.js';

/** How long another node may take to see a change (the KV watch latency; generous for 2 shared cores). */
const SEEN_WITHIN_MS = 3000;

let nats: NatsCluster;
let relays: RelayCluster;
const node = (i: number) => relays.nodes[i]!;

setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 3 });
  relays = await startRelays(nats, { nodes: 2, prefix: uniquePrefix('basics') });
});
afterAll(async () => {
  await closeAllWs();
  await relays?.close();
  await nats?.close();
});

const note = (to: string, subject: string) => ({ to, subject, payload: { type: 'notification', message: subject } });

/** Poll `probe` until it holds; fails with `what` after `ms`. */
async function eventually(what: string, probe: () => Promise<boolean>, ms = SEEN_WITHIN_MS): Promise<void> {
  if (!(await until(probe, ms))) throw new Error(`not within ${ms} ms: ${what}`);
}

const pendingIds = async (api: string, a: Registered): Promise<string[]> => {
  const r = await call('GET', `${api}/messages/pending?limit=100`, { key: a.api_key });
  expect(r.status).toBe(200);
  return r.body.messages.map((m: { id: string }) => m.id);
};

describe('one directory and one queue across nodes', () => {
  it('an agent registered on node 1 authenticates on node 2 (REST and WebSocket, API key and signed auth)', async () => {
    const bob = await register(node(0).api, 'bob', 'acme');
    await eventually('node 2 knows the agent', async () => {
      const r = await call('GET', `${node(1).api}/messages/pending`, { key: bob.api_key });
      return r.status === 200;
    });
    const byKey = await connectWs(node(1).wsUrl, bob.api_key);
    expect(byKey.connected.data.address).toBe(bob.address);
    const signed = await connectWs(node(1).wsUrl, { signedBy: bob });
    expect(signed.connected.data.address).toBe(bob.address);
    // An unknown key is still refused there: node 2 does not accept anything.
    const bad = await call('GET', `${node(1).api}/messages/pending`, { key: `${bob.api_key.slice(0, -4)}xxxx` });
    expect(bad.status).toBe(401);
  });

  it('a message routed on node 1 is pushed to the socket on node 2; acked on node 2, gone from node 1', async () => {
    const alice = await register(node(0).api, 'alice2', 'acme');
    const carol = await register(node(0).api, 'carol2', 'acme');
    await eventually('node 2 knows carol', async () => {
      return (await call('GET', `${node(1).api}/messages/pending`, { key: carol.api_key })).status === 200;
    });
    const ws = await connectWs(node(1).wsUrl, carol.api_key);
    const sent = await routeOk(node(0).api, alice, note(carol.address, 'across'));
    const pushed = await ws.next((f) => f?.type === 'message.new' && f.data?.id === sent.id, 5000);
    expect(pushed.data.envelope.from).toBe(alice.address);
    expect(pushed.data.payload).toEqual({ type: 'notification', message: 'across' });
    // Still pending everywhere until acked.
    expect(await pendingIds(node(0).api, carol)).toEqual([sent.id]);

    ws.sendText({ type: 'ack', ids: [sent.id], request_id: 'a1' });
    expect((await ws.nextType('ack.result', 'a1')).data).toEqual({ acknowledged: 1 });
    expect(await pendingIds(node(1).api, carol)).toEqual([]);
    await eventually('node 1 sees the ack', async () => (await pendingIds(node(0).api, carol)).length === 0);
    // Acked on node 2, an ack on node 1 finds it already acked.
    await eventually('node 1 reports it already acked', async () => {
      const again = await call('DELETE', `${node(0).api}/messages/pending?id=${sent.id}`, { key: carol.api_key });
      return again.status === 200 && again.body.already_acked === true;
    });
  });

  it('a REST ack on node 2 of a message routed over node 1 (no socket): gone from both', async () => {
    const alice = await register(node(0).api, 'alice3', 'acme');
    const dave = await register(node(0).api, 'dave3', 'acme');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await routeOk(node(0).api, alice, note(dave.address, `m${i}`))).id);
    await eventually('node 2 lists all five in order', async () => {
      const r = await call('GET', `${node(1).api}/messages/pending?limit=100`, { key: dave.api_key });
      return (
        r.status === 200 && JSON.stringify(r.body.messages.map((m: { id: string }) => m.id)) === JSON.stringify(ids)
      );
    });
    const ack = await call('POST', `${node(1).api}/messages/pending/ack`, {
      key: dave.api_key,
      json: { ids: ids.slice(0, 3) },
    });
    expect(ack.body).toEqual({ acknowledged: 3 });
    await eventually('node 1 lists the two left', async () => {
      return JSON.stringify(await pendingIds(node(0).api, dave)) === JSON.stringify(ids.slice(3));
    });
  });

  it('presence is cluster-wide: a socket on node 2 shows the agent online on node 1, and offline once closed', async () => {
    const alice = await register(node(0).api, 'alice4', 'acme');
    const erin = await register(node(0).api, 'erin4', 'acme');
    await eventually('node 2 knows erin', async () => {
      return (await call('GET', `${node(1).api}/messages/pending`, { key: erin.api_key })).status === 200;
    });
    const online = async (n: number) =>
      (await call('GET', `${node(n).api}/agents/resolve/${erin.address}`, { key: alice.api_key })).body.online;
    expect(await online(0)).toBe(false);
    const ws = await connectWs(node(1).wsUrl, erin.api_key);
    expect(await online(1)).toBe(true);
    await eventually('node 1 shows erin online', async () => (await online(0)) === true);
    // Routed on node 1, pushed by node 2.
    const r = await routeOk(node(0).api, alice, note(erin.address, 'online?'));
    await ws.next((f) => f?.type === 'message.new' && f.data?.id === r.id, 5000);
    await ws.close();
    await eventually('node 1 shows erin offline', async () => (await online(0)) === false);
  });
});

describe('uniqueness and revocation across nodes', () => {
  it('two nodes racing to register one name: one 201 and one 409 name_taken, every time', async () => {
    for (let i = 0; i < 8; i++) {
      const name = `race${i}`;
      const attempt = (api: string) =>
        call('POST', `${api}/register`, {
          json: { name, tenant: 'acme', public_key: newKeypair().publicPem, key_algorithm: 'Ed25519' },
        });
      const [a, b] = await Promise.all([attempt(node(0).api), attempt(node(1).api)]);
      const statuses = [a.status, b.status].sort();
      expect(statuses, JSON.stringify([a.body, b.body])).toEqual([201, 409]);
      const loser = a.status === 409 ? a : b;
      expect(loser.body.error).toBe('name_taken');
      // Both nodes agree on the one owner.
      const winner = (a.status === 201 ? a : b).body;
      for (const n of [node(0), node(1)]) {
        await eventually(`node ${n.id} resolves ${name} to the winner`, async () => {
          const r = await call('GET', `${n.api}/messages/pending`, { key: winner.api_key });
          return r.status === 200;
        });
      }
    }
  });

  it('the same public key registered on two nodes at once: one wins', async () => {
    const keys = newKeypair();
    const attempt = (api: string, name: string) =>
      call('POST', `${api}/register`, {
        json: { name, tenant: 'acme', public_key: keys.publicPem, key_algorithm: 'Ed25519' },
      });
    const [a, b] = await Promise.all([attempt(node(0).api, 'samekey-a'), attempt(node(1).api, 'samekey-b')]);
    expect(
      [a.status, b.status].filter((s) => s === 201),
      JSON.stringify([a.body, b.body]),
    ).toHaveLength(1);
    expect([a.status, b.status].filter((s) => s === 409)).toHaveLength(1);
    expect((a.status === 409 ? a : b).body.error).toBe('key_already_registered');
  });

  it('a key revoked on node 1 is refused by every node within one second', async () => {
    const frank = await register(node(0).api, 'frank', 'acme');
    await eventually('node 2 knows frank', async () => {
      return (await call('GET', `${node(1).api}/messages/pending`, { key: frank.api_key })).status === 200;
    });
    const t0 = Date.now();
    const rev = await call('DELETE', `${node(0).api}/auth/revoke-key`, { key: frank.api_key });
    expect(rev.body.revoked).toBe(true);
    const refusedAt = await Promise.all(
      relays.nodes.map(async (n) => {
        const ok = await until(
          async () => (await call('GET', `${n.api}/messages/pending`, { key: frank.api_key })).status === 401,
          1000,
        );
        return ok ? Date.now() - t0 : Number.POSITIVE_INFINITY;
      }),
    );
    for (const ms of refusedAt) expect(ms).toBeLessThanOrEqual(1000);
  });

  it("a key revoked on node 1: the key's sockets close with 4003 key_revoked on every node", async () => {
    const hank = await register(node(0).api, 'hank', 'acme');
    await eventually('node 2 knows hank', async () => {
      return (await call('GET', `${node(1).api}/messages/pending`, { key: hank.api_key })).status === 200;
    });
    const on1 = await connectWs(node(0).wsUrl, hank.api_key);
    const on2 = await connectWs(node(1).wsUrl, hank.api_key);
    const rev = await call('DELETE', `${node(0).api}/auth/revoke-key`, { key: hank.api_key });
    expect(rev.body.revoked).toBe(true);
    expect(await on1.closed(2000)).toEqual({ code: 4003, reason: 'key_revoked' });
    expect(await on2.closed(2000)).toEqual({ code: 4003, reason: 'key_revoked' });
  });

  it("a suspended agent's sockets close with 4003 agent_suspended on every node", async () => {
    const gina = await register(node(0).api, 'gina', 'acme');
    await eventually('node 2 knows gina', async () => {
      return (await call('GET', `${node(1).api}/messages/pending`, { key: gina.api_key })).status === 200;
    });
    const on1 = await connectWs(node(0).wsUrl, gina.api_key);
    const on2 = await connectWs(node(1).wsUrl, gina.api_key);
    const admin = await clusterAdmin('acme');
    const s = await call('POST', `${node(0).api}/agents/${gina.agent_id}/suspend`, {
      headers: { Authorization: `Bearer ${admin}` },
      json: { reason: 'suspicious_activity' },
    });
    expect(s.status, JSON.stringify(s.body)).toBe(200);
    expect(await on1.closed(3000)).toEqual({ code: 4003, reason: 'agent_suspended' });
    expect(await on2.closed(3000)).toEqual({ code: 4003, reason: 'agent_suspended' });
    // And neither node lets it back in.
    for (const n of relays.nodes) {
      await eventually(`node ${n.id} refuses the suspended agent`, async () => {
        const r = await call('GET', `${n.api}/messages/pending`, { key: gina.api_key });
        return r.status === 403;
      });
    }
  });
});

/**
 * An `amp:admin` token of `tenant`, signed with the cluster's AID keys. The keys are shared through
 * the SECRETS bucket; every node keeps them in its data dir too, so node 1's copy signs.
 */
async function clusterAdmin(tenant: string): Promise<string> {
  const keys = await SigningKeys.load(node(0).dataDir, 'RS256');
  return mintAdminToken(keys, {
    issuer: `${CLUSTER_PUBLIC_URL}/${tenant}`,
    tenant,
    email: 'ops@acme.com',
    scopes: ['amp:admin'],
  });
}
