// Two WebSocket limits (issue 13 item 12): a `queue_full` route.result says when to retry
// (`retry_after`, as the REST 429 body does, §21), and protocol-level pings spend the per-socket
// frame budget (§17.6 `ws_frames`) like any non-route frame.

import { afterAll, describe, expect, it } from 'vitest';
import { register, startTestServer, type TestServer } from '../helpers/server.js';
import { waitFor } from '../helpers/events.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

const servers: TestServer[] = [];
afterAll(async () => {
  await closeAllWs();
  await Promise.all(servers.map((s) => s.close()));
});

const msg = (to: string, n: number) => ({ to, subject: `s${n}`, payload: { type: 'notification', message: `m${n}` } });

describe('WebSocket limits', () => {
  it('a queue_full route.result carries retry_after (and so does the error frame without request_id)', async () => {
    const s = await startTestServer({ maxQueue: 1 });
    servers.push(s);
    const [alice, bob] = await Promise.all([register(s.api, 'alice', 'acme'), register(s.api, 'bob', 'acme')]);
    const ws = await connectWs(s.server.wsUrl, alice.api_key);
    ws.sendText({ type: 'route', request_id: 'r1', data: msg(bob.address, 1) });
    expect((await ws.nextType('route.result', 'r1')).data.status).toBe('queued');
    ws.sendText({ type: 'route', request_id: 'r2', data: msg(bob.address, 2) });
    const full = await ws.nextType('route.result', 'r2');
    expect([full.error, full.retry_after]).toEqual(['queue_full', 60]);
    ws.sendText({ type: 'route', data: msg(bob.address, 3) });
    const err = await ws.nextType('error');
    expect([err.error, err.retry_after]).toEqual(['queue_full', 60]);
  });

  it('protocol pings spend the ws_frames budget: after 5 pings (ws_frames=5/min) a ping frame is refused', async () => {
    const s = await startTestServer({ rateLimitOverrides: ['ws_frames=5/min'] });
    servers.push(s);
    const alice = await register(s.api, 'alice', 'acme');
    const ws = await connectWs(s.server.wsUrl, alice.api_key);
    let pongs = 0;
    // uWS answers each protocol ping itself; the fifth pong means the server has seen all five.
    const fifth = waitFor(ws.ws, 'pong', () => ++pongs === 5);
    for (let i = 0; i < 5; i++) ws.ws.ping();
    await fifth;
    ws.sendText({ type: 'ping', request_id: 'p1' });
    const answer = await ws.next((f) => f?.request_id === 'p1');
    expect([answer.type, answer.error]).toEqual(['error', 'rate_limited']);
    expect(answer.retry_after).toBeGreaterThanOrEqual(1);
    // Route frames are the sender's bucket, not this one: still answered.
    ws.sendText({ type: 'route', request_id: 'r1', data: msg(alice.address, 1) });
    expect((await ws.nextType('route.result', 'r1')).data.id).toMatch(/^msg_/);
    expect(ws.frames.closeInfo).toBeUndefined();
  });

  it('pings over the budget get no error frame each (no reply flood); the next data frame is refused', async () => {
    const s = await startTestServer({ rateLimitOverrides: ['ws_frames=5/min'] });
    servers.push(s);
    const alice = await register(s.api, 'alice', 'acme');
    const ws = await connectWs(s.server.wsUrl, alice.api_key);
    let pongs = 0;
    const last = waitFor(ws.ws, 'pong', () => ++pongs === 20);
    for (let i = 0; i < 20; i++) ws.ws.ping();
    await last;
    ws.sendText({ type: 'ping', request_id: 'p1' });
    const answer = await ws.next((f) => f?.request_id === 'p1');
    expect([answer.type, answer.error]).toEqual(['error', 'rate_limited']);
    expect(ws.frames.list().filter((f) => f.type === 'error' && f.request_id !== 'p1')).toEqual([]);
  });
});
