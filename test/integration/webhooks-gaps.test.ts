// Three known gaps of the webhook path (issue 16, §18), each shown against real servers on loopback:
// parked items released when the agent is unsuspended (or its timed suspension ends), webhook acks
// counted in amp_messages_acked_total, and a name with several checked addresses tried address
// after address (the resolver is injected: /etc/hosts here maps localhost to 127.0.0.1 only).

import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { issuerOf, mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import { parseAllowList } from '../../src/outbound/allow-list.js';
import { fetchChecked, OutboundFailure } from '../../src/outbound/fetch-checked.js';
import { type ResolvedAddress, UrlRefusedError } from '../../src/outbound/ssrf.js';
import { activeRegistration, asAdmin, startAidServer } from '../helpers/aid.js';
import { until } from '../helpers/outbound.js';
import { call, type Registered, register, routeOk, startTestServer, type TestServer } from '../helpers/server.js';
import { type Answer, Hook, SECRET } from '../helpers/webhook.js';
import { closeAllWs } from '../helpers/ws.js';

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

async function adminToken(t: TestServer): Promise<string> {
  const keys = await SigningKeys.open(t.dataDir, 'RS256');
  return mintAdminToken(keys, {
    issuer: issuerOf(t.publicBase, 'acme'),
    tenant: 'acme',
    email: 'ops@acme.com',
    scopes: ['amp:admin'],
  });
}

async function pendingIds(t: TestServer, b: Registered): Promise<string[]> {
  const p = await call('GET', `${t.api}/messages/pending?limit=10`, { key: b.api_key });
  return ((p.body?.messages as any[]) ?? []).map((m) => m.envelope.id);
}

/** The value of a counter sample in the /metrics text (0 when absent). */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('suspension and the webhook', () => {
  let t: TestServer;
  let log: ReturnType<typeof logSink>;
  let token: string;
  let n = 0;
  beforeAll(async () => {
    log = logSink();
    t = await startTestServer({
      webhookAllowHosts: ['127.0.0.1/32'],
      webhookPolicy: { retry: { delaysMs: [300, 300] } },
      logger: log.logger,
    });
    token = await adminToken(t);
  });
  afterAll(() => t.close());

  const admin = (b: Registered, action: 'suspend' | 'unsuspend', json: unknown = {}) =>
    call('POST', `${t.api}/agents/${b.agent_id}/${action}`, { headers: { Authorization: `Bearer ${token}` }, json });
  const seen = (what: string, id: string) => () => log.lines.some((l) => l.msg === what && l.id === id);

  async function heldBySuspension(answers: Answer[], suspendBody: unknown) {
    n++;
    const h = await hook(answers);
    const a = await register(t.api, `gs-a${n}`, 'acme');
    const b = await register(t.api, `gs-b${n}`, 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    const r = await routeOk(t.api, a, msg(b.address, `held ${n}`));
    await until(log.events, 'line', seen('outbound retry', r.id), 'the first attempt failed');
    expect((await admin(b, 'suspend', suspendBody)).status).toBe(200);
    return { h, a, b, r };
  }

  it('regression: unsuspend releases what the suspension held: POSTed and acked', async () => {
    const { h, b, r } = await heldBySuspension([500], {});
    await until(log.events, 'line', seen('outbound deferred', r.id), 'held while suspended');
    expect(h.hits).toHaveLength(1);
    expect((await admin(b, 'unsuspend')).status).toBe(200);
    // Before the fix: the item stayed parked ('agent not active') until the message expired.
    await until(log.events, 'line', seen('outbound delivered', r.id), 'delivered after the unsuspend', 5000);
    expect(h.hits.map((x) => x.headers['x-amp-message-id'])).toEqual([r.id, r.id]);
    // Holding it counted no attempt: the POST after the lifting is attempt 2 (it keeps its 2-min retry).
    expect(h.hits.map((x) => x.headers['x-amp-delivery-attempt'])).toEqual(['1', '2']);
    expect(await pendingIds(t, b)).toEqual([]);
  });

  it('regression: a timed suspension that ends by itself releases what it held', async () => {
    // 0.0005 h = 1.8 s: the item waits for the end of the suspension, then is POSTed.
    const { h, b, r } = await heldBySuspension([500], { duration_hours: 0.0005 });
    await until(log.events, 'line', seen('outbound deferred', r.id), 'held while suspended');
    expect(h.hits).toHaveLength(1);
    await until(log.events, 'line', seen('outbound delivered', r.id), 'delivered once the suspension ended', 8000);
    expect(h.hits).toHaveLength(2);
    expect(await pendingIds(t, b)).toEqual([]);
  });

  it('a 4xx-parked item stays parked across a suspension and its lifting (no retry of a refusal)', async () => {
    n++;
    const h = await hook([400]);
    const a = await register(t.api, `gs-a${n}`, 'acme');
    const b = await register(t.api, `gs-b${n}`, 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
    const refused = await routeOk(t.api, a, msg(b.address, 'refused by the receiver'));
    await until(log.events, 'line', seen('outbound parked', refused.id), 'parked by the 400');
    const held = await routeOk(t.api, a, msg(b.address, 'sent before the suspension'));
    await until(log.events, 'line', seen('outbound delivered', held.id), 'the 2nd delivered');
    expect((await admin(b, 'suspend')).status).toBe(200);
    expect((await admin(b, 'unsuspend')).status).toBe(200);
    // A third message after the lifting proves the target is live again; the 400 one is not retried.
    const after = await routeOk(t.api, a, msg(b.address, 'after the lifting'));
    await until(log.events, 'line', seen('outbound delivered', after.id), 'the 3rd delivered');
    expect(h.hits.map((x) => x.headers['x-amp-message-id'])).toEqual([refused.id, held.id, after.id]);
    expect(await pendingIds(t, b)).toEqual([refused.id]);
  });
});

describe('an AID suspension and reactivation', () => {
  it('regression: the reactivation releases what the AID suspension held', async () => {
    const log = logSink();
    const s = await startAidServer({
      webhookAllowHosts: ['127.0.0.1/32'],
      webhookPolicy: { retry: { delaysMs: [300, 300] } },
      logger: log.logger,
    });
    try {
      const { t } = s;
      const seen = (what: string, id: string) => () => log.lines.some((l) => l.msg === what && l.id === id);
      const h = await hook([500]);
      const a = await register(t.api, 'ga-a', 'acme');
      const b = await register(t.api, 'ga-b', 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
      const reg = await activeRegistration(s, b);
      const r = await routeOk(t.api, a, msg(b.address, 'held by AID'));
      await until(log.events, 'line', seen('outbound retry', r.id), 'the first attempt failed');
      expect((await asAdmin(s, 'POST', `/${reg}/suspend`)).status).toBe(200);
      await until(log.events, 'line', seen('outbound deferred', r.id), 'held while suspended');
      expect((await asAdmin(s, 'POST', `/${reg}/reactivate`)).status).toBe(200);
      await until(log.events, 'line', seen('outbound delivered', r.id), 'delivered after the reactivation');
      expect(h.hits).toHaveLength(2);
      expect(await pendingIds(t, b)).toEqual([]);
    } finally {
      await s.t.close();
    }
  });
});

describe('metrics', () => {
  it('regression: a webhook 2xx counts in amp_messages_acked_total{method="webhook"}', async () => {
    const log = logSink();
    const t = await startTestServer({ webhookAllowHosts: ['127.0.0.1/32'], logger: log.logger });
    try {
      const h = await hook();
      const a = await register(t.api, 'gm-a', 'acme');
      const b = await register(t.api, 'gm-b', 'acme', { delivery: { webhook_url: h.url, webhook_secret: SECRET } });
      const before = (await call('GET', `${t.url}/metrics`)).body as string;
      const r1 = await routeOk(t.api, a, msg(b.address, 'one'));
      const r2 = await routeOk(t.api, a, msg(b.address, 'two'));
      for (const r of [r1, r2]) {
        await until(log.events, 'line', () => log.lines.some((l) => l.msg === 'outbound delivered' && l.id === r.id));
      }
      const after = (await call('GET', `${t.url}/metrics`)).body as string;
      const delta = (labels: string) =>
        sample(after, 'amp_messages_acked_total', labels) - sample(before, 'amp_messages_acked_total', labels);
      expect(delta('method="webhook"')).toBe(2);
      expect(delta('method="rest"') + delta('method="ws"')).toBe(0);
    } finally {
      await t.close();
    }
  });
});

describe('fetchChecked: a name with several checked addresses', () => {
  let server: Server;
  let port = 0;
  const hits: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      hits.push(String(req.socket.localAddress));
      req.resume();
      req.on('end', () => res.writeHead(200).end('ok'));
    });
    server.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const resolverOf =
    (...addresses: string[]) =>
    async (): Promise<ResolvedAddress[]> =>
      addresses.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  // CIDRs, not the name: every address is checked on its own.
  const allow = parseAllowList('127.0.0.0/8,::1/128').allow;

  it('regression: the first address refuses the connection: the next checked one is used', async () => {
    // Nothing listens on 127.0.0.2:<port> (the receiver is bound to 127.0.0.1 only).
    const resolver = resolverOf('127.0.0.2', '127.0.0.1');
    const r = await fetchChecked(`http://multi.test:${port}/hook`, { allow, resolver, method: 'POST', body: '{}' });
    expect(r).toMatchObject({ status: 200, address: '127.0.0.1' });
    expect(hits.at(-1)).toBe('127.0.0.1');
  });

  it('regression: ::1 first (the receiver is on IPv4 only), then 127.0.0.1', async () => {
    const resolver = resolverOf('::1', '127.0.0.1');
    const r = await fetchChecked(`http://multi.test:${port}/hook`, { allow, resolver, method: 'POST', body: '{}' });
    expect(r).toMatchObject({ status: 200, address: '127.0.0.1' });
  });

  it('regression: https: the next address, the certificate still checked against the name', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'amp-wh-multi-'));
    const tls = createHttpsServer();
    try {
      execFileSync(
        'openssl',
        ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes']
          .concat(['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '2'])
          .concat(['-subj', '/CN=multi.test', '-addext', 'subjectAltName=DNS:multi.test']),
        { stdio: 'pipe' },
      );
      const cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
      tls.setSecureContext({ key: readFileSync(join(dir, 'key.pem')), cert });
      tls.on('request', (req, res) => req.resume().on('end', () => res.writeHead(200).end('ok')));
      tls.listen(0, '127.0.0.1');
      await new Promise((r) => tls.once('listening', r));
      const url = `https://multi.test:${(tls.address() as AddressInfo).port}/hook`;
      const resolver = resolverOf('::1', '127.0.0.2', '127.0.0.1');
      const r = await fetchChecked(url, { allow, resolver, ca: cert, method: 'POST', body: '{}' });
      expect(r).toMatchObject({ status: 200, address: '127.0.0.1' });
      // Without the CA: the certificate is refused at the address that answered (a failure, not a 2xx).
      const e = await fetchChecked(url, { allow, resolver }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(OutboundFailure);
    } finally {
      tls.closeAllConnections();
      await new Promise((r) => tls.close(r));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('regression: every address refused: one network failure naming each (a retry), nothing sent', async () => {
    const before = hits.length;
    const resolver = resolverOf('127.0.0.2', '127.0.0.3');
    const e = await fetchChecked(`http://multi.test:${port}/hook`, { allow, resolver }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OutboundFailure);
    expect(e).toMatchObject({ kind: 'network' });
    expect((e as Error).message).toMatch(/ECONNREFUSED 127\.0\.0\.2.*ECONNREFUSED 127\.0\.0\.3/);
    expect(hits.length).toBe(before);
  });

  it('one unchecked address among them refuses the whole name: nothing is tried', async () => {
    const before = hits.length;
    const resolver = resolverOf('127.0.0.2', '10.1.2.3', '127.0.0.1');
    const e = await fetchChecked(`http://multi.test:${port}/hook`, { allow, resolver }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(UrlRefusedError);
    expect(e).toMatchObject({ reason: 'refused_address' });
    expect(hits.length).toBe(before);
  });
});
