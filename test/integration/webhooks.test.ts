// Webhooks (spec §18) against the real server and a node:http receiver on 127.0.0.1 (allowed by
// AMP_WEBHOOK_ALLOW_HOSTS=127.0.0.1/32, as in development): the signed POST, 2xx acks the message
// (receipt method "webhook"), 500 then 200 delivers on the retry, 400 parks it (it stays in the
// relay queue, no retry), a redirect to 169.254.169.254 is not followed, a private address without
// the allow list is refused at registration (400) and at delivery.
//
// No sleeps: the receiver emits each request, the sender's socket gets `message.delivered`, and
// the server's log says when an item is parked (its line is written once the park is durable).
// The retry delays are shortened by the test-only `webhookPolicy` option of startServer.

import { EventEmitter, once } from 'node:events';
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/schema.js';
import { timestampProblem, verifyHmacRequestHeader } from '../../src/crypto/request-signing.js';
import { until } from '../helpers/outbound.js';
import {
  call,
  newKeypair,
  register,
  type Registered,
  routeOk,
  startTestServer,
  type TestServer,
  tempDir,
} from '../helpers/server.js';
import { type Answer, Hook, SECRET } from '../helpers/webhook.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

/** A logger whose lines the test can wait on. */
function logSink() {
  const lines: Array<Record<string, any>> = [];
  const events = new EventEmitter();
  const logger = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        lines.push(JSON.parse(line));
        events.emit('line');
      },
    },
  );
  const parked = (id: string) =>
    until(events, 'line', () => lines.some((l) => l.msg === 'outbound parked' && l.id === id), `${id} parked`);
  const delivered = (id: string) =>
    until(events, 'line', () => lines.some((l) => l.msg === 'outbound delivered' && l.id === id), `${id} delivered`);
  return { logger, lines, events, parked, delivered };
}

const hooks: Hook[] = [];
async function hook(answers: Answer[] = []): Promise<Hook> {
  const h = new Hook(answers);
  hooks.push(h);
  await h.listen();
  return h;
}

const pending = async (t: TestServer, who: Registered): Promise<string[]> =>
  ((await call('GET', `${t.api}/messages/pending?limit=100`, { key: who.api_key })).body.messages as any[]).map(
    (m) => m.envelope.id,
  );

function message(to: Registered, subject: string) {
  return { to: to.address, subject, payload: { type: 'notification', message: subject }, options: { receipt: true } };
}

let t: TestServer;
let log: ReturnType<typeof logSink>;
let n = 0;

beforeAll(async () => {
  log = logSink();
  t = await startTestServer({
    webhookAllowHosts: ['127.0.0.1/32'],
    webhookPolicy: { retry: { delaysMs: [50, 50] } },
    logger: log.logger,
  });
});
afterEach(closeAllWs);
afterAll(async () => {
  await t.close();
  for (const h of hooks) await h.close();
});

/** A sender on a socket (it hears receipts) and a recipient whose webhook is `h`. */
async function pair(h: Hook, extra: Record<string, unknown> = {}) {
  n++;
  const a = await register(t.api, `wh-a${n}`, 'acme');
  const delivery = { webhook_url: h.url, webhook_secret: SECRET, ...extra };
  const b = await register(t.api, `wh-b${n}`, 'acme', { delivery });
  const ws = await connectWs(t.server.wsUrl, a.api_key, { protocols: ['amp.v1'] });
  return { a, b, ws };
}

describe('webhook delivery (§18)', () => {
  it('POSTs {envelope, payload} signed with HMAC-SHA256; the 2xx acks it (receipt method webhook)', async () => {
    const h = await hook();
    const { a, b, ws } = await pair(h);
    const r = await routeOk(t.api, a, message(b, 'hello hook'));
    expect(r).toMatchObject({ status: 'queued', method: 'relay' });
    const receipt = await ws.nextType('message.delivered');
    expect(receipt.data).toMatchObject({ id: r.id, to: b.address, method: 'webhook' });
    expect(h.hits).toHaveLength(1);
    const { headers, body } = h.hits[0]!;
    expect(headers['content-type']).toBe('application/json');
    expect(headers['user-agent']).toMatch(/^amp-relay\/\d+\.\d+\.\d+/);
    expect(headers['x-amp-message-id']).toBe(r.id);
    expect(headers['x-amp-delivery-attempt']).toBe('1');
    const ts = String(headers['x-amp-timestamp']);
    expect(timestampProblem(ts)).toBeUndefined();
    expect(verifyHmacRequestHeader(SECRET, ts, body, String(headers['x-amp-signature']))).toBe(true);
    expect(verifyHmacRequestHeader('another secret 123', ts, body, String(headers['x-amp-signature']))).toBe(false);
    const parsed = JSON.parse(body);
    expect(Object.keys(parsed).sort()).toEqual(['envelope', 'payload']);
    expect(parsed.envelope).toMatchObject({ id: r.id, from: a.address, to: b.address, subject: 'hello hook' });
    expect(parsed.payload).toEqual({ type: 'notification', message: 'hello hook' });
    expect(await pending(t, b)).toEqual([]);
  });

  it('agents/me shows the webhook URL and that a secret is set, never the secret', async () => {
    const h = await hook();
    const { b } = await pair(h, { prefer_websocket: false });
    const me = await call('GET', `${t.api}/agents/me`, { key: b.api_key });
    expect(me.body.delivery).toEqual({ webhook_url: h.url, webhook_secret_set: true, prefer_websocket: false });
    expect(JSON.stringify(me.body)).not.toContain(SECRET);
  });

  it('500 then 200: delivered by the retry, with a fresh signature and attempt 2', async () => {
    const h = await hook([500]);
    const { a, b, ws } = await pair(h);
    const r = await routeOk(t.api, a, message(b, 'retry me'));
    const receipt = await ws.nextType('message.delivered');
    expect(receipt.data).toMatchObject({ id: r.id, method: 'webhook' });
    expect(h.hits.map((x) => [x.status, x.headers['x-amp-delivery-attempt']])).toEqual([
      [500, '1'],
      [200, '2'],
    ]);
    for (const hit of h.hits) {
      const ts = String(hit.headers['x-amp-timestamp']);
      expect(verifyHmacRequestHeader(SECRET, ts, hit.body, String(hit.headers['x-amp-signature']))).toBe(true);
    }
    expect(await pending(t, b)).toEqual([]);
  });

  it('400: no retry, the message stays queued for polling', async () => {
    const h = await hook([400]);
    const { a, b, ws } = await pair(h);
    const first = await routeOk(t.api, a, message(b, 'refused'));
    await log.parked(first.id);
    // A later message to the same webhook goes through: the target was not paused by the 400.
    const second = await routeOk(t.api, a, message(b, 'accepted'));
    expect((await ws.nextType('message.delivered')).data).toMatchObject({ id: second.id, method: 'webhook' });
    expect(h.hits.map((x) => [x.headers['x-amp-message-id'], x.status])).toEqual([
      [first.id, 400],
      [second.id, 200],
    ]);
    expect(await pending(t, b)).toEqual([first.id]);
    const parked = log.lines.find((l) => l.msg === 'outbound parked' && l.id === first.id);
    expect(parked?.reason).toBe('HTTP 400');
  });

  it('a new webhook_url by PATCH agents/me: the parked message is tried again there', async () => {
    const h = await hook([400]);
    const { a, b, ws } = await pair(h);
    const r = await routeOk(t.api, a, message(b, 'parked, then moved'));
    await log.parked(r.id);
    const moved = await hook();
    const p = await call('PATCH', `${t.api}/agents/me`, {
      key: b.api_key,
      json: { delivery: { webhook_url: moved.url } },
    });
    expect(p).toMatchObject({ status: 200, body: { updated: true } });
    expect((await ws.nextType('message.delivered')).data).toMatchObject({ id: r.id, method: 'webhook' });
    expect(moved.hits.map((x) => [x.headers['x-amp-message-id'], x.headers['x-amp-delivery-attempt']])).toEqual([
      [r.id, '2'],
    ]);
    expect(await pending(t, b)).toEqual([]);
  });

  it('DELETE agents/me: the parked items of its webhook leave the outbound queue, unsent', async () => {
    const h = await hook([400]);
    const { a, b } = await pair(h);
    const r = await routeOk(t.api, a, message(b, 'parked, then the agent goes'));
    await log.parked(r.id);
    expect((await call('DELETE', `${t.api}/agents/me`, { key: b.api_key })).status).toBe(200);
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound obsolete' && l.id === r.id));
    expect(h.hits).toHaveLength(1);
  });

  it('a redirect to 169.254.169.254 is not followed: parked, the message stays queued', async () => {
    const h = await hook([{ redirect: 'http://169.254.169.254/latest/meta-data/' }]);
    const { a, b } = await pair(h);
    const r = await routeOk(t.api, a, message(b, 'redirected'));
    await log.parked(r.id);
    const parked = log.lines.find((l) => l.msg === 'outbound parked' && l.id === r.id);
    expect(parked?.reason).toMatch(/^refused: address 169\.254\.169\.254 is in refused range 169\.254\.0\.0\/16/);
    expect(h.hits).toHaveLength(1);
    expect(await pending(t, b)).toEqual([r.id]);
  });
});

describe('when the webhook is used (§18 prefer_websocket)', () => {
  it('prefer_websocket true: not while the recipient has a live session, then again once it is gone', async () => {
    const h = await hook();
    const { a, b } = await pair(h);
    const live = await connectWs(t.server.wsUrl, b.api_key, { protocols: ['amp.v1'] });
    const pushed = await routeOk(t.api, a, message(b, 'to the socket'));
    expect(pushed).toMatchObject({ status: 'delivered', method: 'websocket' });
    live.ws.close();
    await once(live.ws, 'close');
    // The session is gone once the server saw the close: a route then reaches the webhook.
    const r = await routeOk(t.api, a, message(b, 'to the hook'));
    await log.delivered(r.id);
    // The webhook target is FIFO: had the first message been handed to it, it would have come first.
    expect(h.hits.map((x) => x.headers['x-amp-message-id'])).toEqual([r.id]);
    expect(await pending(t, b)).toEqual([pushed.id]);
  });

  it('prefer_websocket false: pushed to the socket and POSTed; the 2xx acks it', async () => {
    const h = await hook();
    const { a, b } = await pair(h, { prefer_websocket: false });
    const live = await connectWs(t.server.wsUrl, b.api_key, { protocols: ['amp.v1'] });
    const r = await routeOk(t.api, a, message(b, 'both ways'));
    expect(r).toMatchObject({ status: 'delivered', method: 'websocket' });
    await live.nextType('message.new');
    await log.delivered(r.id);
    expect(h.hits.map((x) => x.headers['x-amp-message-id'])).toEqual([r.id]);
    expect(await pending(t, b)).toEqual([]);
  });
});

describe('webhook URLs under the SSRF rules (§18)', () => {
  let plain: TestServer;
  beforeAll(async () => {
    plain = await startTestServer();
  });
  afterAll(() => plain.close());

  const registerWith = (webhook_url: string, name: string) =>
    call('POST', `${plain.api}/register`, {
      json: {
        name,
        tenant: 'acme',
        public_key: newKeypair().publicPem,
        delivery: { webhook_url, webhook_secret: SECRET },
      },
    });

  it.each([
    ['http://127.0.0.1:9/hook', /address 127\.0\.0\.1 is in refused range 127\.0\.0\.0\/8/],
    ['https://10.1.2.3/hook', /address 10\.1\.2\.3 is in refused range 10\.0\.0\.0\/8/],
    ['https://169.254.169.254/latest', /refused range 169\.254\.0\.0\/16/],
    ['https://0x7f.1/hook', /non-canonical spelling of 127\.0\.0\.1/],
    ['https://[::1]/hook', /refused range ::1\/128/],
    ['ftp://example.com/hook', /scheme ftp: is not allowed/],
  ])('registration with %s: 400 invalid_field delivery.webhook_url', async (url, why) => {
    const r = await registerWith(url, `ssrf-${n++}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_field', field: 'delivery.webhook_url' });
    expect(r.body.message).toMatch(why);
  });

  it('a name that does not resolve: the same 400, saying so', async () => {
    const r = await registerWith('https://no-such-host.invalid/hook', `ssrf-${n++}`);
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_field', field: 'delivery.webhook_url' });
    expect(r.body.message).toMatch(/'no-such-host\.invalid' does not resolve/);
  });

  it('PATCH agents/me: a private address refused, an https URL needs a secret', async () => {
    const b = await register(plain.api, `ssrf-p${n++}`, 'acme');
    const patch = (delivery: unknown) =>
      call('PATCH', `${plain.api}/agents/me`, { key: b.api_key, json: { delivery } });
    const r = await patch({ webhook_url: 'http://127.0.0.1:9/hook', webhook_secret: SECRET });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_field', field: 'delivery.webhook_url' });
    const noSecret = await patch({ webhook_url: 'https://192.168.1.1/hook' });
    expect(noSecret.body).toMatchObject({ error: 'invalid_field', field: 'delivery.webhook_secret' });
    const me = await call('GET', `${plain.api}/agents/me`, { key: b.api_key });
    expect(me.body.delivery).toEqual({ webhook_url: null, webhook_secret_set: false, prefer_websocket: true });
  });

  it('at delivery: a webhook allowed when registered, refused once the allow list is gone', async () => {
    const dataDir = tempDir();
    const h = await hook();
    let s = await startTestServer({ dataDir, webhookAllowHosts: ['127.0.0.1/32'] });
    const a = await register(s.api, 'sender', 'acme');
    const b = await register(s.api, 'hooked', 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    await s.close();
    const sink = logSink();
    s = await startTestServer({ dataDir, logger: sink.logger });
    try {
      const r = await routeOk(s.api, a, message(b, 'no longer allowed'));
      await sink.parked(r.id);
      const parked = sink.lines.find((l) => l.msg === 'outbound parked' && l.id === r.id);
      expect(parked?.reason).toMatch(/^refused: address 127\.0\.0\.1 is in refused range 127\.0\.0\.0\/8/);
      expect(h.hits).toHaveLength(0);
      expect(await pending(s, b)).toEqual([r.id]);
    } finally {
      await s.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('AMP_WEBHOOK_ALLOW_HOSTS', () => {
  it('refuses entries that are no hostname, IP or CIDR, naming the variable', () => {
    expect(() => loadConfig({ env: { AMP_WEBHOOK_ALLOW_HOSTS: 'localhost,0x7f.1,127.0.0.1/33' } })).toThrow(
      /AMP_WEBHOOK_ALLOW_HOSTS entries are hostnames, IP addresses or CIDRs \(got '0x7f\.1'\)[\s\S]*got '127\.0\.0\.1\/33'/,
    );
    expect(loadConfig({ env: { AMP_WEBHOOK_ALLOW_HOSTS: 'localhost, 127.0.0.1/32' } }).webhookAllowHosts).toEqual([
      'localhost',
      '127.0.0.1/32',
    ]);
  });
});
