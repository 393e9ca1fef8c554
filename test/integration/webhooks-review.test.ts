// Independent review of issue 16 (webhooks, §18) on branch i16 (a40d722): reproductions against the
// real server and a node:http receiver on 127.0.0.1. Tests named `regression: ...` failed on a40d722.

import { EventEmitter, once } from 'node:events';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issuerOf, mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import { until } from '../helpers/outbound.js';
import { rmSync } from 'node:fs';
import { call, register, routeOk, spawnServer, startTestServer, type TestServer, tempDir } from '../helpers/server.js';
import { type Answer, Hook, SECRET } from '../helpers/webhook.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

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
  return { logger, lines, events };
}

const hooks: Hook[] = [];
async function hook(answers: Answer[] = []): Promise<Hook> {
  const h = new Hook(answers);
  hooks.push(h);
  await h.listen();
  return h;
}
afterEach(closeAllWs);
afterAll(async () => {
  for (const h of hooks) await h.close();
});

const msg = (to: string, subject: string) => ({ to, subject, payload: { type: 'notification', message: subject } });

describe('registration refusals happen before any DNS answer is shown', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ registrationMode: 'key', registrationKeys: ['*:registration-key-0123456789'] });
  });
  afterAll(() => t.close());

  it('regression: key-mode registration without a key: refused as such, not a DNS oracle for internal names', async () => {
    const r = await call('POST', `${t.api}/register`, {
      json: {
        name: 'probe',
        tenant: 'acme',
        public_key: 'not even a key',
        delivery: { webhook_url: 'https://localhost/', webhook_secret: SECRET },
      },
    });
    // Observed on a40d722: 400 invalid_field "webhook_url refused: 'localhost' resolves to 127.0.0.1 ..."
    // (the SSRF check resolves the caller's name before the registration policy is applied).
    expect(JSON.stringify(r.body)).not.toMatch(/resolves to/);
    expect(r.status).not.toBe(400);
  });
});

describe('webhook delivery details', () => {
  let t: TestServer;
  let log: ReturnType<typeof logSink>;
  let n = 0;
  beforeAll(async () => {
    log = logSink();
    t = await startTestServer({
      webhookAllowHosts: ['127.0.0.1/32'],
      webhookPolicy: { retry: { delaysMs: [1500, 1500] } },
      logger: log.logger,
    });
  });
  afterAll(() => t.close());

  it('regression: prefer_websocket true: a retry is not POSTed while the recipient has a live session', async () => {
    n++;
    const h = await hook([500, 200]);
    const a = await register(t.api, `rv-a${n}`, 'acme');
    const b = await register(t.api, `rv-b${n}`, 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    const r = await routeOk(t.api, a, msg(b.address, 'while offline'));
    await until(h, 'request', () => h.hits.length >= 1, 'first POST');
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound retry' && l.id === r.id));
    // The recipient comes online (its socket gets the queued message) and stays connected, not acking yet.
    const ws = await connectWs(t.server.wsUrl, b.api_key, { protocols: ['amp.v1'] });
    const settled = (l: Record<string, any>) =>
      l.id === r.id && ['outbound delivered', 'outbound obsolete', 'outbound parked'].includes(l.msg);
    await until(log.events, 'line', () => log.lines.some(settled), 'the retry settled', 8000);
    expect(ws).toBeDefined();
    expect(log.lines.some((l) => l.id === r.id && l.msg === 'outbound obsolete')).toBe(true);
    // Observed on a40d722: the retry POSTs the message (hits = 2) while the session is live (§18: the
    // webhook is "used only when no live session exists" with prefer_websocket true).
    expect(h.hits.length).toBe(1);
  });

  it('regression: a message acked (polled) before the webhook retry is not POSTed again', async () => {
    n++;
    const h = await hook([500, 200]);
    const a = await register(t.api, `rv-a${n}`, 'acme');
    const b = await register(t.api, `rv-b${n}`, 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    const depth = async () => {
      const text = (await call('GET', `${t.url}/metrics`)).body as string;
      const line = text.split('\n').find((l) => l.startsWith('amp_outbound_queue_depth{kind="webhook"}'));
      return line ? Number(line.split(' ').at(-1)) : 0;
    };
    const before = await depth();
    const r = await routeOk(t.api, a, msg(b.address, 'acked by polling'));
    await until(h, 'request', () => h.hits.length >= 1, 'first POST');
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound retry' && l.id === r.id));
    // The recipient polls and acks it before the retry (1.5 s later in this test, 30 s in production).
    const ack = await call('DELETE', `${t.api}/messages/pending/${r.id}`, { key: b.api_key });
    expect(ack.body).toEqual({ acknowledged: true });
    // Since webhooks-review2: the ack takes the item out of the outbound queue at once (before, the
    // retry found it acked and dropped it as obsolete); either way no retry is left to POST it.
    const settled = (l: Record<string, any>) =>
      l.id === r.id && ['outbound delivered', 'outbound obsolete', 'outbound parked'].includes(l.msg);
    expect(log.lines.some(settled) || (await depth()) === before).toBe(true);
    // Observed on a40d722: a second POST (attempt 2) and 'outbound delivered': webhooks.ts checks
    // queue.message(id).ackedAt, but lmdb-queue.ts marks `a` on ack only for messages expiring within
    // ACK_MEMORY_MS (24 h), so an acked message with the default TTL looks unacked (§18: "Each retry
    // first checks the message is still unacked").
    expect(h.hits.map((x) => x.headers['x-amp-delivery-attempt'])).toEqual(['1']);
    expect(log.lines.some((l) => l.id === r.id && l.msg === 'outbound delivered')).toBe(false);
  });

  it('a suspended recipient: its messages are not POSTed; a retry while suspended is held, still pollable', async () => {
    n++;
    const h = await hook([500]);
    const a = await register(t.api, `rv-a${n}`, 'acme');
    const b = await register(t.api, `rv-b${n}`, 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    const r1 = await routeOk(t.api, a, msg(b.address, 'before suspension'));
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound retry' && l.id === r1.id));
    const keys = await SigningKeys.open(t.dataDir, 'RS256');
    const token = await mintAdminToken(keys, {
      issuer: issuerOf(t.publicBase, 'acme'),
      tenant: 'acme',
      email: 'ops@acme.com',
      scopes: ['amp:admin'],
    });
    const s = await call('POST', `${t.api}/agents/${b.agent_id}/suspend`, {
      headers: { Authorization: `Bearer ${token}` },
      json: { reason: 'review', duration_hours: 1 },
    });
    expect(s.status).toBe(200);
    const r2 = await call('POST', `${t.api}/route`, { key: a.api_key, json: msg(b.address, 'while suspended') });
    // Held: deferred to the end of the 1 h suspension (webhooks-gaps.test.ts: released then or at an unsuspend).
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound deferred' && l.id === r1.id));
    expect(h.hits.map((x) => x.headers['x-amp-message-id'])).toEqual([r1.id]);
    expect(r2.status).toBe(403); // a suspended recipient takes no new message
    const p = await call('GET', `${t.api}/messages/pending?limit=10`, { key: b.api_key });
    expect([p.status, h.hits.length]).toEqual([p.status, 1]);
  });

  it('regression: a 301/302 redirect (e.g. a trailing-slash redirect) does not turn the POST into a bodiless GET that acks', async () => {
    n++;
    const methods: string[] = [];
    const bodies: string[] = [];
    const got = new EventEmitter();
    const server: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        methods.push(String(req.method));
        bodies.push(Buffer.concat(chunks).toString('utf8'));
        if (req.url === '/hook') res.writeHead(301, { location: '/hook/' }).end();
        else res.writeHead(200, { 'content-type': 'text/html' }).end('<html>ok</html>');
        got.emit('req');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
      const a = await register(t.api, `rv-a${n}`, 'acme');
      const b = await register(t.api, `rv-b${n}`, 'acme', { delivery: { webhook_url: url, webhook_secret: SECRET } });
      const r = await routeOk(t.api, a, msg(b.address, 'redirected by a trailing slash'));
      const settled = (l: Record<string, any>) =>
        l.id === r.id && ['outbound delivered', 'outbound retry', 'outbound parked'].includes(l.msg);
      await until(log.events, 'line', () => log.lines.some(settled), 'the attempt settled');
      const p = await call('GET', `${t.api}/messages/pending?limit=10`, { key: b.api_key });
      // Observed on a40d722: ['POST', 'GET'], the GET without a body answered 200, and the message
      // was acked (pending []): it left the queue though no receiver ever got its body.
      const delivered = log.lines.some((l) => l.id === r.id && l.msg === 'outbound delivered');
      const bodyReceived = bodies.some((x, i) => i > 0 && x.includes(r.id));
      expect({ delivered, bodyReceived }).not.toEqual({ delivered: true, bodyReceived: false });
      expect(delivered ? [] : [r.id]).toEqual((p.body.messages as any[]).map((m) => m.envelope.id));
      expect(methods.length).toBeGreaterThan(0);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });

  it('refuses mapped, non-canonical and private webhook URLs at registration with 400 delivery.webhook_url', async () => {
    const urls = [
      'https://[::ffff:127.0.0.1]/',
      'https://[::ffff:a9fe:a9fe]/',
      'https://[::127.0.0.1]/',
      'https://[64:ff9b::a9fe:a9fe]/',
      'https://2130706433/',
      'https://0x7f.0.0.1/',
      'https://0177.0.0.1/',
      'https://127.1/',
      'https://169.254.169.254./',
      'https://%31%36%39.254.169.254/',
      'https://localhost/',
      'https://[fd00::1]/',
      'https://[fe80::1]/',
      'http://example.com/',
      'ftp://example.com/',
      'https://user:pw@example.com/',
      'https:\\\\169.254.169.254\\x',
      'https://10.0.0.1/',
      'https://0.0.0.0/',
      'https://[::]/',
    ];
    const plain = await startTestServer();
    for (const [i, url] of urls.entries()) {
      const r = await call('POST', `${plain.api}/register`, {
        json: {
          name: `bad${i}`,
          tenant: 'acme',
          public_key: (await import('../helpers/server.js')).newKeypair().publicPem,
          key_algorithm: 'Ed25519',
          delivery: { webhook_url: url, webhook_secret: SECRET },
        },
      });
      expect([url, r.status, r.body.error, r.body.field]).toEqual([url, 400, 'invalid_field', 'delivery.webhook_url']);
      if (url === 'https://localhost/') {
        // The rule is named, the resolved addresses are not (no DNS oracle).
        expect(r.body.message).toMatch(/a name for a private, loopback/);
        expect(r.body.message).not.toMatch(/resolves to|127\.0\.0\.1|::1/);
      }
    }
    await plain.close();
  });

  it('redirects to mapped/non-canonical metadata addresses are not followed: parked, still pollable', async () => {
    for (const target of ['http://[::ffff:a9fe:a9fe]/', 'http://0xa9.254.169.254/', '//169.254.169.254/x']) {
      n++;
      const h = await hook([{ redirect: target }]);
      const a = await register(t.api, `rv-a${n}`, 'acme');
      const b = await register(t.api, `rv-b${n}`, 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
      const r = await routeOk(t.api, a, msg(b.address, 'redirected'));
      await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound parked' && l.id === r.id));
      expect(h.hits).toHaveLength(1);
      const p = await call('GET', `${t.api}/messages/pending?limit=10`, { key: b.api_key });
      expect((p.body.messages as any[]).map((m) => m.envelope.id)).toEqual([r.id]);
    }
  });

  it('5xx three times: attempts 1, 2, 3 with fresh timestamps, then parked and still pollable', async () => {
    n++;
    const h = await hook([503, 503, 503]);
    const a = await register(t.api, `rv-a${n}`, 'acme');
    const b = await register(t.api, `rv-b${n}`, 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    const r = await routeOk(t.api, a, msg(b.address, 'failing'));
    await until(
      log.events,
      'line',
      () => log.lines.some((l) => l.msg === 'outbound parked' && l.id === r.id),
      'parked',
      8000,
    );
    expect(h.hits.map((x) => x.headers['x-amp-delivery-attempt'])).toEqual(['1', '2', '3']);
    const ts = h.hits.map((x) => Number(x.headers['x-amp-timestamp']));
    expect(ts[1]).toBeGreaterThan(ts[0]!);
    expect(ts[2]).toBeGreaterThan(ts[1]!);
    const p = await call('GET', `${t.api}/messages/pending?limit=10`, { key: b.api_key });
    expect((p.body.messages as any[]).map((m) => m.envelope.id)).toEqual([r.id]);
  });

  it('PATCH agents/me with bad delivery values answers 4xx, never 5xx; the secret is never shown', async () => {
    const h = await hook();
    const b = await register(t.api, 'rv-patch', 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    const bodies: unknown[] = [
      { delivery: { webhook_url: 12 } },
      { delivery: { webhook_url: {} } },
      { delivery: { webhook_url: [] } },
      { delivery: { webhook_url: '' } },
      { delivery: { webhook_url: 'x'.repeat(5000) } },
      { delivery: { webhook_url: 'javascript:alert(1)' } },
      { delivery: { webhook_url: `https://${'a'.repeat(300)}.com/` } },
      { delivery: { webhook_url: 'https://[::1/' } },
      { delivery: { webhook_secret: 'short' } },
      { delivery: { webhook_secret: 7 } },
      { delivery: { webhook_secret: 'x'.repeat(300) } },
      { delivery: { webhook_url: null, webhook_secret: SECRET } },
      { delivery: { prefer_websocket: 'yes' } },
      { delivery: 'x' },
      { delivery: null },
    ];
    for (const json of bodies) {
      const r = await call('PATCH', `${t.api}/agents/me`, { key: b.api_key, json });
      expect([JSON.stringify(json).slice(0, 80), r.status < 500, r.status >= 400]).toEqual([
        JSON.stringify(json).slice(0, 80),
        true,
        true,
      ]);
    }
    const me = await call('GET', `${t.api}/agents/me`, { key: b.api_key });
    expect(me.body.delivery).toMatchObject({ webhook_url: h.url, webhook_secret_set: true });
    expect(JSON.stringify(me.body)).not.toContain(SECRET);
  });
});

describe('non-canonical IPv6 spellings', () => {
  it('regression: (low, spec-literal) a non-canonical IPv6 literal is refused like non-canonical IPv4', async () => {
    const plain = await startTestServer();
    try {
      const out: Array<[string, number]> = [];
      for (const [i, url] of ['https://[2001:0db8:0:0::0001]/', 'https://[2001:DB8::1]/'].entries()) {
        const r = await call('POST', `${plain.api}/register`, {
          json: {
            name: `v6-${i}`,
            tenant: 'acme',
            public_key: (await import('../helpers/server.js')).newKeypair().publicPem,
            key_algorithm: 'Ed25519',
            delivery: { webhook_url: url, webhook_secret: SECRET },
          },
        });
        out.push([url, r.status]);
      }
      // Observed on a40d722: 201 for both (only IPv4 spellings are compared with the raw host).
      expect(out).toEqual([
        ['https://[2001:0db8:0:0::0001]/', 400],
        ['https://[2001:DB8::1]/', 400],
      ]);
    } finally {
      await plain.close();
    }
  });
});

describe('shutdown with a receiver that never answers', () => {
  it('close() returns promptly while a webhook POST hangs', async () => {
    const requests: IncomingMessage[] = [];
    const got = new EventEmitter();
    const server: Server = createServer((req) => {
      requests.push(req);
      got.emit('req');
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/slow`;
    const t = await startTestServer({ webhookAllowHosts: ['127.0.0.1/32'] });
    try {
      const a = await register(t.api, 'slow-a', 'acme');
      const b = await register(t.api, 'slow-b', 'acme', { delivery: { webhook_url: url, webhook_secret: SECRET } });
      const r = await routeOk(t.api, a, msg(b.address, 'slow'));
      expect(r.status).toBe('queued');
      await until(got, 'req', () => requests.length > 0, 'the POST');
      const started = Date.now();
      await t.server.close();
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      server.closeAllConnections();
      server.close();
      await t.close();
    }
  });
});

describe('kill -9 right after the queued answer, receiver down', () => {
  it('the message is POSTed exactly once after the restart', async () => {
    const dataDir = tempDir();
    const h = await hook();
    const port = Number(new URL(h.url).port);
    await h.close();
    const env = { AMP_WEBHOOK_ALLOW_HOSTS: '127.0.0.1/32' };
    let relay = await spawnServer(dataDir, [], env);
    try {
      const a = await register(relay.api, 'k-a', 'acme');
      const b = await register(relay.api, 'k-b', 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
      const r = await routeOk(relay.api, a, msg(b.address, 'crash'));
      expect(r.status).toBe('queued');
      relay.proc.kill('SIGKILL');
      expect(await relay.exited).toBe('SIGKILL');
      await h.listen(port);
      relay = await spawnServer(dataDir, [], env);
      await until(h, 'request', () => h.hits.length >= 1, 'the POST after restart', 45_000);
      const pending = async () =>
        ((await call('GET', `${relay.api}/messages/pending?limit=10`, { key: b.api_key })).body.messages as any[])
          .length;
      for (let i = 0; i < 50 && (await pending()) > 0; i++) await new Promise((res) => setTimeout(res, 100));
      expect(await pending()).toBe(0);
      expect(h.hits.map((x) => x.headers['x-amp-message-id'])).toEqual([r.id]);
    } finally {
      await relay.stop('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);
});
