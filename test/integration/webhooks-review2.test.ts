// Second independent review of the webhook path (issue 16, §18) on branch i16-wh: reproductions
// against the real server, a node:http receiver on 127.0.0.1 and, for approval mode, the AID admin
// routes. Tests named `regression: ...` failed before their fix (see the commit that adds each).

import { EventEmitter } from 'node:events';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, asAdmin, requestRegistration, startAidServer, type AidServer } from '../helpers/aid.js';
import { until } from '../helpers/outbound.js';
import { call, type Registered, register, routeOk, startTestServer, type TestServer } from '../helpers/server.js';
import { type Answer, Hook, SECRET } from '../helpers/webhook.js';

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
afterAll(async () => {
  for (const h of hooks) await h.close();
});

const msg = (to: string, subject: string) => ({ to, subject, payload: { type: 'notification', message: subject } });
const hooked = (h: Hook) => ({ delivery: { webhook_url: h.url, webhook_secret: SECRET } });

async function pendingIds(api: string, b: Registered): Promise<string[]> {
  const p = await call('GET', `${api}/messages/pending?limit=10`, { key: b.api_key });
  return ((p.body?.messages as any[]) ?? []).map((m) => m.envelope.id);
}

/** A gauge's value in the /metrics text (0 when absent). */
async function gauge(t: TestServer, name: string, labels: string): Promise<number> {
  const text = (await call('GET', `${t.url}/metrics`)).body as string;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('approval mode: a recipient with a webhook, awaiting approval', () => {
  let s: AidServer;
  let log: ReturnType<typeof logSink>;
  beforeAll(async () => {
    log = logSink();
    s = await startAidServer({ registrationMode: 'approval', webhookAllowHosts: ['127.0.0.1/32'], logger: log.logger });
  });
  afterAll(() => s.t.close());

  it('regression: messages queued while it awaited approval are POSTed once it is approved', async () => {
    const { t } = s;
    const h = await hook();
    const sender = await register(t.api, 'ap-sender', 'acme');
    const regA = await requestRegistration(s, sender);
    expect((await asAdmin(s, 'POST', `/${regA.body.data.id}/approve`)).status).toBe(200);
    const b = await register(t.api, 'ap-hooked', 'acme', hooked(h));
    expect((await call('GET', `${t.api}/agents/me`, { key: b.api_key })).body.status).toBe('pending');
    // A message to an agent awaiting approval is accepted (only a suspended recipient is refused).
    const r = await routeOk(t.api, sender, msg(b.address, 'while pending'));
    const regB = await requestRegistration(s, b);
    expect((await asAdmin(s, 'POST', `/${regB.body.data.id}/approve`)).status).toBe(200);
    expect((await call('GET', `${t.api}/agents/me`, { key: b.api_key })).body.status).toBe('active');
    // Before the fix: never enqueued for the webhook (afterAppend skipped a recipient not active),
    // so a webhook-only agent never got it.
    await until(h, 'request', () => h.hits.length >= 1, 'the POST after the approval');
    expect(h.hits.map((x) => x.headers['x-amp-message-id'])).toEqual([r.id]);
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound delivered' && l.id === r.id));
    expect(await pendingIds(t.api, b)).toEqual([]);
  });
});

describe('parked items that no longer have a reason to be kept', () => {
  let t: TestServer;
  let log: ReturnType<typeof logSink>;
  let n = 0;
  beforeAll(async () => {
    log = logSink();
    t = await startTestServer({ webhookAllowHosts: ['127.0.0.1/32'], logger: log.logger });
  });
  afterAll(() => t.close());

  let before = 0;
  async function parkedOne() {
    n++;
    before = await gauge(t, 'amp_outbound_parked', 'kind="webhook"');
    const h = await hook([400]);
    const a = await register(t.api, `pk-a${n}`, 'acme');
    const b = await register(t.api, `pk-b${n}`, 'acme', hooked(h));
    const r = await routeOk(t.api, a, msg(b.address, `parked ${n}`));
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound parked' && l.id === r.id));
    expect(await gauge(t, 'amp_outbound_parked', 'kind="webhook"')).toBe(before + 1);
    return { h, a, b, r };
  }

  it('regression: the recipient polls and acks a 4xx-parked message: it leaves the outbound queue', async () => {
    const { b, r } = await parkedOne();
    expect((await call('DELETE', `${t.api}/messages/pending/${r.id}`, { key: b.api_key })).status).toBe(200);
    // Before the fix: still parked (and counted) until the message's relay expiry, days later.
    expect(await gauge(t, 'amp_outbound_parked', 'kind="webhook"')).toBe(before);
    expect(await gauge(t, 'amp_outbound_queue_depth', 'kind="webhook"')).toBe(0);
  });

  it('regression: the webhook removed by PATCH ("webhook_url": null): its parked items leave, unsent', async () => {
    const { h, b, r } = await parkedOne();
    const p = await call('PATCH', `${t.api}/agents/me`, { key: b.api_key, json: { delivery: { webhook_url: null } } });
    expect(p.status).toBe(200);
    await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound obsolete' && l.id === r.id));
    expect(await gauge(t, 'amp_outbound_parked', 'kind="webhook"')).toBe(before);
    expect(h.hits).toHaveLength(1);
    expect(await pendingIds(t.api, b)).toEqual([r.id]);
  });
});

describe('the breaker of one agent webhook', () => {
  it('10 failures in a row pause that webhook (no 11th POST), others go on', async () => {
    const log = logSink();
    // Retries 20 ms apart instead of 30 s / 2 min; the breaker as in production (10 failures, 5 min).
    const t = await startTestServer({
      webhookAllowHosts: ['127.0.0.1/32'],
      webhookPolicy: { retry: { delaysMs: [20, 20] } },
      logger: log.logger,
    });
    try {
      const failing = await hook(Array(20).fill(500));
      const fine = await hook();
      const a = await register(t.api, 'br-a', 'acme');
      const x = await register(t.api, 'br-x', 'acme', hooked(failing));
      const y = await register(t.api, 'br-y', 'acme', hooked(fine));
      const ids: string[] = [];
      for (let i = 0; i < 4; i++) ids.push((await routeOk(t.api, a, msg(x.address, `fails ${i}`))).id);
      const failed = () =>
        log.lines.filter((l) => l.target === `webhook:${x.agent_id}` && l.msg !== 'outbound obsolete');
      await until(log.events, 'line', () => failed().length >= 10, '10 failed attempts', 8000);
      expect(await gauge(t, 'amp_outbound_breakers_open', 'kind="webhook"')).toBe(1);
      // Another agent's webhook is not paused.
      const r = await routeOk(t.api, a, msg(y.address, 'other agent'));
      await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound delivered' && l.id === r.id));
      // 4 messages x 3 attempts = 12 possible; the breaker stopped at 10 (the rest wait 5 min).
      expect(failing.hits).toHaveLength(10);
      expect(await gauge(t, 'amp_outbound_queue_depth', 'kind="webhook"')).toBeGreaterThan(0);
      expect(await pendingIds(t.api, x)).toEqual(ids);
    } finally {
      await t.close();
    }
  });
});

describe('an agent deregistered while its timed suspension holds webhook items', () => {
  it('regression: the deferred items leave the outbound queue with the agent', async () => {
    const log = logSink();
    const t = await startTestServer({
      webhookAllowHosts: ['127.0.0.1/32'],
      webhookPolicy: { retry: { delaysMs: [300, 300] } },
      logger: log.logger,
    });
    try {
      const token = await adminToken(t, { scopes: ['amp:admin'] });
      const auth = { Authorization: `Bearer ${token}` };
      const h = await hook([500]);
      const a = await register(t.api, 'dd-a', 'acme');
      const b = await register(t.api, 'dd-b', 'acme', hooked(h));
      const seen = (what: string, id: string) => () => log.lines.some((l) => l.msg === what && l.id === id);
      const r = await routeOk(t.api, a, msg(b.address, 'deferred then deregistered'));
      await until(log.events, 'line', seen('outbound retry', r.id), 'the first attempt failed');
      const s = await call('POST', `${t.api}/agents/${b.agent_id}/suspend`, {
        headers: auth,
        json: { duration_hours: 1 },
      });
      expect(s.status).toBe(200);
      await until(log.events, 'line', seen('outbound deferred', r.id), 'held until the suspension ends');
      const d = await call('DELETE', `${t.api}/admin/agents/${b.agent_id}`, { headers: auth });
      expect(d.status).toBe(200);
      // Before the fix: only parked items were released; this one stayed queued for the hour.
      await until(log.events, 'line', seen('outbound obsolete', r.id), 'dropped with the agent');
      expect(await gauge(t, 'amp_outbound_queue_depth', 'kind="webhook"')).toBe(0);
      expect(h.hits).toHaveLength(1);
    } finally {
      await t.close();
    }
  });
});
