// Hostile and malformed requests get the documented 4xx (spec §1, §2, §4.2, §8, §9, §12.3, §15,
// §21), never a 5xx; the server stays healthy and a refused route queues nothing.

import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  newKeypair,
  register,
  route,
  signMessage,
  startTestServer,
  type Registered,
  type Reply,
  type TestServer,
} from '../helpers/server.js';

const BOB = 'bob@acme.aimaestro.local';
const MIB = 1_048_576;
const MSG_ID = /^msg_[0-9]+_[a-f0-9]{16}$/;

let srv: TestServer;
let alice: Registered;
let bob: Registered;

beforeAll(async () => {
  srv = await startTestServer();
  alice = await register(srv.api, 'alice', 'acme');
  bob = await register(srv.api, 'bob', 'acme');
});
afterAll(async () => {
  await srv?.close();
});

/** A valid flat route body for bob, with top-level overrides. */
function msg(over: Record<string, unknown> = {}, payload: Record<string, unknown> = {}): Record<string, unknown> {
  return { to: BOB, subject: 'hello', payload: { type: 'notification', message: 'hi', ...payload }, ...over };
}
function without(field: string): Record<string, unknown> {
  const m = msg();
  if (field.startsWith('payload.')) delete (m.payload as Record<string, unknown>)[field.slice(8)];
  else delete m[field];
  return m;
}

async function pendingTotal(api: string, key: string): Promise<number> {
  const r = await call('GET', `${api}/messages/pending?limit=100`, { key });
  expect(r.status).toBe(200);
  return r.body.count + r.body.remaining;
}

async function expectHealthy(url: string): Promise<void> {
  const h = await call('GET', `${url}/api/v1/health`);
  expect(h.status).toBe(200);
  expect(h.body.status).toBe('healthy');
}

function expectError(r: Reply, status: number, error: string, field?: string): void {
  expect({ status: r.status, error: r.body?.error }).toEqual({ status, error });
  expect(r.headers.get('content-type')).toMatch(/application\/json/);
  expect(typeof r.body.message).toBe('string');
  expect(r.body.message.length).toBeGreaterThan(0);
  if (field !== undefined) expect(r.body.field).toBe(field);
}

interface Row {
  name: string;
  method?: string;
  /** Relative to /api/v1, or absolute from the server root when it starts with '!'. */
  path?: string;
  as?: 'alice' | 'bob' | 'none';
  json?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  status: number;
  error: string;
  field?: string;
  message?: string;
  messageMatch?: RegExp;
  details?: Record<string, unknown>;
}

const fakeKey = `amp_live_sk_${'0123456789abcdef'.repeat(4)}`;
const privatePem = newKeypair().privatePem;
const manyIds = Array.from({ length: 1001 }, (_, i) => `msg_1767225600_${i.toString(16).padStart(16, '0')}`);

const rows: Row[] = [
  // §1 / §4.2 bodies
  {
    name: 'malformed JSON on register',
    path: '/register',
    as: 'none',
    raw: '{"name": "x",',
    headers: { 'Content-Type': 'application/json' },
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'malformed JSON on route',
    raw: '{"to": "bob"',
    headers: { 'Content-Type': 'application/json' },
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'JSON array body',
    raw: '[1,2,3]',
    headers: { 'Content-Type': 'application/json' },
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'JSON number body',
    raw: '42',
    headers: { 'Content-Type': 'application/json' },
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'JSON null body',
    raw: 'null',
    headers: { 'Content-Type': 'application/json' },
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'empty body',
    raw: '',
    headers: { 'Content-Type': 'application/json' },
    status: 400,
    error: 'invalid_request',
  },
  {
    name: 'form-urlencoded body',
    raw: 'a=b&c=d',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    status: 400,
    error: 'invalid_request',
  },
  // §12 required fields
  ...['to', 'subject', 'payload', 'payload.type', 'payload.message'].map(
    (f): Row => ({ name: `missing ${f}`, json: without(f), status: 400, error: 'missing_field', field: f }),
  ),
  // §2 addresses
  ...['bob smith', 'bob@@x', 'bob@acme..aimaestro.local', 'bob@acme.aimaestro.local\n'].map(
    (to): Row => ({
      name: `invalid to ${JSON.stringify(to)}`,
      json: msg({ to }),
      status: 400,
      error: 'invalid_field',
      field: 'to',
    }),
  ),
  { name: 'own domain without tenant', json: msg({ to: 'bob@aimaestro.local' }), status: 400, error: 'invalid_field' },
  // §12.3 step 6
  {
    name: 'unknown recipient on our domain',
    json: msg({ to: 'nobody@acme.aimaestro.local' }),
    status: 404,
    error: 'not_found',
    field: 'to',
    message: 'Agent not found',
  },
  // `a@b` is the one-label short form (§2): it expands to a@b.aimaestro.local, an unknown agent.
  {
    name: 'short form a@b to an unknown agent',
    json: msg({ to: 'a@b' }),
    status: 404,
    error: 'not_found',
    field: 'to',
    message: 'Agent not found',
  },
  {
    name: 'recipient on another provider',
    json: msg({ to: 'x@acme.crabmail.ai' }),
    status: 422,
    error: 'external_provider',
  },
  // §1 auth
  {
    name: 'wrong API key',
    as: 'none',
    json: msg(),
    headers: { Authorization: 'Bearer not-a-key' },
    status: 401,
    error: 'unauthorized',
  },
  { name: 'missing Authorization', as: 'none', json: msg(), status: 401, error: 'unauthorized' },
  {
    name: 'Authorization: Basic',
    as: 'none',
    json: msg(),
    headers: { Authorization: 'Basic xyz' },
    status: 401,
    error: 'unauthorized',
  },
  {
    name: 'unknown key in valid format',
    as: 'none',
    json: msg(),
    headers: { Authorization: `Bearer ${fakeKey}` },
    status: 401,
    error: 'unauthorized',
  },
  {
    name: 'unknown bare key in valid format',
    as: 'none',
    json: msg(),
    headers: { Authorization: fakeKey },
    status: 401,
    error: 'unauthorized',
  },
  // §4 registration
  {
    name: 'register without name',
    path: '/register',
    as: 'none',
    json: { tenant: 'acme', public_key: newKeypair().publicPem },
    status: 400,
    error: 'missing_field',
    field: 'name',
  },
  {
    name: 'register without public_key',
    path: '/register',
    as: 'none',
    json: { name: 'zed', tenant: 'acme' },
    status: 400,
    error: 'missing_field',
    field: 'public_key',
  },
  {
    name: 'register with a private key PEM',
    path: '/register',
    as: 'none',
    json: { name: 'mallory', tenant: 'acme', public_key: privatePem },
    status: 400,
    error: 'invalid_field',
    field: 'public_key',
    messageMatch: /public key/i,
  },
  {
    name: 'register with key_algorithm RSA',
    path: '/register',
    as: 'none',
    json: { name: 'rsa-agent', tenant: 'acme', public_key: newKeypair().publicPem, key_algorithm: 'RSA' },
    status: 400,
    error: 'invalid_field',
    field: 'key_algorithm',
    message: "key_algorithm 'RSA' is not supported by this provider; only Ed25519 is accepted",
    details: { supported: ['Ed25519'] },
  },
  // §8.3 limits
  {
    name: 'subject of 257 chars',
    json: msg({ subject: 's'.repeat(257) }),
    status: 413,
    error: 'payload_too_large',
    field: 'subject',
    details: { limit: 256, actual: 257 },
  },
  {
    name: 'message of 65537 bytes',
    json: msg({}, { message: 'é'.repeat(32768) + 'x' }),
    status: 413,
    error: 'payload_too_large',
    field: 'payload.message',
    details: { limit: 65536, actual: 65537 },
  },
  // compact {"s":"…"} = 8 bytes + the string
  {
    name: 'context of 262145 bytes',
    json: msg({}, { context: { s: 'c'.repeat(262_137) } }),
    status: 413,
    error: 'payload_too_large',
    field: 'payload.context',
    details: { limit: 262144, actual: 262145 },
  },
  // §8.1, §9, §12.2
  { name: 'priority critical', json: msg({ priority: 'critical' }), status: 400, error: 'invalid_field' },
  {
    name: 'expires_at in the past',
    json: msg({ expires_at: '2020-01-01T00:00:00Z' }),
    status: 400,
    error: 'invalid_field',
  },
  { name: 'from of another agent', json: msg({ from: BOB }), status: 403, error: 'forbidden', field: 'from' },
  {
    name: 'in_reply_to with path characters',
    json: msg({ in_reply_to: '../../etc/passwd' }),
    status: 400,
    error: 'invalid_field',
  },
  // §15 acks and listing
  {
    name: 'ack ?id= with path characters',
    method: 'DELETE',
    path: '/messages/pending?id=../../etc/passwd',
    as: 'bob',
    status: 400,
    error: 'invalid_field',
  },
  {
    name: 'ack path id with encoded slashes',
    method: 'DELETE',
    path: '/messages/pending/..%2F..%2Fetc%2Fpasswd',
    as: 'bob',
    status: 400,
    error: 'invalid_field',
  },
  {
    name: 'ack without id',
    method: 'DELETE',
    path: '/messages/pending',
    as: 'bob',
    status: 400,
    error: 'missing_field',
  },
  {
    name: 'pending limit=0',
    method: 'GET',
    path: '/messages/pending?limit=0',
    as: 'bob',
    status: 400,
    error: 'invalid_field',
  },
  {
    name: 'pending limit=abc',
    method: 'GET',
    path: '/messages/pending?limit=abc',
    as: 'bob',
    status: 400,
    error: 'invalid_field',
  },
  { name: 'batch ack {}', path: '/messages/pending/ack', as: 'bob', json: {}, status: 400, error: 'missing_field' },
  {
    name: 'batch ack ids not an array',
    path: '/messages/pending/ack',
    as: 'bob',
    json: { ids: manyIds[0] },
    status: 400,
    error: 'missing_field',
  },
  {
    name: 'batch ack empty ids',
    path: '/messages/pending/ack',
    as: 'bob',
    json: { ids: [] },
    status: 400,
    error: 'missing_field',
  },
  {
    name: 'batch ack 1001 ids',
    path: '/messages/pending/ack',
    as: 'bob',
    json: { ids: manyIds },
    status: 400,
    error: 'invalid_field',
  },
  {
    name: 'batch ack with a malformed id',
    path: '/messages/pending/ack',
    as: 'bob',
    json: { ids: [manyIds[0], '../../etc/passwd'] },
    status: 400,
    error: 'invalid_field',
  },
  // §1 paths and methods
  { name: 'unknown API path', method: 'GET', path: '/no-such-thing', status: 404, error: 'not_found' },
  { name: 'unknown root path', method: 'GET', path: '!/no/such/thing', as: 'none', status: 404, error: 'not_found' },
];

describe('refused requests', () => {
  it.each(rows)('$name -> $status $error', async (row) => {
    const before = await pendingTotal(srv.api, bob.api_key);
    const who = row.as ?? 'alice';
    const key = who === 'alice' ? alice.api_key : who === 'bob' ? bob.api_key : undefined;
    const path = row.path ?? '/route';
    const url = path.startsWith('!') ? srv.url + path.slice(1) : srv.api + path;
    const r = await call(row.method ?? 'POST', url, { key, json: row.json, raw: row.raw, headers: row.headers });
    expectError(r, row.status, row.error, row.field);
    if (row.message !== undefined) expect(r.body.message).toBe(row.message);
    if (row.messageMatch !== undefined) expect(r.body.message).toMatch(row.messageMatch);
    if (row.details !== undefined) expect(r.body.details).toEqual(row.details);
    await expectHealthy(srv.url);
    expect(await pendingTotal(srv.api, bob.api_key)).toBe(before);
  });

  it.each([
    ['PUT', '/api/v1/route', 'POST'],
    ['PATCH', '/v1/register', 'POST'],
  ])('%s %s -> 405 method_not_allowed with Allow', async (method, path, allowed) => {
    const r = await call(method, srv.url + path, { key: alice.api_key, json: msg() });
    expectError(r, 405, 'method_not_allowed');
    expect(r.headers.get('allow')?.split(/\s*,\s*/)).toContain(allowed);
    await expectHealthy(srv.url);
  });

  it('external_provider names the provider', async () => {
    const r = await call('POST', `${srv.api}/route`, { key: alice.api_key, json: msg({ to: 'x@acme.crabmail.ai' }) });
    expect(r.body.message).toContain('crabmail.ai');
  });

  it('duplicate registration name -> 409 name_taken with suggestions', async () => {
    const r = await call('POST', `${srv.api}/register`, {
      json: { name: 'alice', tenant: 'acme', public_key: newKeypair().publicPem },
    });
    expectError(r, 409, 'name_taken', 'name');
    expect(r.body.message).toBe("Agent name 'alice' is already registered in tenant 'acme'");
    const s = r.body.suggestions;
    expect(Array.isArray(s)).toBe(true);
    expect(s.length).toBeGreaterThanOrEqual(1);
    expect(s.length).toBeLessThanOrEqual(3);
    expect(new Set(s).size).toBe(s.length);
    for (const name of s) {
      expect(name).not.toBe('alice');
      expect(name).toMatch(/^alice-[a-z0-9_-]+$/);
    }
    expect(r.body.details.suggestions).toEqual(s);
    // "free at answer time": the first one can be registered.
    const taken = await call('POST', `${srv.api}/register`, {
      json: { name: s[0], tenant: 'acme', public_key: newKeypair().publicPem },
    });
    expect(taken.status).toBe(201);
  });
});

describe('request checks', () => {
  it('refuses a top-level `from` of another agent in the envelope form', async () => {
    const r = await route(srv.api, alice, {
      envelope: { to: bob.address, subject: 's' },
      from: bob.address,
      payload: { type: 'notification', message: 'x' },
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error: 'forbidden', field: 'from' });
  });

  it('treats null required fields as missing', async () => {
    const r = await route(srv.api, alice, { to: null, subject: 's', payload: { type: 'notification', message: 'x' } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'missing_field', field: 'to' });
  });

  it('checks the stored-message limit before resolving the recipient or the signature', async () => {
    const payload = { type: 'notification', message: 'x', blob: 'y'.repeat(600_000) };
    for (const body of [
      { to: 'nobody-here', subject: 's', payload },
      { to: bob.address, subject: 's', payload, signature: 'A'.repeat(86) + '==' },
    ]) {
      const r = await route(srv.api, alice, body);
      expect(r.status).toBe(413);
      expect(r.body).toMatchObject({ error: 'payload_too_large', field: 'payload', details: { limit: 524288 } });
    }
  });

  it('refuses non-ASCII letters that lowercase to ASCII, in names and addresses', async () => {
    const reg = await call('POST', `${srv.api}/register`, {
      json: { name: 'ka\u212Ae', tenant: 'acme', public_key: newKeypair().publicPem },
    });
    expect(reg.status).toBe(400);
    expect(reg.body).toMatchObject({ error: 'invalid_field', field: 'name' });
    const r = await route(srv.api, alice, {
      to: 'bo\u212A@acme.aimaestro.local',
      subject: 's',
      payload: { type: 'notification', message: 'x' },
    });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_field', field: 'to' });
  });

  it('refuses a registration whose address would exceed 254 characters', async () => {
    const l = (c: string) => c.repeat(63);
    const r = await call('POST', `${srv.api}/register`, {
      json: {
        name: l('n'),
        tenant: l('t'),
        scope: { platform: l('p'), repo: l('r') },
        public_key: newKeypair().publicPem,
      },
    });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_field', field: 'scope' });
  });
});

describe('request body over 1 MiB -> 413 request_too_large', () => {
  it('with an announced Content-Length', async () => {
    const before = await pendingTotal(srv.api, bob.api_key);
    const big = JSON.stringify(msg({}, { filler: 'x'.repeat(1_100_000) }));
    const r = await call('POST', `${srv.api}/route`, {
      key: alice.api_key,
      raw: big,
      headers: { 'Content-Type': 'application/json' },
    });
    expectError(r, 413, 'request_too_large');
    expect(r.body.details).toEqual({ limit: MIB, actual: Buffer.byteLength(big) });
    await expectHealthy(srv.url);
    expect(await pendingTotal(srv.api, bob.api_key)).toBe(before);
  });

  it('streamed with Transfer-Encoding: chunked (answered while still sending)', async () => {
    const before = await pendingTotal(srv.api, bob.api_key);
    const r = await streamUntilAnswered(`${srv.api}/route`, alice.api_key, 2 * MIB);
    expect(r.status).toBe(413);
    expect(r.body.error).toBe('request_too_large');
    expect(r.body.details.limit).toBe(MIB);
    expect(r.body.details.actual).toBeGreaterThan(MIB);
    await expectHealthy(srv.url);
    expect(await pendingTotal(srv.api, bob.api_key)).toBe(before);
  });
});

/**
 * Send a chunked body of filler until the server answers. At most `max` bytes are written; the
 * body is never ended, so an answer can only come from the limit being enforced while streaming.
 */
function streamUntilAnswered(
  url: string,
  key: string,
  max: number,
): Promise<{ status: number; body: any; sent: number }> {
  const u = new URL(url);
  const CHUNK = Buffer.alloc(16 * 1024, 'a');
  return new Promise((resolve, reject) => {
    let answered = false;
    let sent = 0;
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`no answer within 10 s after sending ${sent} bytes (body never ended)`));
    }, 10_000);
    const req = httpRequest({
      host: u.hostname,
      port: Number(u.port),
      path: u.pathname,
      method: 'POST',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' },
    });
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      const done = () => {
        clearTimeout(timer);
        req.destroy();
        try {
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(text), sent });
        } catch (e) {
          reject(e);
        }
      };
      res.on('data', (d: string) => (text += d));
      res.on('end', done);
      res.on('error', done); // the server closes the connection after answering
    });
    // EPIPE / ECONNRESET from writing after the server closed: expected once answered.
    req.on('error', (e) => {
      if (answered) return;
      clearTimeout(timer);
      reject(new Error(`connection failed before any answer (${sent} bytes sent): ${e.message}`));
    });
    req.write('{"to":"bob","subject":"s","payload":{"type":"t","message":"');
    const pump = () => {
      while (!answered && !req.destroyed && sent < max) {
        sent += CHUNK.length;
        if (!req.write(CHUNK)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

describe('accepted inputs', () => {
  it.each([
    [
      'valid JSON with Content-Type text/plain',
      { raw: JSON.stringify(msg()), headers: { 'Content-Type': 'text/plain' } },
    ],
    ['valid JSON without Content-Type', { raw: JSON.stringify(msg()) }],
    ['unknown extra top-level fields', { json: msg({ zzz: 1, nested: { a: [1, 2] }, envelope_version: 'x' }) }],
    ['uppercase recipient', { json: msg({ to: 'BOB@ACME.AIMAESTRO.LOCAL' }) }],
    ['subject of 256 astral code points', { json: msg({ subject: '😀'.repeat(256) }) }],
    ['message of exactly 65536 bytes', { json: msg({}, { message: 'é'.repeat(32768) }) }],
    ['bare API key in Authorization', { json: msg(), bare: true }],
  ] as const)('%s -> 200 queued for bob (lowercase to)', async (_name, opts) => {
    const before = await pendingTotal(srv.api, bob.api_key);
    const o = opts as { json?: unknown; raw?: string; headers?: Record<string, string>; bare?: boolean };
    const headers = o.bare ? { ...o.headers, Authorization: alice.api_key } : o.headers;
    const r = await call('POST', `${srv.api}/route`, {
      key: o.bare ? undefined : alice.api_key,
      json: o.json,
      raw: o.raw,
      headers,
    });
    expect(r.status).toBe(200);
    expect(r.body.status).toBe('queued');
    expect(r.body.id).toMatch(MSG_ID);
    const list = await call('GET', `${srv.api}/messages/pending?limit=100`, { key: bob.api_key });
    const m = list.body.messages.find((x: { id: string }) => x.id === r.body.id);
    expect(m.envelope.to).toBe(BOB);
    expect(m.envelope.from).toBe('alice@acme.aimaestro.local');
    expect(list.body.count + list.body.remaining).toBe(before + 1);
  });
});

describe('random garbage bodies', () => {
  it('200 random byte bodies to /route -> always 4xx JSON, never 5xx', async () => {
    const before = await pendingTotal(srv.api, bob.api_key);
    let seed = 0x2f6b9a1d;
    const rnd = () => ((seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0) >>> 8) & 0xff;
    const statuses = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const len = 1 + ((rnd() << 4) | (rnd() & 0xf));
      const bytes = Buffer.from(Array.from({ length: len }, rnd));
      if (i % 4 === 0) bytes[0] = 0x7b; // sometimes start like an object
      const r = await call('POST', `${srv.api}/route`, {
        key: alice.api_key,
        raw: bytes,
        headers: { 'Content-Type': 'application/json' },
      });
      statuses.add(r.status);
      expect(r.status, `body #${i}: ${bytes.toString('hex')}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `body #${i}: ${bytes.toString('hex')}`).toBeLessThan(500);
      expect(typeof r.body?.error).toBe('string');
      expect(typeof r.body?.message).toBe('string');
    }
    expect([...statuses]).toEqual([400]);
    await expectHealthy(srv.url);
    expect(await pendingTotal(srv.api, bob.api_key)).toBe(before);
  });
});

describe('queue_full (maxQueue: 3)', () => {
  it('refuses the 4th message with 429 and accepts again after an ack', async () => {
    const q = await startTestServer({ maxQueue: 3 });
    try {
      const a = await register(q.api, 'alice', 'acme');
      const b = await register(q.api, 'bob', 'acme');
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) {
        const r = await call('POST', `${q.api}/route`, { key: a.api_key, json: msg({ subject: `n${i}` }) });
        expect(r.status).toBe(200);
        ids.push(r.body.id);
      }
      const full = await call('POST', `${q.api}/route`, { key: a.api_key, json: msg({ subject: 'n3' }) });
      expectError(full, 429, 'queue_full');
      expect(full.headers.get('retry-after')).toBe('60');
      expect(full.body.retry_after).toBe(60);
      expect(full.body.details).toEqual({ recipient: BOB, limit: 3 });
      expect(full.body.message).toBe("Recipient's queue is full (3 messages); retry later");
      expect(await pendingTotal(q.api, b.api_key)).toBe(3);
      await expectHealthy(q.url);

      const ack = await call('DELETE', `${q.api}/messages/pending?id=${ids[0]}`, { key: b.api_key });
      expect(ack.body).toEqual({ acknowledged: true });
      const again = await call('POST', `${q.api}/route`, { key: a.api_key, json: msg({ subject: 'n4' }) });
      expect(again.status).toBe(200);
      expect(again.body.status).toBe('queued');
      expect(await pendingTotal(q.api, b.api_key)).toBe(3);
    } finally {
      await q.close();
    }
  });
});

describe("signatures: 'required'", () => {
  it('refuses an unsigned route with 422 signature_missing and accepts a signed one', async () => {
    const s = await startTestServer({ signatures: 'required' });
    try {
      const a = await register(s.api, 'alice', 'acme');
      const b = await register(s.api, 'bob', 'acme');
      const unsigned = await call('POST', `${s.api}/route`, { key: a.api_key, json: msg() });
      expectError(unsigned, 422, 'signature_missing');
      expect(await pendingTotal(s.api, b.api_key)).toBe(0);
      await expectHealthy(s.url);

      const body = msg();
      const signature = signMessage(a.keys.privateKey, {
        from: a.address,
        to: BOB,
        subject: body.subject as string,
        payload: body.payload,
      });
      const signed = await call('POST', `${s.api}/route`, { key: a.api_key, json: { ...body, signature } });
      expect(signed.status).toBe(200);
      expect(await pendingTotal(s.api, b.api_key)).toBe(1);
    } finally {
      await s.close();
    }
  });
});
