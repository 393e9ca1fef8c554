// Push delivery across process death: a message routed but not acked when the server is killed
// arrives on the next connection after a restart. A graceful stop closes sockets with 4500 and
// the SDK reconnects on its own.

import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { AmpClient, type AmpSocket } from '../../src/client/index.js';
import { Inbox, waitFor } from '../helpers/events.js';
import { newKeypair, spawnServer, tempDir, type ChildServer } from '../helpers/server.js';

const dirs: string[] = [];
const servers: ChildServer[] = [];
const sockets: AmpSocket[] = [];

afterAll(async () => {
  for (const s of sockets) s.close();
  for (const s of servers) await s.stop('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function boot(dataDir: string): Promise<ChildServer> {
  const s = await spawnServer(dataDir);
  servers.push(s);
  return s;
}

async function pair(url: string) {
  const reg = async (name: string) =>
    AmpClient.register(url, { name, tenant: 'acme', public_key: newKeypair().publicPem });
  return { a: await reg('alice'), b: await reg('bob') };
}

describe('push across restarts', () => {
  it('SIGKILL between route and ack: the message is delivered on connect after restart', async () => {
    const dataDir = tempDir('amp-ws-kill-');
    dirs.push(dataDir);
    let server = await boot(dataDir);
    const { a, b } = await pair(server.url);
    const socket = b.client.connect({ reconnect: false });
    sockets.push(socket);
    const inbox = new Inbox(socket);
    await socket.ready();
    const r = await a.client.route({
      to: 'bob',
      subject: 'before kill',
      payload: { type: 'notification', message: 'x' },
    });
    expect(r.status).toBe('delivered');
    await inbox.has([r.id]);
    // Pushed, not acked; the process dies.
    const closed = waitFor(socket, 'close');
    expect(await server.stop('SIGKILL')).toBe('SIGKILL');
    await closed;

    server = await boot(dataDir);
    const again = new AmpClient({ baseUrl: server.url, apiKey: b.registration.api_key }).connect({ reconnect: false });
    sockets.push(again);
    const inbox2 = new Inbox(again);
    const connected = await again.ready();
    expect(connected.pending_count).toBe(1);
    await inbox2.has([r.id]);
    expect(inbox2.items[0]).toMatchObject({ replay: true, msg: { id: r.id, envelope: { subject: 'before kill' } } });
    expect(await again.ack(r.id)).toEqual({ acknowledged: 1 });
  });

  it('SIGTERM closes sockets with 4500, exits 0; the SDK reconnects to the restarted server', async () => {
    const dataDir = tempDir('amp-ws-term-');
    dirs.push(dataDir);
    const server = await boot(dataDir);
    const { a, b } = await pair(server.url);
    const socket = b.client.connect(); // reconnect on
    sockets.push(socket);
    const inbox = new Inbox(socket);
    await socket.ready();
    const closed = waitFor<[number, string]>(socket, 'close');
    const reconnecting = waitFor<[number]>(socket, 'reconnecting');
    expect(await server.stop('SIGTERM')).toBe(0);
    const [code, reason] = await closed;
    expect(code).toBe(4500);
    expect(reason).toBe('server_shutdown');
    const [delay] = await reconnecting;
    // 4500 means: reconnect after a random 1-5 s.
    expect(delay).toBeGreaterThanOrEqual(1000);
    expect(delay).toBeLessThanOrEqual(5000);

    // Same port is not guaranteed for a new process, so prove the data survived via a new socket.
    const next = await boot(dataDir);
    const r = await new AmpClient({ baseUrl: next.url, apiKey: a.registration.api_key }).route({
      to: 'bob',
      subject: 'after',
      payload: { type: 'notification', message: 'y' },
    });
    expect(r.status).toBe('queued');
    const fresh = new AmpClient({ baseUrl: next.url, apiKey: b.registration.api_key }).connect({ reconnect: false });
    sockets.push(fresh);
    const freshInbox = new Inbox(fresh);
    await fresh.ready();
    await freshInbox.has([r.id]);
    expect(inbox.items).toHaveLength(0);
  });
});
