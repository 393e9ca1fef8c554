// AID status polling (agent-identity §4.2, §6.2): by id with the fingerprint and an optional proof
// in either encoding, or by user code; pending / approved / rejected answers; slow_down; a proof
// is good once, whatever its encoding. Each case polls its own registration (the 5 s interval
// makes a second quick poll a slow_down; a replayed proof is refused before the interval).

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  asAdmin,
  expectAidError,
  pendingRegistration,
  pollStatus,
  startAidServer,
  statusProof,
  statusProofText,
  uniqueTs,
  type AidServer,
} from '../helpers/aid.js';
import { call, newKeypair, register, tempDir, type Registered } from '../helpers/server.js';

let s: AidServer;
let n = 0;
const dataDir = tempDir('amp-aid-status-');

beforeAll(async () => {
  s = await startAidServer({ dataDir });
  await register(s.t.api, 'seed', 'acme');
});
afterAll(() => s.t.close());

/** A fresh AMP agent with a pending AID registration. */
async function pending(): Promise<{ a: Registered; id: string; userCode: string }> {
  const a = await register(s.t.api, `poller-${++n}`, 'acme');
  return { a, ...(await pendingRegistration(s, a)) };
}

describe('status polling', () => {
  it('pending, then slow_down when polled again at once', async () => {
    const { a, id } = await pending();
    const first = await pollStatus(s, id, { fingerprint: a.body.fingerprint });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      error: 'authorization_pending',
      status: 'pending',
      interval: 5,
      data: { id, attributes: { status: 'pending' } },
    });
    const second = await pollStatus(s, id, { fingerprint: a.body.fingerprint });
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
    const rawProof = statusProof(raw.a.keys.privateKey, s.issuer, ts);
    expect((await pollStatus(s, raw.id, { fingerprint: raw.a.body.fingerprint, proof: rawProof })).status).toBe(200);
    const text = await pending();
    const textProof = statusProofText(text.a.keys.privateKey, s.issuer, ts);
    expect((await pollStatus(s, text.id, { fingerprint: text.a.body.fingerprint, proof: textProof })).status).toBe(200);
    const bad = await pending();
    const wrongKey = statusProof(newKeypair().privateKey, s.issuer, ts);
    const refused = await pollStatus(s, bad.id, { fingerprint: bad.a.body.fingerprint, proof: wrongKey });
    expect(refused.status).toBe(401);
    expect(refused.body.error).toBe('invalid_proof');
    const wrongFp = await pollStatus(s, bad.id, { fingerprint: 'SHA256:' + 'A'.repeat(43) + '=' });
    expect(wrongFp.status).toBe(401);
    expect((await pollStatus(s, '00000000-0000-4000-8000-000000000000', { fingerprint: 'x' })).status).toBe(404);
  });

  it('answers approved with the resource and rejected with access_denied', async () => {
    const ok = await pending();
    await asAdmin(s, 'POST', `/${ok.id}/approve`);
    const approved = await pollStatus(s, ok.id, { fingerprint: ok.a.body.fingerprint });
    expect(approved.status).toBe(200);
    expect(approved.body.error).toBeUndefined();
    expect(approved.body.data.attributes).toMatchObject({
      status: 'active',
      role_id: 1,
      role_name: 'agent',
      token_endpoint: `${s.issuer}/oauth/token`,
      oidc_issuer: s.issuer,
    });
    const no = await pending();
    await asAdmin(s, 'POST', `/${no.id}/reject`, { reason: 'not ours' });
    const rejected = await pollStatus(s, no.id, { fingerprint: no.a.body.fingerprint });
    expect(rejected.body).toMatchObject({
      error: 'access_denied',
      data: { attributes: { status: 'rejected', rejection_reason: 'not ours' } },
    });
  });

  it('polls by user code, ignoring case, spaces and dashes', async () => {
    const p = await pending();
    const code = p.userCode.toLowerCase().replace('-', ' ');
    const r = await call('GET', `${s.url}/agent_registrations/status?code=${encodeURIComponent(code)}`);
    expect(r.status).toBe(200);
    expect(r.body.data.id).toBe(p.id);
    expect((await call('GET', `${s.url}/agent_registrations/status?code=ZZZZ-ZZZZ`)).status).toBe(404);
  });

  it('a status proof is accepted once; the same proof again is a replay (401 invalid_proof)', async () => {
    const a = await register(s.t.api, 'status-replay', 'acme');
    const { id } = await pendingRegistration(s, a);
    const proof = statusProof(a.keys.privateKey, s.issuer);
    const first = await pollStatus(s, id, { fingerprint: a.body.fingerprint, proof });
    expect(first.status).toBe(200);
    const again = await pollStatus(s, id, { fingerprint: a.body.fingerprint, proof });
    expect(again.status).toBe(401);
    expect(again.body.error).toBe('invalid_proof');
    expect(again.body.error_description).toMatch(/already used/);
  });

  it('a status proof re-encoded from the text form into the raw form is a replay (401 invalid_proof)', async () => {
    const a = await register(s.t.api, 'encoding-replayer', 'acme');
    const { id } = await pendingRegistration(s, a);
    const ts = uniqueTs();
    const textForm = statusProofText(a.keys.privateKey, s.issuer, ts);
    const rawForm = statusProof(a.keys.privateKey, s.issuer, ts);
    const poll = (proof: string) => pollStatus(s, id, { fingerprint: a.body.fingerprint, proof });
    const first = await poll(textForm);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ error: 'authorization_pending', status: 'pending' });
    const again = await poll(rawForm);
    expectAidError(again, 401, 'invalid_proof');
    expect(again.body.error_description).toMatch(/already used/);
  });
});
