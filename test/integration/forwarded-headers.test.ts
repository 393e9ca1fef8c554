// Absolute URLs in discovery, info, registration answers and agent cards (issue 13 item 11):
// AMP_PUBLIC_URL when set; else the Host, with X-Forwarded-Proto / X-Forwarded-Host believed only
// from AMP_TRUSTED_PROXIES. The long-cached discovery document names what it varies on.

import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/schema.js';
import { newKeypair, startTestServer, type TestServer } from '../helpers/server.js';

const FORGED = { 'X-Forwarded-Proto': 'https', 'X-Forwarded-Host': 'evil.example' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: any;
}

/** One HTTP/1.1 request with exactly these headers (fetch would not send our Host). */
function send(url: string, method: string, headers: Record<string, string>, body?: unknown): Promise<Answer> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(url, {
      method,
      headers: { ...headers, ...(text ? { 'Content-Type': 'application/json' } : {}) },
    });
    req.on('response', (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (data += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(data) }));
    });
    req.on('error', reject);
    req.end(text);
  });
}

/** Discovery, info, a registration answer and the agent card, all with `headers`. */
async function endpoints(t: TestServer, headers: Record<string, string>) {
  const wk = await send(`${t.url}/.well-known/agent-messaging.json`, 'GET', headers);
  const info = await send(`${t.api}/info`, 'GET', headers);
  const reg = await send(`${t.api}/register`, 'POST', headers, {
    tenant: 'fwd',
    name: `agent-${Math.random().toString(36).slice(2, 10)}`,
    public_key: newKeypair().publicPem,
    key_algorithm: 'Ed25519',
  });
  expect(reg.status).toBe(201);
  const card = await send(`${t.api}/agents/me/card`, 'GET', {
    ...headers,
    Authorization: `Bearer ${reg.body.api_key}`,
  });
  return {
    discovery: wk.body.endpoint,
    info: info.body.endpoint,
    register: reg.body.provider?.endpoint ?? reg.body.endpoint,
    card: card.body.provider_endpoint,
    vary: wk.headers.vary,
    cache: wk.headers['cache-control'],
  };
}

const all = (endpoint: string) => ({ discovery: endpoint, info: endpoint, register: endpoint, card: endpoint });

let t: TestServer | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
});

describe('URLs derived from a request', () => {
  it('ignore X-Forwarded-Proto and X-Forwarded-Host from a peer that is not a trusted proxy', async () => {
    t = await startTestServer();
    const base = `${t.url}/api/v1`;
    expect(await endpoints(t, FORGED)).toMatchObject({ ...all(base), vary: 'Host', cache: 'public, max-age=3600' });
    expect(await endpoints(t, {})).toMatchObject(all(base));
  });

  it('follow X-Forwarded-Proto and X-Forwarded-Host from a trusted proxy (127.0.0.1 listed)', async () => {
    t = await startTestServer({ trustedProxies: ['127.0.0.1'] });
    const r = await endpoints(t, { 'X-Forwarded-Proto': 'https, http', 'X-Forwarded-Host': 'amp.example.org' });
    expect(r).toMatchObject({
      ...all('https://amp.example.org/api/v1'),
      vary: 'Host, X-Forwarded-Proto, X-Forwarded-Host',
    });
    const proto = await endpoints(t, { 'X-Forwarded-Proto': 'https' });
    expect(proto).toMatchObject(all(`${t.url.replace('http:', 'https:')}/api/v1`));
  });

  it('trust a CIDR that holds the peer, and not one that does not', async () => {
    t = await startTestServer({ trustedProxies: ['10.0.0.0/8', '127.0.0.0/8'] });
    expect((await endpoints(t, FORGED)).discovery).toBe('https://evil.example/api/v1');
    await t.close();
    t = await startTestServer({ trustedProxies: ['10.0.0.0/8', '::1'] });
    expect((await endpoints(t, FORGED)).discovery).toBe(`${t.url}/api/v1`);
  });

  it('with AMP_PUBLIC_URL, ignore Host and forwarded headers, even from a trusted proxy', async () => {
    t = await startTestServer({ publicUrl: 'https://amp.example.com/', trustedProxies: ['127.0.0.1'] });
    const r = await endpoints(t, { ...FORGED, Host: 'other.example:8080' });
    expect(r).toMatchObject(all('https://amp.example.com/api/v1'));
    expect(r.vary).toBeUndefined();
    expect(r.cache).toBe('public, max-age=3600');
  });

  it('refuses AMP_TRUSTED_PROXIES entries that are not IPs or CIDRs', () => {
    expect(() => loadConfig({ env: { AMP_TRUSTED_PROXIES: '127.0.0.1, proxy.local, 10.0.0.0/33' } })).toThrow(
      /AMP_TRUSTED_PROXIES entries are IP addresses or CIDRs \(got 'proxy\.local'\)[\s\S]*got '10\.0\.0\.0\/33'/,
    );
    expect(loadConfig({ flags: { trustedProxies: '10.0.0.0/8,::1' } }).trustedProxies).toEqual(['10.0.0.0/8', '::1']);
  });
});
