// Security events are logged as JSON lines with an `event` field (failed auth, rate limits, key
// rotations and revocations, deregistration), and no log line ever holds a secret: API keys,
// registration keys and signatures stay out.

import { sign } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, newKeypair, register, startTestServer, type Registered, type TestServer } from '../helpers/server.js';

const lines: Array<Record<string, unknown>> = [];
const raw: string[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      raw.push(line);
      lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  },
});

const REGISTRATION_KEY = 'acme:registration-secret-0123456789';
let t: TestServer;
let a: Registered;
const secrets: string[] = [REGISTRATION_KEY.split(':')[1]];

beforeAll(async () => {
  t = await startTestServer({
    logger: pino({ level: 'info' }, sink),
    registrationMode: 'key',
    registrationKeys: [REGISTRATION_KEY],
    rateLimitOverrides: ['pending=2/min'],
  });
  a = await register(t.api, 'audited', 'acme', { registration_key: REGISTRATION_KEY.split(':')[1] });
});
afterAll(() => t.close());

const events = () => lines.map((l) => l.event).filter(Boolean);

describe('audit log', () => {
  it('records each security event once it happens, without the secrets involved', async () => {
    // 1. failed authentication (REST), with a key that looks real
    const fake = 'amp_live_sk_' + 'ab'.repeat(32);
    secrets.push(fake);
    expect((await call('GET', `${t.api}/agents/me`, { key: fake })).status).toBe(401);
    // 2. rate limited
    for (let i = 0; i < 3; i++) await call('GET', `${t.api}/messages/pending`, { key: a.api_key });
    // 3. refused registration key
    expect(
      (
        await call('POST', `${t.api}/register`, {
          json: { name: 'x', tenant: 'acme', public_key: newKeypair().publicPem },
          headers: { 'X-Registration-Key': 'wrong-key-0123456789' },
        })
      ).status,
    ).toBe(403);
    secrets.push('wrong-key-0123456789');
    // 4. api key rotation, then revocation
    const rotated = await call('POST', `${t.api}/auth/rotate-key`, { key: a.api_key });
    expect(rotated.status).toBe(200);
    secrets.push(a.api_key, rotated.body.api_key);
    expect((await call('DELETE', `${t.api}/auth/revoke-key`, { key: rotated.body.api_key })).status).toBe(200);
    // 5. key recovery with a signed proof
    const ts = Math.floor(Date.now() / 1000);
    const signature = sign(null, Buffer.from(`amp-register\n${ts}\n${a.address}`), a.keys.privateKey).toString(
      'base64',
    );
    secrets.push(signature);
    const recovered = await call('POST', `${t.api}/register`, {
      json: { name: 'audited', tenant: 'acme', public_key: a.keys.publicPem, proof: { timestamp: ts, signature } },
      headers: { 'X-Registration-Key': REGISTRATION_KEY.split(':')[1] },
    });
    expect(recovered.status).toBe(200);
    secrets.push(recovered.body.api_key);
    // 6. keypair rotation
    const next = newKeypair();
    const proof = sign(null, Buffer.from(next.publicPem), a.keys.privateKey).toString('base64');
    secrets.push(proof);
    expect(
      (
        await call('POST', `${t.api}/auth/rotate-keys`, {
          key: recovered.body.api_key,
          json: { new_public_key: next.publicPem, proof },
        })
      ).status,
    ).toBe(200);
    // 7. deregistration
    expect((await call('DELETE', `${t.api}/agents/me`, { key: recovered.body.api_key })).status).toBe(200);

    expect(events()).toEqual(
      expect.arrayContaining([
        'auth_failed',
        'rate_limited',
        'registration_key_refused',
        'api_key_rotated',
        'api_keys_revoked',
        'api_key_recovered',
        'keypair_rotated',
        'agent_deregistered',
      ]),
    );
    const failed = lines.find((l) => l.event === 'auth_failed')!;
    expect(failed).toMatchObject({ ip: expect.any(String), path: '/api/v1/agents/me' });
    const all = raw.join('\n');
    for (const s of secrets) expect(all).not.toContain(s);
    expect(all).not.toMatch(/amp_(live|test)_sk_[0-9a-f]{64}/);
  });
});
