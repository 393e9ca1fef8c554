// Regression tests for defects found in review: payloads must come back exactly as signed, proofs
// work once, other agents' message ids reveal nothing, limits apply in the documented order.

import { sign, verify } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalString, payloadHash } from '../../proto/index.js';
import {
  call,
  newKeypair,
  register,
  route,
  signMessage,
  startTestServer,
  type Registered,
  type TestServer,
} from '../helpers/server.js';

let t: TestServer;
let alice: Registered;
let bob: Registered;
let eve: Registered;

beforeAll(async () => {
  t = await startTestServer({ corsOrigin: 'https://app.example' });
  alice = await register(t.api, 'alice', 'acme');
  bob = await register(t.api, 'bob', 'acme');
  eve = await register(t.api, 'eve', 'other');
});
afterAll(() => t.close());

const pending = async (who: Registered) =>
  (await call('GET', `${t.api}/messages/pending?limit=100`, { key: who.api_key })).body;

describe('stored payloads are exact', () => {
  it.each([
    ['a __proto__ key', '{"type":"request","message":"m","__proto__":{"x":1}}'],
    ['a lone surrogate', '{"type":"request","message":"a\\ud800b"}'],
    ['integer-like keys and nulls', '{"type":"request","message":"m","context":{"10":1,"9":null}}'],
  ])('a signed payload with %s is listed byte-identical and still verifies', async (_label, payloadJson) => {
    const payload = JSON.parse(payloadJson) as Record<string, unknown>;
    const sig = signMessage(alice.keys.privateKey, { from: alice.address, to: bob.address, subject: 'exact', payload });
    const raw = `{"to":"${bob.address}","subject":"exact","signature":"${sig}","payload":${payloadJson}}`;
    const r = await call('POST', `${t.api}/route`, {
      key: alice.api_key,
      raw,
      headers: { 'Content-Type': 'application/json' },
    });
    expect(r.status).toBe(200);
    const item = (await pending(bob)).messages.find((m: { id: string }) => m.id === r.body.id);
    expect(payloadHash(item.payload)).toBe(payloadHash(payload));
    expect(Object.keys(item.payload)).toEqual(Object.keys(payload));
    const data = canonicalString({ ...item.envelope, payload_hash: payloadHash(item.payload) });
    expect(verify(null, Buffer.from(data), alice.keys.publicKey, Buffer.from(item.envelope.signature, 'base64'))).toBe(
      true,
    );
  });

  it('keeps registration metadata exactly, including a __proto__ key', async () => {
    const meta = '{"__proto__":{"polluted":true},"team":"x"}';
    const keys = newKeypair();
    const raw = `{"name":"meta","tenant":"acme","public_key":${JSON.stringify(keys.publicPem)},"metadata":${meta}}`;
    const r = await call('POST', `${t.api}/register`, { raw, headers: { 'Content-Type': 'application/json' } });
    expect(r.status).toBe(201);
    const me = await call('GET', `${t.api}/agents/me`, { key: r.body.api_key });
    expect(JSON.stringify(me.body.metadata)).toBe(meta);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('key recovery under concurrency', () => {
  it('accepts one proof once and leaves exactly one valid key', async () => {
    const a = await register(t.api, 'racer', 'acme');
    const proof = (ts: number) =>
      sign(null, Buffer.from(`amp-register\n${ts}\n${a.address}`), a.keys.privateKey).toString('base64');
    const now = Math.floor(Date.now() / 1000);
    const body = (ts: number) => ({
      json: {
        name: 'racer',
        tenant: 'acme',
        public_key: a.keys.publicPem,
        proof: { timestamp: ts, signature: proof(ts) },
      },
    });
    const results = await Promise.all(
      [body(now), body(now), body(now), body(now - 1)].map((b) => call('POST', `${t.api}/register`, b)),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 200, 403, 403]);
    const keys = [a.api_key, ...results.filter((r) => r.status === 200).map((r) => r.body.api_key as string)];
    const valid = await Promise.all(
      keys.map(async (k) => (await call('GET', `${t.api}/agents/me`, { key: k })).status === 200),
    );
    expect(valid.filter(Boolean)).toHaveLength(1);
  });
});

describe('message ids of others reveal nothing', () => {
  it('does not inherit the thread of a message the sender never saw', async () => {
    const secret = await route(t.api, bob, {
      to: eve.address,
      subject: 's',
      thread_id: 'msg_1_secretthread',
      payload: { type: 'notification', message: 'x' },
    });
    expect(secret.body.thread_id).toBe('msg_1_secretthread');
    const probe = await route(t.api, alice, {
      to: 'alice',
      subject: 'p',
      in_reply_to: secret.body.id,
      payload: { type: 'notification', message: 'x' },
    });
    expect(probe.status).toBe(200);
    expect(probe.body.thread_id).toBe(secret.body.id);
  });

  it('does inherit it for the recipient and the sender of the replied-to message', async () => {
    const first = await route(t.api, alice, {
      to: 'bob',
      subject: 'q',
      thread_id: 'msg_2_thread',
      payload: { type: 'request', message: 'q' },
    });
    const byRecipient = await route(t.api, bob, {
      to: 'alice',
      subject: 'a',
      in_reply_to: first.body.id,
      payload: { type: 'response', message: 'a' },
    });
    expect(byRecipient.body.thread_id).toBe('msg_2_thread');
    const bySender = await route(t.api, alice, {
      to: 'bob',
      subject: 'f',
      in_reply_to: first.body.id,
      payload: { type: 'request', message: 'f' },
    });
    expect(bySender.body.thread_id).toBe('msg_2_thread');
  });
});

describe('request checks', () => {
  it('refuses a top-level `from` of another agent in the envelope form', async () => {
    const r = await route(t.api, alice, {
      envelope: { to: bob.address, subject: 's' },
      from: bob.address,
      payload: { type: 'notification', message: 'x' },
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ error: 'forbidden', field: 'from' });
  });

  it('treats null required fields as missing', async () => {
    const r = await route(t.api, alice, { to: null, subject: 's', payload: { type: 'notification', message: 'x' } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'missing_field', field: 'to' });
  });

  it('checks the stored-message limit before resolving the recipient or the signature', async () => {
    const payload = { type: 'notification', message: 'x', blob: 'y'.repeat(600_000) };
    for (const body of [
      { to: 'nobody-here', subject: 's', payload },
      { to: bob.address, subject: 's', payload, signature: 'A'.repeat(86) + '==' },
    ]) {
      const r = await route(t.api, alice, body);
      expect(r.status).toBe(413);
      expect(r.body).toMatchObject({ error: 'payload_too_large', field: 'payload', details: { limit: 524288 } });
    }
  });

  it('refuses non-ASCII letters that lowercase to ASCII, in names and addresses', async () => {
    const reg = await call('POST', `${t.api}/register`, {
      json: { name: 'ka\u212Ae', tenant: 'acme', public_key: newKeypair().publicPem },
    });
    expect(reg.status).toBe(400);
    expect(reg.body).toMatchObject({ error: 'invalid_field', field: 'name' });
    const r = await route(t.api, alice, {
      to: 'bo\u212A@acme.aimaestro.local',
      subject: 's',
      payload: { type: 'notification', message: 'x' },
    });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_field', field: 'to' });
  });

  it('refuses a registration whose address would exceed 254 characters', async () => {
    const l = (c: string) => c.repeat(63);
    const r = await call('POST', `${t.api}/register`, {
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

describe('HTTP details', () => {
  it('always sends Access-Control-Allow-Origin: * on discovery, the configured origin elsewhere', async () => {
    expect(
      (await call('GET', `${t.url}/.well-known/agent-messaging.json`)).headers.get('access-control-allow-origin'),
    ).toBe('*');
    expect((await call('GET', `${t.api}/health`)).headers.get('access-control-allow-origin')).toBe(
      'https://app.example',
    );
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
