// The SDK's socket (src/client) against the real server: a wrong API key rejects ready() without
// crashing the process, a refused upgrade is final (no reconnect loop), and a signed session that
// drops reconnects with a fresh timestamp rather than replaying its auth frame.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AmpClient, type AmpSocket } from '../../src/client/index.js';
import { waitFor } from '../helpers/events.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { sdkAgent } from '../helpers/sdk.js';

const servers: TestServer[] = [];
const sockets: AmpSocket[] = [];
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});
afterAll(async () => {
  for (const t of servers) await t.close();
});

async function server(opts: Parameters<typeof startTestServer>[0] = {}) {
  // No rate limit between these tests and their reconnects.
  const t = await startTestServer({ rateLimits: 'off', ...opts });
  servers.push(t);
  return t;
}

function track(s: AmpSocket): AmpSocket {
  sockets.push(s);
  return s;
}

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
    const a = await sdkAgent(t, 'sig-a');
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

  it('a msgpack session receives what the server accepted: integers past 2^53 and deep nesting', async () => {
    const t = await server();
    const a = await sdkAgent(t, 'mp-sender');
    const b = await sdkAgent(t, 'mp-receiver');
    const socket = track(b.client.connect({ subprotocol: 'amp.v1+msgpack' }));
    await socket.ready();
    // 60 levels of context: the route body is within the 64-level limit, the message.new frame
    // that wraps it (frame, data, payload) is not; the recipient must still read it.
    let deep: Record<string, unknown> = { end: true };
    for (let i = 0; i < 59; i++) deep = { d: deep };
    const context = { big: 1e20, deep };
    const arrived = waitFor<[{ id: string; payload: { context: typeof context } }]>(socket, 'message');
    const sent = await a.client.route({
      to: b.registration.address,
      subject: 'msgpack edges',
      payload: { type: 'notification', message: 'x', context },
    });
    const [msg] = await arrived;
    expect(msg.id).toBe(sent.id);
    expect(msg.payload.context).toEqual(context);
  });

  it('a frame the SDK cannot decode is a server-error event, not a crash', async () => {
    const t = await server();
    const b = await sdkAgent(t, 'bad-frame');
    const socket = track(b.client.connect());
    await socket.ready();
    const serverError = waitFor<[{ error: string }]>(socket, 'server-error');
    // The server never sends invalid JSON; feed one to the SDK's decoder as the socket would.
    (socket as unknown as { ws: { emit(e: string, d: Buffer, b: boolean): void } }).ws.emit(
      'message',
      Buffer.from('{not json'),
      false,
    );
    expect((await serverError)[0].error).toBe('invalid_frame');
  });
});
