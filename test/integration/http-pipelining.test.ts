// HTTP/1.1 pipelining on one keep-alive connection (issue 13 item 6), with a raw TCP client that
// writes several requests at once. uWS closes a connection when a request is parsed while an
// earlier response is still pending (uNetworking/uWebSockets.js#1301, reproduced against plain
// uWS by scripts/uws-http-limits.mjs). What we guarantee instead:
// - requests answered synchronously (GET pending, agents/me, discovery) pipeline: every one is
//   answered, in order;
// - a request the client sends after an async one's bytes were read waits for that answer
//   (the socket is paused) and is then answered, in order;
// - a request read together with an unanswered async one is lost with the connection, and the
//   async one then does nothing: no route is committed without its answer, so a retry never
//   duplicates.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exchange, rawRequest } from '../helpers/raw-http.js';
import { call, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

let t: TestServer;
let port: number;
let alice: Registered;
let bob: Registered;

beforeAll(async () => {
  t = await startTestServer();
  port = t.server.port;
  [alice, bob] = await Promise.all([register(t.api, 'alice'), register(t.api, 'bob')]);
});
afterAll(async () => {
  await closeAllWs();
  await t?.close();
});

const auth = (a: Registered) => ({ Authorization: `Bearer ${a.api_key}` });
const getPending = (a: Registered) => rawRequest('GET', '/api/v1/messages/pending?limit=1', { headers: auth(a) });
const getMe = (a: Registered) => rawRequest('GET', '/api/v1/agents/me', { headers: auth(a) });
const postRoute = (a: Registered, to: string, subject: string) =>
  rawRequest('POST', '/api/v1/route', {
    headers: auth(a),
    body: JSON.stringify({ to, subject, payload: { type: 'notification', message: subject } }),
  });

/**
 * Subjects queued for `a`, after a marker route from alice: a route the server had started from a
 * pipelined request commits before the marker (one sender's routes commit in order), so the list
 * cannot be read too early.
 */
async function subjectsQueuedFor(a: Registered): Promise<string[]> {
  const marker = { to: a.address, subject: 'marker', payload: { type: 'notification', message: 'm' } };
  expect((await call('POST', `${t.api}/route`, { key: alice.api_key, json: marker })).status).toBe(200);
  const r = await call('GET', `${t.api}/messages/pending?limit=100`, { key: a.api_key });
  expect(r.status).toBe(200);
  const subjects: string[] = r.body.messages.map((m: any) => m.envelope.subject);
  expect(subjects.at(-1)).toBe('marker');
  return subjects.slice(0, -1);
}

async function drain(a: Registered): Promise<void> {
  const r = await call('GET', `${t.api}/messages/pending?limit=100`, { key: a.api_key });
  const ids = r.body.messages.map((m: any) => m.id);
  if (ids.length)
    expect((await call('POST', `${t.api}/messages/pending/ack`, { key: a.api_key, json: { ids } })).status).toBe(200);
}

describe('pipelined requests on one connection', () => {
  it('GET x50 + agents/me in one write: 51 answers, in order, connection kept', async () => {
    const writes = getPending(alice).repeat(50) + getMe(alice);
    const r = await exchange(port, writes, { want: 51 });
    expect(r.end).toBe('enough');
    expect(r.responses.map((x) => x.status)).toEqual(Array(51).fill(200));
    expect(JSON.parse(r.responses[0].body)).toMatchObject({ messages: [], count: 0 });
    expect(JSON.parse(r.responses[50].body)).toMatchObject({ address: alice.address });
  });

  it('ROUTE + GET in one write: the connection drops unanswered and the route is NOT committed', async () => {
    await drain(bob);
    const r = await exchange(port, postRoute(alice, 'bob', 'pipelined') + getMe(alice));
    expect(r).toMatchObject({ end: 'eof', responses: [] });
    expect(await subjectsQueuedFor(bob)).toEqual([]);
    await drain(bob);
    // The client's retry on a fresh connection is the only copy.
    const retry = await exchange(port, postRoute(alice, 'bob', 'pipelined'), { want: 1 });
    expect(retry.responses.map((x) => x.status)).toEqual([200]);
    expect(await subjectsQueuedFor(bob)).toEqual(['pipelined']);
  });

  it('ROUTE x5 in one write: nothing committed; GET x50 + ROUTE + ME: nothing committed either', async () => {
    await drain(bob);
    const five = [1, 2, 3, 4, 5].map((i) => postRoute(alice, 'bob', `five-${i}`)).join('');
    expect(await exchange(port, five)).toMatchObject({ end: 'eof', responses: [] });
    expect(await subjectsQueuedFor(bob)).toEqual([]);
    await drain(bob);
    const mixed = getPending(alice).repeat(50) + postRoute(alice, 'bob', 'mixed') + getMe(alice);
    const r = await exchange(port, mixed);
    expect(r.end).toBe('eof');
    expect(await subjectsQueuedFor(bob)).toEqual([]);
  });

  it('a request sent while a route is being committed waits for it: both answered, in order', async () => {
    await drain(bob);
    // bob online: the route pushes to him before its commit finishes, which tells us the server
    // has read the route; GET is written then, in a later TCP read, while the route may be pending.
    const ws = await connectWs(t.server.wsUrl, bob.api_key);
    const r = await exchange(port, [postRoute(alice, 'bob', 'first'), getMe(alice)], {
      want: 2,
      afterWrite: async (i) => {
        if (i === 0) await ws.nextType('message.new');
      },
    });
    expect({ end: r.end, rest: r.rest, statuses: r.responses.map((x) => x.status) }).toEqual({
      end: 'enough',
      rest: '',
      statuses: [200, 200],
    });
    expect(JSON.parse(r.responses[0].body)).toMatchObject({ status: 'delivered' });
    expect(JSON.parse(r.responses[1].body)).toMatchObject({ address: alice.address });
    await ws.close();
  });
});
