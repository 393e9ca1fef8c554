// The federation outbound adapter (spec §19.1) against a local receiver (node:http on loopback, http
// allowed for 127.0.0.1): the request it sends (path, headers, a provider signature that verifies
// over "<timestamp>.<raw body>", the body as queued) and what each answer makes of the item.

import { verify } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { rmSync } from 'node:fs';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { providerSigner } from '../../src/crypto/federation-keys.js';
import { loadOrCreateProviderKey } from '../../src/crypto/provider-key.js';
import { parseAllowList } from '../../src/outbound/allow-list.js';
import type { OutboundItem } from '../../src/outbound/index.js';
import { federationAdapter } from '../../src/relay/federation/adapter.js';
import { Providers } from '../../src/relay/federation/providers.js';
import { tempDir } from '../helpers/server.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let server: Server;
let port = 0;
const seen: Seen[] = [];
let answer: { status: number; body?: unknown; headers?: Record<string, string> } = { status: 200 };
const dir = tempDir('amp-fedadapter-');
const key = loadOrCreateProviderKey(dir);
const allowHttp = parseAllowList('127.0.0.1').allow;

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(answer.status, { 'content-type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body ?? {}));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function adapter() {
  const pins = [
    {
      domain: 'b.example',
      endpoint: `http://127.0.0.1:${port}/v1`,
      fingerprint: 'SHA256:x',
      publicKeyPem: key.publicKey.pem,
    },
  ];
  const providers = new Providers({ pins, allowHttp });
  const signer = { domain: 'a.example', sign: providerSigner(key), allowHttp };
  return federationAdapter(providers, signer, pino({ level: 'silent' }));
}

const body = JSON.stringify({
  envelope: { id: 'msg_1_0123456789abcdef' },
  payload: { message: 'hi' },
  sender_public_key: '',
});
const item: OutboundItem = {
  ...{ target: 'federation:b.example', id: 'msg_1_0123456789abcdef', body, createdAt: 0, expiresAt: null },
  ...{ attempts: 0, nextAt: 0, state: 'pending' as OutboundItem['state'] },
};

describe('federation adapter', () => {
  it('POSTs the queued body to <endpoint>/federation/deliver, signed by the provider key', async () => {
    answer = { status: 200, body: { accepted: true, id: item.id, delivered: true, method: 'websocket' } };
    seen.length = 0;
    expect(await adapter().deliver(item, new AbortController().signal)).toBe('delivered');
    const [req] = seen;
    expect([req!.method, req!.url, req!.body]).toEqual(['POST', '/v1/federation/deliver', body]);
    expect(req!.headers['x-amp-provider']).toBe('a.example');
    expect(req!.headers['content-type']).toBe('application/json');
    const ts = req!.headers['x-amp-timestamp'] as string;
    expect(Math.abs(Number(ts) - Date.now() / 1000)).toBeLessThan(5);
    const sig = Buffer.from(req!.headers['x-amp-signature'] as string, 'base64');
    expect(verify(null, Buffer.from(`${ts}.${body}`), key.publicKey.keyObject, sig)).toBe(true);
  });

  it.each([
    [{ status: 200, body: { accepted: true, duplicate: true } }, 'delivered'],
    [
      { status: 429, body: { error: 'rate_limited' }, headers: { 'Retry-After': '7' } },
      { retry: true, reason: '429 rate_limited', retryAfterMs: 7000 },
    ],
    [
      { status: 403, body: { error: 'key_mismatch' } },
      { park: true, reason: '403 key_mismatch' },
    ],
    [
      { status: 404, body: { error: 'recipient_not_found' } },
      { park: true, reason: '404 recipient_not_found' },
    ],
    [
      { status: 409, body: { error: 'replay_detected', field: 'envelope.id' } },
      { park: true, reason: '409 replay_detected' },
    ],
    [
      { status: 409, body: { error: 'replay_detected', field: 'X-AMP-Signature' } },
      { retry: true, reason: '409 signature reused', retryAfterMs: 1000 },
    ],
    [
      { status: 500, body: { error: 'internal_error' } },
      { retry: true, reason: '500 internal_error' },
    ],
    [
      { status: 503, body: { error: 'service_unavailable' } },
      { retry: true, reason: '503 service_unavailable' },
    ],
  ])('answer %j → %j', async (a, outcome) => {
    answer = a;
    expect(await adapter().deliver(item, new AbortController().signal)).toEqual(outcome);
  });

  it('a provider that cannot be reached, or whose key cannot be fetched (discovery): retry', async () => {
    const closed = 'http://127.0.0.1:1/v1'; // nothing listens on port 1
    const pins = [
      { domain: 'down.example', endpoint: closed, fingerprint: 'SHA256:x', publicKeyPem: key.publicKey.pem },
      { domain: 'fp.example', endpoint: closed, fingerprint: key.publicKey.fingerprint },
    ];
    const providers = new Providers({ pins, allowHttp });
    const signer = { domain: 'a.example', sign: providerSigner(key), allowHttp };
    const fed = federationAdapter(providers, signer, pino({ level: 'silent' }));
    const down = await fed.deliver({ ...item, target: 'federation:down.example' }, new AbortController().signal);
    expect(down).toMatchObject({ retry: true });
    const fp = await fed.deliver({ ...item, target: 'federation:fp.example' }, new AbortController().signal);
    expect(fp).toMatchObject({ retry: true });
    expect((fp as { reason: string }).reason).toMatch(/^discovery: .*\/v1\/info/);
  });
});
