// Real-time push (spec §17.4): a routed message reaches the recipient's sockets at once, whether
// routed over REST or over a socket, whether the socket connected before or after the route.
// Delivery is at-least-once: unacked messages come again on the next connection.
// Runs on both stores (the LMDB default and cluster mode on NATS JetStream): test/helpers/store-matrix.ts.

import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AmpClient, AmpSocket } from '../../src/client/index.js';
import { Inbox, waitFor } from '../helpers/events.js';
import { sdkAgent } from '../helpers/sdk.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { STORES, storeOptions, useStoreMatrix } from '../helpers/store-matrix.js';

useStoreMatrix();

describe.each(STORES)('%s store', (store) => {
  let t: TestServer;
  const sockets: AmpSocket[] = [];

  async function connect(client: AmpClient, opts: Parameters<AmpClient['connect']>[0] = {}) {
    const socket = client.connect({ reconnect: false, ...opts });
    sockets.push(socket);
    const inbox = new Inbox(socket);
    const connected = await socket.ready();
    return { socket, inbox, connected };
  }

  const note = (to: string, subject: string) => ({ to, subject, payload: { type: 'notification', message: subject } });

  beforeAll(async () => {
    t = await startTestServer(await storeOptions(store));
  });
  afterEach(() => {
    for (const s of sockets.splice(0)) s.close();
  });
  afterAll(() => t.close());

  describe('push', () => {
    it('connect then REST route: pushed at once, route answers delivered/websocket', async () => {
      const a = await sdkAgent(t, 'p-a1');
      const b = await sdkAgent(t, 'p-b1');
      const { inbox, connected } = await connect(b.client);
      expect(connected.pending_count).toBe(0);
      const r = await a.client.route(note(b.registration.address, 'hello'));
      expect(r).toMatchObject({ status: 'delivered', method: 'websocket' });
      expect(Date.parse(r.delivered_at!)).toBeGreaterThan(0);
      await inbox.has([r.id]);
      const [item] = inbox.items;
      expect(item.replay).toBe(false);
      expect(item.msg).toMatchObject({
        id: r.id,
        envelope: { from: a.registration.address, subject: 'hello' },
        payload: { type: 'notification', message: 'hello' },
      });
      // The pushed item has the fields of a pending-list item, and it is still queued (no ack yet).
      const pending = await b.client.pending();
      expect(pending.messages[0]).toEqual(item.msg);
    });

    it('route then connect: the backlog is replayed oldest first, flagged replay', async () => {
      const a = await sdkAgent(t, 'p-a2');
      const b = await sdkAgent(t, 'p-b2');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await a.client.route(note(b.registration.address, `m${i}`))).id);
      const { inbox, connected } = await connect(b.client);
      expect(connected.pending_count).toBe(5);
      await inbox.has(ids);
      expect(inbox.ids()).toEqual(ids);
      expect(inbox.items.every((i) => i.replay)).toBe(true);
      // New messages after the replay are live, in order after it.
      const live = await a.client.route(note(b.registration.address, 'live'));
      await inbox.has([live.id]);
      expect(inbox.items.at(-1)).toMatchObject({ replay: false, msg: { id: live.id } });
    });

    it('routes over a socket and pushes to the recipient; route.result carries the result', async () => {
      const a = await sdkAgent(t, 'p-a3');
      const b = await sdkAgent(t, 'p-b3');
      const sender = await connect(a.client, { auth: 'header' });
      const recipient = await connect(b.client);
      const r = await sender.socket.route({
        to: 'p-b3',
        subject: 'ws',
        payload: { type: 'request', message: 'over ws' },
      });
      expect(r).toMatchObject({ status: 'delivered', method: 'websocket', thread_id: r.id });
      await recipient.inbox.has([r.id]);
      expect(recipient.inbox.items[0].msg.envelope.to).toBe('p-b3@acme.aimaestro.local');
      const bad = await sender.socket
        .route({ to: 'nobody', subject: 's', payload: { type: 'request', message: 'x' } })
        .catch((e) => e);
      expect(bad).toMatchObject({ code: 'not_found', field: 'to' });
    });

    it('pushes every message to every session of the recipient', async () => {
      const a = await sdkAgent(t, 'p-a4');
      const b = await sdkAgent(t, 'p-b4');
      const s1 = await connect(b.client);
      const s2 = await connect(b.client, { subprotocol: 'amp.v1+msgpack' });
      const ids = [];
      for (let i = 0; i < 3; i++) ids.push((await a.client.route(note(b.registration.address, `x${i}`))).id);
      await s1.inbox.has(ids);
      await s2.inbox.has(ids);
      expect(s1.inbox.ids()).toEqual(ids);
      expect(s2.inbox.ids()).toEqual(ids);
      expect(s2.inbox.items.map((i) => i.msg)).toEqual(s1.inbox.items.map((i) => i.msg));
      // An ack on one session removes it everywhere: the next connection replays nothing acked.
      await s1.socket.ack(ids);
      const s3 = await connect(b.client);
      expect(s3.connected.pending_count).toBe(0);
    });
  });

  describe('at-least-once', () => {
    it('redelivers a pushed but unacked message on the next connection, never an acked one', async () => {
      const a = await sdkAgent(t, 'l-a1');
      const b = await sdkAgent(t, 'l-b1');
      const first = await connect(b.client);
      const r1 = await a.client.route(note(b.registration.address, 'one'));
      const r2 = await a.client.route(note(b.registration.address, 'two'));
      await first.inbox.has([r1.id, r2.id]);
      // Ack only the second, then drop the socket.
      expect(await first.socket.ack(r2.id)).toEqual({ acknowledged: 1 });
      first.socket.close();
      await waitFor(first.socket, 'close');

      const second = await connect(b.client);
      expect(second.connected.pending_count).toBe(1);
      await second.inbox.has([r1.id]);
      expect(second.inbox.ids()).toEqual([r1.id]);
      expect(second.inbox.items[0]).toMatchObject({ replay: true, msg: { id: r1.id, payload: { message: 'one' } } });
      // Ack over REST this time; a third connection gets nothing.
      await b.client.ack(r1.id);
      second.socket.close();
      const third = await connect(b.client);
      expect(third.connected.pending_count).toBe(0);
      const r3 = await a.client.route(note(b.registration.address, 'three'));
      await third.inbox.has([r3.id]);
      expect(third.inbox.ids()).toEqual([r3.id]);
    });

    it('keeps order across a burst that races the socket opening', async () => {
      const a = await sdkAgent(t, 'l-a2');
      const b = await sdkAgent(t, 'l-b2');
      const socket = b.client.connect({ reconnect: false });
      sockets.push(socket);
      const inbox = new Inbox(socket);
      // Route 50 messages while the socket is authenticating and replaying.
      const routes = Array.from({ length: 50 }, (_, i) => a.client.route(note(b.registration.address, `r${i}`)));
      const ids = (await Promise.all(routes)).map((r) => r.id);
      await inbox.has(ids);
      const firstSeen = [...new Set(inbox.ids())];
      const pending = await b.client.pending(100);
      expect(firstSeen).toEqual(pending.messages.map((m) => m.id));
    });
  });
});
