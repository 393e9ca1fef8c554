// Idle sockets (spec §17.6, §17.7): no inbound traffic (frames or pongs) for the idle timeout →
// close 4502 `idle_timeout`. With wsIdleTimeout 2 s and the server's sweep once a second, a silent
// socket is closed between 2 and ~3 s after its last inbound byte; the server's own protocol pings
// only start after 30 s of silence, so a client's automatic pong never rescues it here. A client
// that keeps sending `ping` frames (or protocol pongs) stays open.

import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { call, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs, openWs, type WsClient } from '../helpers/ws.js';

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

let t: TestServer;
let n = 0;

beforeAll(async () => {
  t = await startTestServer({ wsIdleTimeout: 2 });
});
afterEach(closeAllWs);
afterAll(() => t.close());

async function agent(): Promise<Registered> {
  return register(t.api, `idle-${++n}`, 'acme');
}

const withHeader = (who: Registered) => connectWs(t.server.wsUrl, who.api_key, { protocols: ['amp.v1'] });

/** Closed with the documented code and reason, 2–4 s after `since` (the last inbound traffic). */
function expectIdleClose(p: WsClient, since: number): void {
  expect(p.frames.closeInfo).toMatchObject({ code: 4502, reason: 'idle_timeout' });
  const after = p.frames.closedAt! - since;
  expect(after).toBeGreaterThanOrEqual(1900);
  expect(after).toBeLessThanOrEqual(4000);
}

describe('idle timeout (§17.6)', () => {
  it('a header-authenticated socket that sends nothing is closed with 4502 idle_timeout after ~2 s', async () => {
    const p = await withHeader(await agent());
    expect(p.connected.data.idle_timeout_seconds).toBe(2);
    await p.until(() => p.frames.closeInfo !== undefined, 'the idle close', 6000);
    expectIdleClose(p, p.openedAt);
    // Nothing but `connected` was sent before the close.
    expect(p.frames.list().map((f) => f.type)).toEqual(['connected']);
  });

  it('the auth frame counts as traffic; after it, silence closes the socket with 4502', async () => {
    const who = await agent();
    const p = await openWs(t.server.wsUrl, { protocols: ['amp.v1'] });
    const authAt = Date.now();
    p.sendText({ type: 'auth', token: who.api_key });
    expect((await p.nextType('connected')).data.address).toBe(who.address);
    await p.until(() => p.frames.closeInfo !== undefined, 'the idle close', 6000);
    expectIdleClose(p, authAt);
  });

  it('a client that stops reading (paused TCP) is closed with 4502 too, seen once it reads again', async () => {
    const p = await withHeader(await agent());
    p.pauseReading();
    // Bounded poll: the agent leaves agents_online when the server closes its only session.
    const deadline = Date.now() + 6000;
    let online = 1;
    for (let i = 0; i < 1000 && online !== 0 && Date.now() < deadline; i++) {
      online = (await call('GET', `${t.api}/health`)).body.agents_online;
      if (online !== 0) await new Promise((r) => setTimeout(r, 25));
    }
    expect(online).toBe(0);
    const serverClosedBy = Date.now() - p.openedAt;
    expect(serverClosedBy).toBeGreaterThanOrEqual(1900);
    expect(serverClosedBy).toBeLessThanOrEqual(4000 + 500);
    p.resumeReading();
    await p.until(() => p.frames.closeInfo !== undefined, 'the close frame', 5000);
    expect(p.frames.closeInfo).toMatchObject({ code: 4502, reason: 'idle_timeout' });
  });

  it('a socket sending a ping frame every ~500 ms stays open past 3 s; each ping gets a pong', async () => {
    const p = await withHeader(await agent());
    for (let i = 0; i < 8; i++) {
      const request_id = `k${i}`;
      p.sendText({ type: 'ping', request_id });
      await p.until(
        () => p.frames.list().some((f) => f.type === 'pong' && f.request_id === request_id),
        `pong ${request_id}`,
        2000,
      );
      // Pacing, bounded in count: keep traffic flowing, well inside the 2 s timeout.
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(Date.now() - p.openedAt).toBeGreaterThan(3000);
    expect(p.frames.closeInfo).toBeUndefined();
    expect(p.ws.readyState).toBe(WebSocket.OPEN);
    const pongs = p.frames.of('pong');
    expect(pongs).toHaveLength(8);
    for (const [i, f] of pongs.entries())
      expect(f).toEqual({ type: 'pong', request_id: `k${i}`, timestamp: expect.stringMatching(ISO_MS) });
  });

  it('protocol pongs from the client count as inbound traffic (stays open past 3 s)', async () => {
    const p = await withHeader(await agent());
    for (let i = 0; i < 8; i++) {
      p.ws.pong();
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(Date.now() - p.openedAt).toBeGreaterThan(3000);
    expect(p.frames.closeInfo).toBeUndefined();
    // Still usable: a ping frame is answered.
    p.sendText({ type: 'ping', request_id: 'last' });
    await p.until(() => p.frames.list().some((f) => f.type === 'pong' && f.request_id === 'last'), 'the last pong');
  });

  it('protocol pings from the client count as inbound traffic too (stays open past 3 s)', async () => {
    const p = await withHeader(await agent());
    for (let i = 0; i < 8; i++) {
      p.ws.ping();
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(Date.now() - p.openedAt).toBeGreaterThan(3000);
    expect(p.frames.closeInfo).toBeUndefined();
    p.sendText({ type: 'ping', request_id: 'after-pings' });
    await p.until(
      () => p.frames.list().some((f) => f.type === 'pong' && f.request_id === 'after-pings'),
      'the pong after pings',
    );
  });
});
