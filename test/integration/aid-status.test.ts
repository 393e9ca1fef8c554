// AID status polling (agent-identity §4.2, §6.2): by id with the fingerprint and an optional proof
// in either encoding, or by user code; pending / approved / rejected answers; slow_down. Each case
// polls its own registration once (the 5 s interval makes a second quick poll a slow_down).

import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import {
  call,
  freePort,
  newKeypair,
  register,
  startTestServer,
  tempDir,
  type Registered,
  type TestServer,
} from '../helpers/server.js';

let t: TestServer;
let issuer: string;
let admin: string;
let n = 0;
const dataDir = tempDir('amp-aid-status-');

beforeAll(async () => {
  const port = await freePort();
  t = await startTestServer({ port, publicUrl: `http://127.0.0.1:${port}`, dataDir });
  issuer = `${t.url}/acme`;
  await register(t.api, 'seed', 'acme');
  admin = await mintAdminToken(await SigningKeys.load(dataDir, 'RS256'), {
    issuer,
    tenant: 'acme',
    email: 'ops@acme.com',
    scopes: ['agent_registrations:write'],
  });
});
afterAll(() => t.close());

/** A fresh AMP agent with a pending AID registration. */
async function pending(): Promise<{ a: Registered; id: string; userCode: string }> {
  const a = await register(t.api, `poller-${++n}`, 'acme');
  const r = await call('POST', `${issuer}/agent_registrations/request`, {
    headers: { 'X-Api-Key': a.api_key },
    json: { name: a.name, address: a.address, fingerprint: a.body.fingerprint, public_key: a.keys.publicPem },
  });
  expect(r.status).toBe(202);
  return { a, id: r.body.data.id, userCode: r.body.user_code };
}

const poll = (id: string, json: Record<string, unknown>) =>
  call('POST', `${issuer}/agent_registrations/${id}/status`, { json });
const statusSig = (a: Registered, ts: number) =>
  sign(null, Buffer.from(`aid-registration-status\n${ts}\n${issuer}`), a.keys.privateKey);

describe('status polling', () => {
  it('pending, then slow_down when polled again at once', async () => {
    const { a, id } = await pending();
    const first = await poll(id, { fingerprint: a.body.fingerprint });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      error: 'authorization_pending',
      status: 'pending',
      interval: 5,
      data: { id, attributes: { status: 'pending' } },
    });
    const second = await poll(id, { fingerprint: a.body.fingerprint });
    expect(second.status).toBe(429);
    expect(second.body).toEqual({
      error: 'slow_down',
      error_description: 'Polling too frequently. Increase interval to 10 seconds.',
      interval: 10,
    });
  });

  it('accepts a proof in the raw and in the CLI text form; refuses a bad proof or fingerprint', async () => {
    const ts = Math.floor(Date.now() / 1000);
    const raw = await pending();
    const rawProof = Buffer.concat([statusSig(raw.a, ts), Buffer.from(String(ts))]).toString('base64url');
    expect((await poll(raw.id, { fingerprint: raw.a.body.fingerprint, proof: rawProof })).status).toBe(200);
    const text = await pending();
    const textProof = Buffer.from(statusSig(text.a, ts).toString('base64') + String(ts)).toString('base64url');
    expect((await poll(text.id, { fingerprint: text.a.body.fingerprint, proof: textProof })).status).toBe(200);
    const bad = await pending();
    const wrongKey = Buffer.concat([
      sign(null, Buffer.from(`aid-registration-status\n${ts}\n${issuer}`), newKeypair().privateKey),
      Buffer.from(String(ts)),
    ]).toString('base64url');
    const refused = await poll(bad.id, { fingerprint: bad.a.body.fingerprint, proof: wrongKey });
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_proof');
    const wrongFp = await poll(bad.id, { fingerprint: 'SHA256:' + 'A'.repeat(43) + '=' });
    expect(wrongFp.status).toBe(401);
    expect((await poll('00000000-0000-4000-8000-000000000000', { fingerprint: 'x' })).status).toBe(404);
  });

  it('answers approved with the resource and rejected with access_denied', async () => {
    const ok = await pending();
    await call('POST', `${issuer}/agent_registrations/${ok.id}/approve`, {
      headers: { Authorization: `Bearer ${admin}` },
    });
    const approved = await poll(ok.id, { fingerprint: ok.a.body.fingerprint });
    expect(approved.status).toBe(200);
    expect(approved.body.error).toBeUndefined();
    expect(approved.body.data.attributes).toMatchObject({
      status: 'active',
      role_id: 1,
      role_name: 'agent',
      token_endpoint: `${issuer}/oauth/token`,
      oidc_issuer: issuer,
    });
    const no = await pending();
    await call('POST', `${issuer}/agent_registrations/${no.id}/reject`, {
      headers: { Authorization: `Bearer ${admin}` },
      json: { reason: 'not ours' },
    });
    const rejected = await poll(no.id, { fingerprint: no.a.body.fingerprint });
    expect(rejected.body).toMatchObject({
      error: 'access_denied',
      data: { attributes: { status: 'rejected', rejection_reason: 'not ours' } },
    });
  });

  it('polls by user code, ignoring case, spaces and dashes', async () => {
    const p = await pending();
    const code = p.userCode.toLowerCase().replace('-', ' ');
    const r = await call('GET', `${issuer}/agent_registrations/status?code=${encodeURIComponent(code)}`);
    expect(r.status).toBe(200);
    expect(r.body.data.id).toBe(p.id);
    expect((await call('GET', `${issuer}/agent_registrations/status?code=ZZZZ-ZZZZ`)).status).toBe(404);
  });
});
