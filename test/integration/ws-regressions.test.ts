// Regression tests for defects found in review of the push path and the SDK.

import { sign } from 'node:crypto';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AmpClient, type AmpSocket } from '../../src/client/index.js';
import { Inbox, waitFor } from '../helpers/events.js';
import { newKeypair, startTestServer, type TestServer } from '../helpers/server.js';

const servers: TestServer[] = [];
const sockets: AmpSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});
afterAll(async () => {
  for (const t of servers) await t.close();
});

async function server(opts: Parameters<typeof startTestServer>[0] = {}) {
  // These tests push thousands of messages from one sender: the §20 route bucket would refuse them.
  const t = await startTestServer({ rateLimits: 'off', ...opts });
  servers.push(t);
  return t;
}

async function agent(t: TestServer, name: string) {
  const keys = newKeypair();
  const { client, registration } = await AmpClient.register(t.url, {
    name,
    tenant: 'acme',
    public_key: keys.publicPem,
  });
  return { client, registration, keys };
}

function track(s: AmpSocket): AmpSocket {
  sockets.push(s);
  return s;
}

/** Route `n` messages with at most `lanes` in flight; returns ids in route order per lane. */
async function routeMany(
  from: AmpClient,
  to: string,
  n: number,
  lanes: number,
  body: (i: number) => Record<string, unknown>,
) {
  const ids: string[] = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < n) {
        const i = next++;
        ids[i] = (
          await from.route({ to, subject: `m${i}`, payload: { type: 'notification', message: '' }, ...body(i) })
        ).id;
      }
    }),
  );
  return ids;
}

describe('push path', () => {
  it('large frames after a backpressure pause all arrive (drain work runs outside the uWS callback)', async () => {
    const t = await server({ wsSoftBuffer: 64 * 1024, maxQueue: 10_000 });
    const a = await agent(t, 'big-a');
    const b = await agent(t, 'big-b');
    const big = 'x'.repeat(100_000);
    const ids = await routeMany(a.client, 'big-b', 200, 4, () => ({
      payload: { type: 'notification', message: '', context: { big } },
    }));
    const socket = track(b.client.connect({ reconnect: false }));
    const inbox = new Inbox(socket);
    await socket.ready();
    await inbox.has(ids, 20_000);
    expect(new Set(inbox.ids()).size).toBe(200);
  });

  it('an offline sender keeps at most 1000 receipts, counting exactly what was dropped', async () => {
    const t = await server({ maxQueue: 10_000 });
    const a = await agent(t, 'rc-a');
    const b = await agent(t, 'rc-b');
    const ids = await routeMany(a.client, 'rc-b', 1100, 64, () => ({ options: { receipt: true } }));
    // The recipient collects everything over a socket while the sender is offline.
    const rs = track(b.client.connect({ reconnect: false }));
    const inbox = new Inbox(rs);
    await rs.ready();
    await inbox.has(ids, 20_000);
    const metrics = async () =>
      Number(/^amp_receipts_outbox_dropped_total (\d+)$/m.exec(await (await fetch(`${t.url}/metrics`)).text())?.[1]);
    expect(await metrics()).toBe(100);
    // The sender connects and gets exactly the newest 1000 receipts after `connected`.
    const ss = track(a.client.connect({ reconnect: false }));
    const receipts: string[] = [];
    ss.on('delivered', (d) => receipts.push(d.id));
    const all = waitFor(ss, 'delivered', () => receipts.length === 1000, 10_000);
    await ss.ready();
    await all;
    // Nothing more is on its way: frames sent before the pong have all arrived.
    await ss.ping();
    expect(receipts).toEqual(inbox.ids().slice(100));
  });
});

describe('revocation', () => {
  it('key recovery closes the sockets opened with the revoked key (4003 key_revoked)', async () => {
    const t = await server();
    const a = await agent(t, 'rev-a');
    const socket = track(a.client.connect({ reconnect: false }));
    await socket.ready();
    const closed = waitFor<[number, string]>(socket, 'close');
    const ts = Math.floor(Date.now() / 1000);
    const proof = sign(null, Buffer.from(`amp-register\n${ts}\n${a.registration.address}`), a.keys.privateKey).toString(
      'base64',
    );
    const r = await fetch(`${t.url}/api/v1/register`, {
      method: 'POST',
      body: JSON.stringify({
        name: 'rev-a',
        tenant: 'acme',
        public_key: a.keys.publicPem,
        proof: { timestamp: ts, signature: proof },
      }),
    });
    expect(r.status).toBe(200);
    expect(await closed).toEqual([4003, 'key_revoked']);
  });
});

describe('SDK', () => {
  it('a wrong API key rejects ready() with a 4003 close and does not crash the process', async () => {
    const t = await server();
    const socket = track(new AmpClient({ baseUrl: t.url, apiKey: 'amp_live_sk_' + '0'.repeat(64) }).connect());
    const serverError = waitFor<[{ error: string }]>(socket, 'server-error');
    await expect(socket.ready()).rejects.toThrow(/4003 invalid_token/);
    expect((await serverError)[0].error).toBe('unauthorized');
  });

  it('a refused upgrade (bad key in the header) is final: no reconnect loop', async () => {
    const t = await server();
    const socket = track(new AmpClient({ baseUrl: t.url, apiKey: 'bogus' }).connect({ auth: 'header' }));
    let reconnects = 0;
    socket.on('reconnecting', () => reconnects++);
    await expect(socket.ready()).rejects.toThrow(/closed before connected/);
    expect(reconnects).toBe(0);
    await expect(socket.ready()).rejects.toThrow(/closed for good/);
  });

  it('a signed session that drops reconnects with a fresh timestamp, not a replayed frame', async () => {
    const t = await server();
    const a = await agent(t, 'sig-a');
    const socket = track(
      new AmpClient({ baseUrl: t.url }).connect({
        auth: { address: a.registration.address, privateKey: a.keys.privateKey },
      }),
    );
    const first = await socket.ready();
    // Drop the connection abruptly (1006): the SDK reconnects and must not be refused as a replay.
    const again = waitFor<[{ session_id: string }]>(
      socket,
      'connected',
      (c) => c.session_id !== first.session_id,
      10_000,
    );
    (socket as unknown as { ws: { terminate(): void } }).ws.terminate();
    const [second] = await again;
    expect(second.session_id).not.toBe(first.session_id);
  });
});
