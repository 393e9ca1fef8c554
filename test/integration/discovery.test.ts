// Discovery, info, health, organization, CORS, HEAD and the two API mounts (spec §1, §3, §24).

import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
beforeAll(async () => {
  t = await startTestServer({ contact: 'ops@example.com', publicUrl: 'https://amp.example.com' });
});
afterAll(() => t.close());

describe('discovery documents', () => {
  it('serves the well-known document with the provider key', async () => {
    const r = await call('GET', `${t.url}/.well-known/agent-messaging.json`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('public, max-age=3600');
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(r.body).toMatchObject({
      version: 'AMP1',
      endpoint: 'https://amp.example.com/api/v1',
      provider: 'aimaestro.local',
      capabilities: ['registration', 'local-delivery', 'relay-queue', 'websockets', 'webhooks', 'attachments'],
      contact: 'ops@example.com',
    });
    expect(r.body.public_key).toMatch(/^-----BEGIN PUBLIC KEY-----\n[A-Za-z0-9+/=]+\n-----END PUBLIC KEY-----$/);
    expect(r.body.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}=$/);
  });

  it.each(['/v1', '/api/v1'])('serves info under %s', async (mount) => {
    const r = await call('GET', `${t.url}${mount}/info`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('public, max-age=300');
    expect(r.body).toMatchObject({
      provider: 'aimaestro.local',
      version: 'amp/0.1',
      registration_modes: ['open'],
      implementation: { name: 'amp-relay', version: '0.1.0' },
      key_algorithms: ['Ed25519'],
      signatures: 'optional',
      endpoint: 'https://amp.example.com/api/v1',
      limits: {
        max_subject_chars: 256,
        max_message_bytes: 65536,
        max_context_bytes: 262144,
        max_stored_message_bytes: 524288,
        max_request_bytes: 1048576,
        max_queue_per_agent: 1000,
        relay_ttl_seconds: 604800,
      },
    });
    expect(Object.keys(r.body).slice(0, 7)).toEqual([
      'provider',
      'version',
      'public_key',
      'fingerprint',
      'capabilities',
      'registration_modes',
      'rate_limits',
    ]);
    expect(r.body.websocket).toEqual({
      paths: ['/v1/ws', '/api/v1/ws'],
      subprotocols: ['amp.v1', 'amp.v1+msgpack'],
      auth_timeout_seconds: 10,
      idle_timeout_seconds: 300,
    });
    expect(r.body.rate_limits).toEqual({ messages_per_minute: 6000, api_requests_per_minute: 1200 });
  });

  it.each(['/v1', '/api/v1'])('reports health under %s', async (mount) => {
    const r = await call('GET', `${t.url}${mount}/health`);
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body).toMatchObject({
      status: 'healthy',
      version: '0.1.0',
      provider: 'aimaestro.local',
      federation: false,
      agents_online: 0,
    });
    expect(Number.isInteger(r.body.uptime_seconds)).toBe(true);
  });

  it('answers the reference CLI organization lookup', async () => {
    const r = await call('GET', `${t.url}/api/organization`);
    expect(r.body).toEqual({ organization: 'default' });
  });
});

describe('HTTP conventions', () => {
  it('answers OPTIONS preflight with 204 and the allowed headers', async () => {
    const r = await call('OPTIONS', `${t.api}/route`);
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-headers')).toBe(
      'Authorization, Content-Type, X-API-Key, Idempotency-Key',
    );
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('answers an unknown path with 404 JSON and a wrong method with 405 + Allow', async () => {
    const a = await call('GET', `${t.api}/nothing-here`);
    expect(a.status).toBe(404);
    expect(a.body.error).toBe('not_found');
    const b = await call('GET', `${t.api}/route`);
    expect(b.status).toBe(405);
    expect(b.headers.get('allow')).toBe('POST');
    expect(b.body.error).toBe('method_not_allowed');
    const c = await call('PUT', `${t.api}/messages/pending`);
    expect(c.status).toBe(405);
    expect(c.headers.get('allow')?.split(', ').sort()).toEqual(['DELETE', 'GET', 'POST']);
  });

  it('derives URLs from a well-formed Host when no public URL is set', async () => {
    // X-Forwarded-Proto counts from a trusted proxy only (forwarded-headers.test.ts).
    const t2 = await startTestServer({ trustedProxies: ['127.0.0.1'] });
    try {
      const r = await call('GET', `${t2.url}/.well-known/agent-messaging.json`);
      expect(r.body.endpoint).toBe(`${t2.url}/api/v1`);
      const fwd = await call('GET', `${t2.url}/.well-known/agent-messaging.json`, {
        headers: { 'X-Forwarded-Proto': 'https' },
      });
      expect(fwd.body.endpoint).toBe(`${t2.url.replace('http:', 'https:')}/api/v1`);
    } finally {
      await t2.close();
    }
  });
});

describe('HTTP details (corsOrigin https://app.example)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ corsOrigin: 'https://app.example' });
  });
  afterAll(() => t.close());

  it('always sends Access-Control-Allow-Origin: * on discovery, the configured origin elsewhere', async () => {
    expect(
      (await call('GET', `${t.url}/.well-known/agent-messaging.json`)).headers.get('access-control-allow-origin'),
    ).toBe('*');
    expect((await call('GET', `${t.api}/health`)).headers.get('access-control-allow-origin')).toBe(
      'https://app.example',
    );
  });

  it('answers a CORS preflight with every method the routes take (PUT for AID ones)', async () => {
    const r = await call('OPTIONS', `${t.url}/acme/agent_registrations/reg_x/suspend`, {
      headers: { Origin: 'https://app.example', 'Access-Control-Request-Method': 'PUT' },
    });
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe('https://app.example');
    const methods = (r.headers.get('access-control-allow-methods') ?? '').split(/,\s*/);
    for (const m of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) expect(methods).toContain(m);
  });

  it('answers HEAD without a body, keeping the connection in sync', async () => {
    const port = new URL(t.url).port;
    const text = await new Promise<string>((resolve, reject) => {
      const sock = connect(Number(port), '127.0.0.1');
      let buf = '';
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`no complete answers within 5 s: ${JSON.stringify(buf)}`));
      }, 5000);
      sock.on('data', (d) => {
        buf += d;
        // Two complete answers: the HEAD headers, then the GET with its JSON body.
        if (/HTTP\/1\.1 200[\s\S]*HTTP\/1\.1 200[\s\S]*\r\n\r\n\{[\s\S]*\}$/.test(buf)) {
          clearTimeout(timer);
          sock.end();
          resolve(buf);
        }
      });
      sock.on('error', reject);
      sock.write('HEAD /v1/health HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/info HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    const [head, get] = text.split(/(?=HTTP\/1\.1 )/);
    expect(head).toMatch(/Content-Length: 0\r\n/);
    expect(head.endsWith('\r\n\r\n')).toBe(true);
    expect(get).toContain('"provider":"aimaestro.local"');
  });
});
