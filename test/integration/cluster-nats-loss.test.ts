// Cluster mode when NATS servers go away. One of three lost (the leader of the queue stream, killed
// with -9): no visible effect, every route on every node still answers 200 (a client may wait while
// JetStream elects a new leader) and every node keeps routing afterwards. All three lost: /ready
// answers 503 and routes 503 store_unavailable (never a 2xx that was not stored) on every node,
// open WebSocket sessions stay open; NATS back on the same ports and stores: ready again, the
// message routed then is pushed to the session that stayed open.

import { afterAll, describe, expect, it } from 'vitest';
import { type RelayCluster, startRelays } from '../helpers/cluster.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { call, register, type Registered, route } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { closeAllWs, connectWs, until } from '../helpers/ws.js';

let nats: NatsCluster;
let relays: RelayCluster;
let alice: Registered;
let bob: Registered;
const prefix = uniquePrefix('natsloss');

setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 3 });
  relays = await startRelays(nats, { nodes: 2, prefix, env: { AMP_RATE_LIMITS: 'off' } });
  alice = await register(relays.nodes[0]!.api, 'alice', 'acme');
  bob = await register(relays.nodes[0]!.api, 'bob', 'acme');
  for (const n of relays.nodes) {
    for (const a of [alice, bob]) {
      const ok = await until(
        async () => (await call('GET', `${n.api}/messages/pending?limit=1`, { key: a.api_key })).status === 200,
        5000,
      );
      if (!ok) throw new Error(`${n.id} does not know ${a.address}`);
    }
  }
});
afterAll(async () => {
  await closeAllWs();
  await relays?.close();
  await nats?.close();
});

const note = (subject: string) => ({ to: bob.address, subject, payload: { type: 'notification', message: subject } });

/** The server that leads the queue stream now (from a live server's /jsz). */
async function queueLeader(): Promise<number> {
  for (const s of nats.servers) {
    if (s.pid === undefined) continue;
    const j = (await (await fetch(`${s.monitor}/jsz?streams=true`)).json()) as any;
    for (const d of j.account_details ?? []) {
      for (const st of d.stream_detail ?? []) {
        if (st.name === `${prefix}_Q` && st.cluster?.leader) {
          return nats.servers.findIndex((x) => x.name === st.cluster.leader);
        }
      }
    }
  }
  throw new Error('no leader of the queue stream');
}

describe('one NATS server of three lost', () => {
  it('the queue stream leader killed: every route on every node still answers 200; all of them queued', async () => {
    const ids: string[] = [];
    for (const n of relays.nodes) ids.push((await route(n.api, alice, note(`before ${n.id}`))).body.id);
    const leader = await queueLeader();
    await nats.servers[leader]!.kill9();
    const answers: string[] = [];
    for (let i = 0; i < 10; i++) {
      for (const n of relays.nodes) {
        const r = await route(n.api, alice, note(`after ${i} ${n.id}`));
        answers.push(`${n.id} ${r.status}${r.status === 200 ? '' : ` ${r.body?.error}: ${r.body?.message}`}`);
        if (r.status === 200) ids.push(r.body.id);
      }
    }
    expect(answers.filter((a) => !a.endsWith(' 200'))).toEqual([]);
    // Every node lists every one of them, in order.
    for (const n of relays.nodes) {
      const ok = await until(async () => {
        const l = await call('GET', `${n.api}/messages/pending?limit=100`, { key: bob.api_key });
        return JSON.stringify(l.body.messages?.map((m: { id: string }) => m.id)) === JSON.stringify(ids);
      }, 5000);
      expect(ok, `${n.id} lists all ${ids.length}`).toBe(true);
    }
  }, 120_000);

  it('afterwards every node routes at its usual pace (each route within 2 s)', async () => {
    for (let i = 0; i < 5; i++) {
      for (const n of relays.nodes) {
        const t0 = Date.now();
        const r = await route(n.api, alice, note(`steady ${i} ${n.id}`));
        expect(r.status, `${n.id}: ${JSON.stringify(r.body)}`).toBe(200);
        expect(Date.now() - t0, `${n.id} took`).toBeLessThan(2000);
      }
    }
  }, 60_000);
});

describe('every NATS server lost, then back', () => {
  it('/ready 503 and routes 503 store_unavailable on every node, sessions stay open; back: ready, routed, pushed', async () => {
    const ws = await connectWs(relays.nodes[1]!.wsUrl, bob.api_key);
    await Promise.all(nats.servers.map((s) => s.kill9()));
    for (const n of relays.nodes) {
      const notReady = await until(async () => (await call('GET', `${n.api}/ready`)).status === 503, 10_000);
      expect(notReady, `${n.id} /ready`).toBe(true);
      const r = await route(n.api, alice, note(`down ${n.id}`));
      expect(r.status).toBe(503);
      expect(r.body.error).toBe('store_unavailable');
    }
    // The session is still there and answers.
    await ws.barrier();
    expect(ws.frames.closeInfo).toBeUndefined();

    await Promise.all(nats.servers.map((s) => s.restart()));
    for (const n of relays.nodes) {
      const ready = await until(async () => (await call('GET', `${n.api}/ready`)).status === 200, 30_000);
      expect(ready, `${n.id} /ready again`).toBe(true);
    }
    let id: string | undefined;
    const routed = await until(async () => {
      const r = await route(relays.nodes[0]!.api, alice, note('back'));
      if (r.status === 200) id = r.body.id;
      return r.status === 200;
    }, 15_000);
    expect(routed).toBe(true);
    await ws.next((f) => f?.type === 'message.new' && f.data?.id === id, 10_000);
  }, 180_000);
});
