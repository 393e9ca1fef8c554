// GET /v1/console/live: the admin console's overview as Server-Sent Events, from the real server:
// a snapshot at once and one a second, counters that follow routed and pushed messages and
// sessions, the admin guard, and the stream's lifetime (shutdown ends it at once, a client that
// never reads holds nothing up).

import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken } from '../helpers/aid.js';
import { call, register, routeOk, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { SseClient } from '../helpers/sse.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

let t: TestServer;
let token: string;
let alice: Registered;
const open: SseClient[] = [];

async function live(server = t, tok = token): Promise<SseClient> {
  const c = await SseClient.open(`${server.url}/v1/console/live`, { Authorization: `Bearer ${tok}` });
  open.push(c);
  return c;
}
const note = (to: string, subject: string) => ({ to, subject, payload: { type: 'notification', message: subject } });

beforeAll(async () => {
  t = await startTestServer();
  token = await adminToken(t, { tenant: 'acme', scopes: ['amp:admin'] });
  alice = await register(t.api, 'alice', 'acme');
  await register(t.api, 'bob', 'acme');
});
afterAll(async () => {
  for (const c of open) c.close();
  await closeAllWs();
  await t?.close();
});

describe('GET /v1/console/live', () => {
  it('answers text/event-stream, not cached, unbuffered, with a full snapshot at once', async () => {
    const started = Date.now();
    const c = await live();
    expect(c.status).toBe(200);
    expect(c.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(c.headers.get('cache-control')).toBe('no-store');
    expect(c.headers.get('x-accel-buffering')).toBe('no');
    const s = await c.snapshot(() => true, 900);
    expect(Date.now() - started).toBeLessThan(900); // before the first tick
    expect(Object.keys(s).sort()).toEqual(
      [
        'agents_online',
        'at',
        'commit_ms',
        'health',
        'oldest_message_age_s',
        'outbound',
        'pushed_per_s',
        'pushed_total',
        'queue_depth',
        'ready',
        'routed_per_s',
        'routed_total',
        'sessions_online',
      ].sort(),
    );
    expect(Number.isNaN(Date.parse(s.at))).toBe(false);
    expect(s).toMatchObject({ health: 'ok', ready: true, outbound: [] });
    for (const k of ['sessions_online', 'agents_online', 'routed_total', 'pushed_total', 'queue_depth'])
      expect(Number.isInteger(s[k])).toBe(true);
    // And then one a second.
    const second = await c.snapshot((x) => x.at !== s.at, 3000);
    expect(Date.parse(second.at)).toBeGreaterThan(Date.parse(s.at));
    c.close();
  });

  it('routed_total and queue_depth follow routed messages; the rate and commit latency show them', async () => {
    const c = await live();
    const first = await c.snapshot();
    for (let i = 0; i < 4; i++) await routeOk(t.api, alice, note('bob', `m${i}`));
    const after = await c.snapshot((s) => s.routed_total >= first.routed_total + 4, 4000);
    expect(after.routed_total).toBe(first.routed_total + 4);
    expect(after.routed_per_s).toBeGreaterThan(0);
    expect(after.queue_depth).toBeGreaterThanOrEqual(4);
    expect(after.oldest_message_age_s).not.toBeNull();
    expect(after.commit_ms).toMatchObject({ p50: expect.any(Number), p99: expect.any(Number) });
    expect(after.commit_ms.p99).toBeGreaterThanOrEqual(after.commit_ms.p50);
    c.close();
  });

  it('sessions_online, agents_online and pushed_total follow a WebSocket agent', async () => {
    const c = await live();
    const first = await c.snapshot();
    const carol = await register(t.api, 'carol', 'acme');
    const ws = await connectWs(t.server.wsUrl, carol.api_key);
    const online = await c.snapshot((s) => s.sessions_online >= first.sessions_online + 1, 4000);
    expect(online.agents_online).toBeGreaterThanOrEqual(1);
    await routeOk(t.api, alice, note('carol', 'pushed'));
    await ws.nextType('message.new');
    const pushed = await c.snapshot((s) => s.pushed_total > first.pushed_total, 4000);
    expect(pushed.pushed_total).toBeGreaterThanOrEqual(first.pushed_total + 1);
    await ws.close();
    await c.snapshot((s) => s.sessions_online === first.sessions_online, 4000);
    c.close();
  });

  it('refuses a request without an admin token (401) or with an agent key (401)', async () => {
    const none = await call('GET', `${t.url}/v1/console/live`);
    expect(none.status).toBe(401);
    expect(none.body.error).toBe('unauthorized');
    const agentKey = await call('GET', `${t.url}/api/v1/console/live`, { key: alice.api_key });
    expect(agentKey.status).toBe(401);
    const otherScope = await adminToken(t, { tenant: 'acme', scopes: ['agent_registrations:write'] });
    const wrong = await call('GET', `${t.url}/v1/console/live`, { key: otherScope });
    expect([401, 403]).toContain(wrong.status);
  });

  it('serves other requests, and more streams, while a client never reads its stream', async () => {
    const raw: Socket = connect(t.server.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    raw.pause(); // never read: the server's writes pile up in the socket buffers
    raw.write(`GET /v1/console/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    try {
      const other = await live();
      const first = await other.snapshot();
      const h = await call('GET', `${t.url}/v1/health`);
      expect(h.status).toBe(200);
      await other.snapshot((s) => s.at !== first.at, 3000); // the ticks go on
      other.close();
    } finally {
      raw.destroy();
    }
  });
});

describe('shutdown with open streams', () => {
  it('close() ends open streams and returns promptly (the streams are not requests in flight)', async () => {
    const s = await startTestServer();
    const tok = await adminToken(s, { tenant: 'acme', scopes: ['amp:admin'] });
    const a = await live(s, tok);
    const b = await live(s, tok);
    await a.snapshot();
    await b.snapshot();
    // A client that never reads, too.
    const raw = connect(s.server.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
    raw.pause();
    raw.write(`GET /v1/console/live HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\n\r\n`);
    raw.on('error', () => {});
    const t0 = Date.now();
    await s.close();
    expect(Date.now() - t0).toBeLessThan(2000); // far below the 10 s request drain
    await a.end(2000);
    await b.end(2000);
    raw.destroy();
  });
});
