// AID token exchange and introspection (agent-identity §5-§9): the brief's form request with a
// proof made by openssl, verification by a standard library against the JWKS, introspection with
// agent fields, the suspension cutoff (also when two suspensions fall in one second), one token
// per proof, identity documents in the Agent Card form, and the refusals with their OAuth errors.

import { execFile } from 'node:child_process';
import { sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../proto/index.js';
import {
  activeRegistration,
  AID_GRANT,
  asAdmin,
  expectAidError,
  introspect,
  jwtPayload,
  nowSeconds,
  requestRegistration,
  startAidServer,
  tokenFor,
  tokenProof,
  tokenRequest,
  uniqueTs,
  type AidServer,
} from '../helpers/aid.js';
import { call, newKeypair, register, tempDir, type Registered, type Reply } from '../helpers/server.js';

const run = promisify(execFile);

let s: AidServer;
let issuer: string;
let agent: Registered;
let regId: string;
const dataDir = tempDir('amp-aid-tok-');
const work = tempDir('amp-aid-openssl-');

/** The §6.1 token proof made with `openssl pkeyutl -sign -rawin`, as a shell agent would. */
async function opensslProof(a: Registered, ts: number): Promise<string> {
  const key = join(work, 'private.pem');
  writeFileSync(key, a.keys.privatePem, { mode: 0o600 });
  writeFileSync(join(work, 'input'), `aid-token-exchange\n${ts}\n${issuer}`);
  await run(
    'openssl',
    ['pkeyutl', '-sign', '-inkey', key, '-rawin', '-in', join(work, 'input'), '-out', join(work, 'sig')],
    { timeout: 10_000 },
  );
  return Buffer.concat([readFileSync(join(work, 'sig')), Buffer.from(String(ts))]).toString('base64url');
}

beforeAll(async () => {
  s = await startAidServer({ dataDir });
  issuer = s.issuer;
  agent = await register(s.t.api, 'my-agent', 'acme');
  const req = await requestRegistration(s, agent);
  regId = req.body.data.id;
});
afterAll(() => s.t.close());

describe('token exchange', () => {
  it('refuses a pending registration only after a valid proof', async () => {
    const bad = await tokenRequest(s, {
      fingerprint: agent.body.fingerprint,
      proof: tokenProof(newKeypair().privateKey, issuer, nowSeconds()),
    });
    expect(bad.body.error).toBe('invalid_proof');
    const r = await tokenFor(s, agent);
    expect(r.status).toBe(403);
    expect(r.body.error).toBe('registration_pending');
  });

  it("issues a token for the brief's form request with an openssl-made proof; jose verifies it against the JWKS", async () => {
    expect((await asAdmin(s, 'POST', `/${regId}/approve`)).status).toBe(200);
    const r = await tokenRequest(s, {
      agent_address: agent.address,
      fingerprint: agent.body.fingerprint,
      proof: await opensslProof(agent, uniqueTs()),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('cache-control')).toBe('no-store');
    expect(r.body).toMatchObject({
      token_type: 'Bearer',
      expires_in: 3600,
      scope: 'agent:identity',
      agent_address: agent.address,
      agent_id: regId,
      credential_type: 'access_token',
    });
    const { payload } = await jwtVerify(
      r.body.access_token,
      createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`)),
      { issuer, audience: issuer, algorithms: ['RS256'] },
    );
    expect(decodeProtectedHeader(r.body.access_token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    expect(payload).toMatchObject({
      sub: `agent:${regId}`,
      client_id: `agent:${regId}`,
      token_type: 'agent',
      agent_name: 'my-agent',
      agent_role: 'agent',
      role_id: 1,
      agent_fingerprint: agent.body.fingerprint,
      company_url_id: 'acme',
      scopes: ['agent:identity'],
    });
    expect(payload.iat).toBe(payload.nbf);
    expect((payload.exp as number) - (payload.iat as number)).toBe(3600);
    const info = await introspect(s, r.body.access_token);
    expect(info.body).toMatchObject({
      active: true,
      agent_id: regId,
      agent_address: agent.address,
      agent_name: 'my-agent',
      agent_role: 'agent',
      agent_status: 'active',
      scope: 'agent:identity',
    });
  });

  it('refuses an agent token on admin routes, even over HTTP', async () => {
    const tok = await tokenFor(s, agent);
    expect(tok.status).toBe(200);
    const r = await call('GET', `${s.url}/agent_registrations`, {
      headers: { Authorization: `Bearer ${tok.body.access_token}` },
    });
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({
      error: 'insufficient_scope',
      error_description: 'agent tokens are not accepted on admin endpoints',
    });
  });

  it.each([
    ['a replayed proof', () => 'replay'],
    ['a stale proof', () => tokenProof(agent.keys.privateKey, issuer, nowSeconds() - 400)],
    ['a proof for another issuer', () => tokenProof(agent.keys.privateKey, `${s.t.publicBase}/other`, nowSeconds())],
    ['a proof by another key', () => tokenProof(newKeypair().privateKey, issuer, nowSeconds())],
    ['garbage', () => 'not-a-proof'],
  ])('refuses %s with 400 invalid_proof', async (_label, make) => {
    let proof = make();
    if (proof === 'replay') {
      proof = tokenProof(agent.keys.privateKey, issuer, uniqueTs());
      expect((await tokenRequest(s, { fingerprint: agent.body.fingerprint, proof })).status).toBe(200);
    }
    const r = await tokenRequest(s, { fingerprint: agent.body.fingerprint, proof });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ error: 'invalid_proof', errors: [{ status: '400', code: 'invalid_proof' }] });
  });

  it('answers an identity document holding a non-finite number with 400 invalid_grant, not a 500', async () => {
    const doc = `{"aid_version":"1.0","address":"${agent.address}","public_key":${JSON.stringify(agent.keys.publicPem.trim())},"key_algorithm":"Ed25519","fingerprint":"${agent.body.fingerprint}","issued_at":"${new Date(Date.now() - 1000).toISOString()}","expires_at":"${new Date(Date.now() + 86_400_000).toISOString()}","x":1e400,"signature":"${Buffer.alloc(64).toString('base64')}"}`;
    const r = await call('POST', `${s.url}/oauth/token`, {
      json: {
        grant_type: AID_GRANT,
        proof: 'AAAA',
        agent_identity: Buffer.from(doc).toString('base64url'),
      },
    });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({
      error: 'invalid_grant',
      error_description: 'agent_identity: signature does not verify',
    });
  });

  it('refuses other grants, missing fields, foreign scopes, wrong addresses', async () => {
    expect((await call('POST', `${s.url}/oauth/token`, { json: { grant_type: 'password' } })).body.error).toBe(
      'unsupported_grant_type',
    );
    expect((await tokenRequest(s, { fingerprint: agent.body.fingerprint })).body.error).toBe('invalid_request');
    expect(
      (
        await tokenRequest(s, {
          fingerprint: agent.body.fingerprint,
          proof: tokenProof(agent.keys.privateKey, issuer, uniqueTs()),
          scope: 'agent:identity admin',
        })
      ).body.error,
    ).toBe('invalid_scope');
    expect(
      (
        await tokenRequest(s, {
          fingerprint: agent.body.fingerprint,
          proof: tokenProof(agent.keys.privateKey, issuer, uniqueTs()),
          agent_address: 'x@acme.aimaestro.local',
        })
      ).body.error,
    ).toBe('invalid_grant');
    const unknown = await tokenRequest(s, {
      fingerprint: 'SHA256:AAAA',
      proof: tokenProof(agent.keys.privateKey, issuer, nowSeconds()),
    });
    expect(unknown.status).toBe(403);
    expect(unknown.body.error).toBe('agent_not_registered');
  });

  it('suspension cuts off earlier tokens for good; reactivation needs a new token; deletion ends it', async () => {
    const before = await call('POST', `${s.url}/oauth/token`, {
      json: {
        grant_type: AID_GRANT,
        fingerprint: agent.body.fingerprint,
        proof: tokenProof(agent.keys.privateKey, issuer, uniqueTs()),
      },
    });
    expect(before.status).toBe(200);
    await asAdmin(s, 'POST', `/${regId}/suspend`, { reason: 'audit' });
    expect((await introspect(s, before.body.access_token)).body).toEqual({ active: false, reason: 'agent_suspended' });
    const denied = await tokenFor(s, agent);
    expect(denied.body.error).toBe('agent_suspended');
    await asAdmin(s, 'POST', `/${regId}/reactivate`);
    expect((await introspect(s, before.body.access_token)).body).toEqual({ active: false, reason: 'token_revoked' });
    const fresh = await tokenFor(s, agent);
    expect(fresh.status).toBe(200);
    expect((await introspect(s, fresh.body.access_token)).body.active).toBe(true);
    await asAdmin(s, 'DELETE', `/${regId}`);
    expect((await introspect(s, fresh.body.access_token)).body).toEqual({ active: false, reason: 'agent_not_found' });
    expect((await tokenFor(s, agent)).body.error).toBe('agent_not_registered');
  });

  it('audits issued and denied tokens, and guards introspection', async () => {
    const logs = await asAdmin(s, 'GET', `/${regId}/activity_logs?event_type=token_issued,token_denied`);
    const types = logs.body.data.map((e: { attributes: { event_type: string } }) => e.attributes.event_type);
    expect(types).toContain('token_issued');
    expect(types).toContain('token_denied');
    const issued = logs.body.data.find(
      (e: { attributes: { event_type: string } }) => e.attributes.event_type === 'token_issued',
    ).attributes;
    expect(issued.metadata).toMatchObject({
      scopes_granted: ['agent:identity'],
      credential_type: 'access_token',
      proof_mode: 'timestamp',
    });
    expect(JSON.stringify(logs.body)).not.toMatch(/eyJ[A-Za-z0-9_-]{20,}\./);
    const anon = await call('POST', `${s.url}/oauth/introspect`, { json: { token: 'x' } });
    expect(anon.status).toBe(401);
    expect(anon.body.error).toBe('invalid_client');
    const byAgentKey = await call('POST', `${s.url}/oauth/introspect`, {
      headers: { 'X-API-Key': agent.api_key },
      json: { token: 'x.y.z' },
    });
    expect(byAgentKey.body).toEqual({ active: false, reason: 'invalid_token' });
  });
});

describe('token exchange: cutoffs, proof replays, identity documents', () => {
  let s: AidServer;
  beforeAll(async () => {
    s = await startAidServer({ rateLimits: 'off' });
  });
  afterAll(() => s.t.close());

  it('suspend → reactivate → token → suspend → reactivate within one second leaves the token inactive', async () => {
    let sameSecond = false;
    for (let attempt = 0; attempt < 5 && !sameSecond; attempt++) {
      const a = await register(s.t.api, `cutoff-${attempt}`, 'acme');
      const id = await activeRegistration(s, a);
      const start = nowSeconds();
      expect((await asAdmin(s, 'POST', `/${id}/suspend`)).status).toBe(200);
      expect((await asAdmin(s, 'POST', `/${id}/reactivate`)).status).toBe(200);
      const tk = await tokenFor(s, a);
      expect(tk.status).toBe(200);
      expect((await asAdmin(s, 'POST', `/${id}/suspend`, { reason: 'again' })).status).toBe(200);
      expect((await asAdmin(s, 'POST', `/${id}/reactivate`)).status).toBe(200);
      // Only a run that stayed inside one second tells the old cutoff (= now) from the new one.
      sameSecond = nowSeconds() === start;
      const info = await introspect(s, tk.body.access_token);
      expect(info.status).toBe(200);
      expect(info.body.active).toBe(false);
      if (sameSecond) {
        // The token carries cutoff + 1 = start + 1; the second suspension must move past it.
        expect(jwtPayload(tk.body.access_token).iat).toBe(start + 1);
        expect(info.body).toEqual({ active: false, reason: 'token_revoked' });
      }
    }
    expect(sameSecond).toBe(true);
  });

  it('one token proof yields one token, however the scope is spelled', async () => {
    const a = await register(s.t.api, 'scope-replayer', 'acme');
    await activeRegistration(s, a);
    const proof = tokenProof(a.keys.privateKey, s.issuer);
    const outcomes: Reply[] = [];
    for (const scope of [undefined, 'agent:identity', ' agent:identity', 'agent:identity agent:identity']) {
      const fields: Record<string, string> = { fingerprint: a.body.fingerprint, proof };
      if (scope !== undefined) fields.scope = scope;
      outcomes.push(await tokenRequest(s, fields));
    }
    expect(outcomes.map((r) => r.status)).toEqual([200, 400, 400, 400]);
    for (const r of outcomes.slice(1)) {
      expectAidError(r, 400, 'invalid_proof');
      expect(r.body.error_description).toMatch(/already used/);
    }
  });

  it('an identity document signed in the Agent Card form is accepted; a broken signature is invalid_grant', async () => {
    const a = await register(s.t.api, 'card-signer', 'acme');
    const id = await activeRegistration(s, a);
    const t = Date.now();
    const fields = {
      aid_version: '1.0',
      address: a.address,
      alias: a.name,
      public_key: a.keys.publicPem,
      key_algorithm: 'Ed25519',
      fingerprint: a.body.fingerprint,
      issued_at: new Date(t - 1000).toISOString(),
      expires_at: new Date(t + 86_400_000).toISOString(),
    };
    const cardSig = sign(null, Buffer.from('amp-agent-card-v1\n' + canonicalJson(fields), 'utf8'), a.keys.privateKey);
    const doc = (signature: string) => Buffer.from(JSON.stringify({ ...fields, signature })).toString('base64url');

    const ok = await tokenRequest(s, {
      agent_identity: doc(cardSig.toString('base64')),
      proof: tokenProof(a.keys.privateKey, s.issuer),
    });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ token_type: 'Bearer', agent_id: id, agent_address: a.address });

    const broken = Buffer.from(cardSig);
    broken[0] ^= 0xff;
    const bad = await tokenRequest(s, {
      agent_identity: doc(broken.toString('base64')),
      proof: tokenProof(a.keys.privateKey, s.issuer),
    });
    expectAidError(bad, 400, 'invalid_grant');
  });
});
