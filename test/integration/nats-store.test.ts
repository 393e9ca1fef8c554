// Cluster mode's store and its failure behaviour (issue 18), against one real nats-server on
// loopback: the relay opens its streams and buckets on an empty NATS; AMP_STORE=nats without seeds
// is refused; with NATS gone /ready answers 503 and writes 503 `store_unavailable` (never a 2xx
// that was not stored), and once it is back on the same port and store they answer 2xx again;
// two relays on one NATS share one provider key and one JWKS.

import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/schema.js';
import { startServer } from '../../src/server.js';
import { type NatsCluster, startNats, uniquePrefix } from '../helpers/nats.js';
import { call, newKeypair, register, route, routeOk, startTestServer, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { until } from '../helpers/ws.js';

/** Past the publish timeout (5 s) of a write while NATS is away. */
const OUTAGE_MS = 20_000;

let nats: NatsCluster;
const servers: TestServer[] = [];

setupOrFailEveryTest(async () => {
  nats = await startNats({ cluster: 1 });
});
afterAll(async () => {
  for (const s of servers) await s.close().catch(() => {});
  await nats?.close();
});

async function relay(prefix: string): Promise<TestServer> {
  const s = await startTestServer({ store: 'nats', natsUrl: nats.urls, natsReplicas: 1, natsPrefix: prefix });
  servers.push(s);
  return s;
}

const note = (to: string, subject: string) => ({ to, subject, payload: { type: 'notification', message: subject } });

describe('NatsStore on a real nats-server', () => {
  it('opens on an empty NATS: register, route, pending, ack, /ready 200', async () => {
    const s = await relay(uniquePrefix('open'));
    expect((await call('GET', `${s.api}/ready`)).status).toBe(200);
    const alice = await register(s.api, 'alice');
    const bob = await register(s.api, 'bob');
    const sent = await routeOk(s.api, alice, note(bob.address, 'hello'));
    const pending = await call('GET', `${s.api}/messages/pending`, { key: bob.api_key });
    expect(pending.body.messages.map((m: { id: string }) => m.id)).toEqual([sent.id]);
    const ack = await call('POST', `${s.api}/messages/pending/ack`, { key: bob.api_key, json: { ids: [sent.id] } });
    expect(ack.status).toBe(200);
    expect((await call('GET', `${s.api}/messages/pending`, { key: bob.api_key })).body.messages).toEqual([]);
  });

  it('AMP_STORE=nats without AMP_NATS_URL is refused with a clear error; an unreachable seed is named', async () => {
    expect(() => loadConfig({ env: { AMP_STORE: 'nats' } })).toThrow(ConfigError);
    expect(() => loadConfig({ env: { AMP_STORE: 'nats' } })).toThrow(/AMP_STORE=nats needs --nats-url \/ AMP_NATS_URL/);
    const stopped = nats.servers[0]!.url.replace(/:\d+$/, ':1');
    await expect(
      startTestServer({ store: 'nats', natsUrl: [stopped], natsReplicas: 1, natsPrefix: uniquePrefix('nourl') }),
    ).rejects.toThrow(`could not connect to any of ${stopped}`);
    await expect(startServer({ host: '127.0.0.1', port: 0, env: { AMP_STORE: 'nats' } })).rejects.toThrow(ConfigError);
  });

  it('NATS away: /ready 503 and routes 503 store_unavailable; back on the same port and dir: 2xx again', async () => {
    const s = await relay(uniquePrefix('outage'));
    const alice = await register(s.api, 'alice');
    const bob = await register(s.api, 'bob');
    const before = await routeOk(s.api, alice, note(bob.address, 'before'));
    await nats.servers[0]!.stop();
    try {
      expect(await until(async () => (await call('GET', `${s.api}/ready`)).status === 503, OUTAGE_MS)).toBe(true);
      const ready = await call('GET', `${s.api}/ready`);
      expect(ready.body.reason).toMatch(/NATS\) is unreachable/);
      const r = await route(s.api, alice, note(bob.address, 'during'));
      expect([r.status, r.body.error]).toEqual([503, 'store_unavailable']);
      expect(r.body.retry ?? true).toBe(true);
      const json = { name: 'carol', tenant: 'default', public_key: newKeypair().publicPem, key_algorithm: 'Ed25519' };
      const reg = await call('POST', `${s.api}/register`, { json });
      expect([reg.status, reg.body.error]).toEqual([503, 'store_unavailable']);
    } finally {
      await nats.servers[0]!.restart();
    }
    expect(await until(async () => (await call('GET', `${s.api}/ready`)).status === 200, OUTAGE_MS)).toBe(true);
    const after = await routeOk(s.api, alice, note(bob.address, 'after'));
    const pending = await call('GET', `${s.api}/messages/pending`, { key: bob.api_key });
    expect(pending.body.messages.map((m: { id: string }) => m.id)).toEqual([before.id, after.id]);
  }, 90_000);

  it('two relays on one NATS share the provider key and the AID signing keys', async () => {
    const prefix = uniquePrefix('secrets');
    const [a, b] = await Promise.all([relay(prefix), relay(prefix)]);
    const wk = async (s: TestServer) => (await call('GET', `${s.url}/.well-known/agent-messaging.json`)).body;
    const [wa, wb] = [await wk(a), await wk(b)];
    expect(wa.public_key).toMatch(/BEGIN PUBLIC KEY/);
    expect(wb.public_key).toBe(wa.public_key);
    const jwks = async (s: TestServer) => (await call('GET', `${s.url}/.well-known/jwks.json`)).body;
    const [ja, jb] = [await jwks(a), await jwks(b)];
    expect(ja.keys.length).toBeGreaterThan(0);
    expect(jb).toEqual(ja);
    // Another deployment on the same NATS (another prefix) has its own.
    const other = await relay(uniquePrefix('other'));
    expect((await wk(other)).public_key).not.toBe(wa.public_key);
  });
});
