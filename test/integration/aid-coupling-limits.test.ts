// AID coupled with AMP, and the AID rate limits (agent-identity §13, §14, §16): deregistering the
// AMP agent suspends (active) or rejects (pending) its registration as the system; rotating its
// AMP keypair moves the registration to the new key behind a token cutoff; the per-fingerprint,
// per-IP, per-agent, failed-lookup, introspection and pending-count limits answer 429
// `rate_limited` with Retry-After (and none applies with AMP_RATE_LIMITS=off); proofs may name an
// AID_ISSUER_ALIASES issuer while tokens keep the AMP_PUBLIC_URL one. Each block runs its own
// server with small limit overrides so that no test has to wait for a bucket.

import { execFile } from 'node:child_process';
import { createHash, createPublicKey, sign } from 'node:crypto';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeRegistration,
  activityLogs,
  adminToken,
  asAdmin,
  fingerprintOf,
  introspect,
  jwtPayload,
  pendingRegistration,
  registrationRequestBody,
  requestRegistration,
  samePublicKey,
  startAidServer,
  statusProof,
  tokenFor,
  tokenProof,
  tokenRequest,
  type AidServer,
} from '../helpers/aid.js';
import { call, newKeypair, register, ROOT, type Registered, type Reply } from '../helpers/server.js';

const run = promisify(execFile);
const TENANT = 'acme';

/** §14: a refusal is 429 `rate_limited` with Retry-After (whole seconds) in both error shapes. */
function expectRateLimited(r: Reply, maxRetryAfterS: number): void {
  expect(r.status).toBe(429);
  expect(r.body).toMatchObject({
    error: 'rate_limited',
    error_description: expect.any(String),
    errors: [{ status: '429', code: 'rate_limited' }],
  });
  const retryAfter = Number(r.headers.get('retry-after'));
  expect(Number.isInteger(retryAfter)).toBe(true);
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(maxRetryAfterS);
}

describe('§13 AMP deregistration', () => {
  let s: AidServer;
  beforeAll(async () => {
    s = await startAidServer();
    // The tenant exists only while an AMP agent lives in it (store.hasTenant); this bystander keeps
    // the AID routes of `acme` reachable after the agents under test deregister.
    await register(s.t.api, 'bystander', TENANT);
  });
  afterAll(() => s.t.close());

  const deregister = async (a: Registered) => {
    const r = await call('DELETE', `${s.t.api}/agents/me`, { key: a.api_key });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ deregistered: true, address: a.address });
  };

  it('suspends an active registration as the system; earlier tokens go inactive and no new one is issued', async () => {
    const a = await register(s.t.api, 'leaver', TENANT);
    const id = await activeRegistration(s, a);
    const before = await tokenFor(s, a);
    expect(before.status).toBe(200);
    expect((await introspect(s, before.body.access_token)).body).toMatchObject({
      active: true,
      agent_status: 'active',
    });

    await deregister(a);

    const detail = await asAdmin(s, 'GET', `/${id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.data.attributes).toMatchObject({
      status: 'suspended',
      approved: false,
      suspension_reason: 'amp_agent_deregistered',
    });
    const suspended = await activityLogs(s, id, '?event_type=registration_suspended');
    expect(suspended).toHaveLength(1);
    expect(suspended[0]).toMatchObject({
      actor_type: 'system',
      actor_id: 'system',
      actor_email: null,
      ip_address: null,
      reason: 'amp_agent_deregistered',
      previous_status: 'active',
      new_status: 'suspended',
    });

    // The key still proves possession (the proof is valid), but the registration is suspended.
    const refused = await tokenFor(s, a);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('agent_suspended');
    expect((await introspect(s, before.body.access_token)).body).toEqual({ active: false, reason: 'agent_suspended' });
  });

  it('rejects a pending registration as the system', async () => {
    const a = await register(s.t.api, 'quitter', TENANT);
    const { id } = await pendingRegistration(s, a);

    await deregister(a);

    const detail = await asAdmin(s, 'GET', `/${id}`);
    expect(detail.body.data.attributes).toMatchObject({
      status: 'rejected',
      rejection_reason: 'amp_agent_deregistered',
    });
    const rejected = await activityLogs(s, id, '?event_type=registration_rejected');
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({
      actor_type: 'system',
      actor_id: 'system',
      reason: 'amp_agent_deregistered',
      previous_status: 'pending',
      new_status: 'rejected',
    });
    // Rejected is terminal: the token endpoint no longer knows the key in this tenant.
    const refused = await tokenFor(s, a);
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('agent_not_registered');
  });

  it('leaves rejected and deleted registrations as they are, with no new event', async () => {
    const rej = await register(s.t.api, 'turned-away', TENANT);
    const { id: rejId } = await pendingRegistration(s, rej);
    expect((await asAdmin(s, 'POST', `/${rejId}/reject`, { reason: 'unknown agent' })).status).toBe(200);
    const del = await register(s.t.api, 'removed', TENANT);
    const delId = await activeRegistration(s, del);
    expect((await asAdmin(s, 'DELETE', `/${delId}`)).status).toBe(200);
    const rejBefore = await activityLogs(s, rejId);
    const delBefore = await activityLogs(s, delId);

    await deregister(rej);
    await deregister(del);

    expect((await asAdmin(s, 'GET', `/${rejId}`)).body.data.attributes).toMatchObject({
      status: 'rejected',
      rejection_reason: 'unknown agent',
    });
    expect((await asAdmin(s, 'GET', `/${delId}`)).body.data.attributes).toMatchObject({
      status: 'deleted',
      suspension_reason: null,
    });
    expect(await activityLogs(s, rejId)).toEqual(rejBefore);
    expect(await activityLogs(s, delId)).toEqual(delBefore);
  });
});

describe('§13 AMP keypair rotation', () => {
  let s: AidServer;
  beforeAll(async () => {
    s = await startAidServer();
  });
  afterAll(() => s.t.close());

  it('moves the registration to the new key behind a cutoff; only the new key gets tokens', async () => {
    const a = await register(s.t.api, 'rotator', TENANT);
    const oldFp = a.body.fingerprint as string;
    // A rejected earlier registration of the same agent must stay on the old key (§13 skips it).
    const { id: rejectedId } = await pendingRegistration(s, a);
    expect((await asAdmin(s, 'POST', `/${rejectedId}/reject`)).status).toBe(200);
    const id = await activeRegistration(s, a);
    const before = await tokenFor(s, a);
    expect(before.status).toBe(200);
    expect(jwtPayload(before.body.access_token).agent_fingerprint).toBe(oldFp);

    const nk = newKeypair();
    const newFp = fingerprintOf(nk.publicPem);
    const rotated = await call('POST', `${s.t.api}/auth/rotate-keys`, {
      key: a.api_key,
      json: {
        new_public_key: nk.publicPem,
        key_algorithm: 'Ed25519',
        proof: sign(null, Buffer.from(nk.publicPem, 'utf8'), a.keys.privateKey).toString('base64'),
      },
    });
    expect(rotated.status).toBe(200);
    expect(rotated.body).toEqual({ rotated: true, fingerprint: newFp });

    const attrs = (await asAdmin(s, 'GET', `/${id}`)).body.data.attributes;
    expect(attrs).toMatchObject({ status: 'active', fingerprint: newFp, amp_fingerprint: newFp });
    expect(samePublicKey(attrs.public_key, nk.publicPem)).toBe(true);
    expect(samePublicKey(attrs.amp_public_key, nk.publicPem)).toBe(true);
    const updated = await activityLogs(s, id, '?event_type=registration_updated');
    expect(updated).toHaveLength(1);
    expect(updated[0]).toMatchObject({
      actor_type: 'system',
      reason: 'amp_key_rotated',
      previous_status: 'active',
      new_status: 'active',
      metadata: { key_rotated: { old_fingerprint: oldFp, new_fingerprint: newFp } },
    });
    expect((await asAdmin(s, 'GET', `/${rejectedId}`)).body.data.attributes).toMatchObject({
      status: 'rejected',
      fingerprint: oldFp,
    });
    expect(await activityLogs(s, rejectedId, '?event_type=registration_updated')).toEqual([]);

    // §9 cutoff on an active registration: the earlier token is revoked.
    expect((await introspect(s, before.body.access_token)).body).toEqual({ active: false, reason: 'token_revoked' });

    // The old key, named by its own fingerprint: no live registration holds that fingerprint any
    // more (only the rejected one, which the lookup skips) → 403 agent_not_registered (§5 step 5).
    const oldByOldFp = await tokenFor(s, a, a.keys.privateKey, oldFp);
    expect(oldByOldFp.status).toBe(403);
    expect(oldByOldFp.body.error).toBe('agent_not_registered');
    // The old key, naming the new fingerprint: the registration is found, and the proof is checked
    // against the registered (new) key only → 400 invalid_proof (§5 step 7).
    const oldByNewFp = await tokenFor(s, a, a.keys.privateKey, newFp);
    expect(oldByNewFp.status).toBe(400);
    expect(oldByNewFp.body.error).toBe('invalid_proof');

    // The new key gets a token (iat may be the second after the cutoff) that introspects active.
    const fresh = await tokenFor(s, a, nk.privateKey, newFp);
    expect(fresh.status).toBe(200);
    expect(fresh.body.agent_id).toBe(id);
    expect(jwtPayload(fresh.body.access_token).agent_fingerprint).toBe(newFp);
    expect((await introspect(s, fresh.body.access_token)).body).toMatchObject({
      active: true,
      agent_id: id,
      agent_status: 'active',
    });
  });
});

describe('§14 token exchange per fingerprint (aid_token_key=3/min)', () => {
  let s: AidServer;
  let p: Registered;
  let q: Registered;
  let r: Registered;
  beforeAll(async () => {
    s = await startAidServer({ rateLimitOverrides: ['aid_token_key=3/min'] });
    [p, q, r] = [
      await register(s.t.api, 'p', TENANT),
      await register(s.t.api, 'q', TENANT),
      await register(s.t.api, 'r', TENANT),
    ];
    for (const a of [p, q, r]) await activeRegistration(s, a);
  });
  afterAll(() => s.t.close());

  const badProof = (a: Registered) => tokenFor(s, a, newKeypair().privateKey);

  it('refuses the 4th failing request for one fingerprint with 429 and Retry-After; another fingerprint is unaffected', async () => {
    for (let i = 0; i < 3; i++) {
      const bad = await badProof(p);
      expect(bad.status).toBe(400);
      expect(bad.body.error).toBe('invalid_proof');
    }
    const limited = await badProof(p);
    // 3/min refills one token per 20 s.
    expectRateLimited(limited, 20);
    expect(limited.body.error_description).toMatch(/^Too many token requests for this key; retry in \d+ s$/);
    expect(limited.headers.get('cache-control')).toBe('no-store');
    // The limit comes before the proof (§5 step 4): even a valid proof is refused now.
    expectRateLimited(await tokenFor(s, p), 20);

    const other = await badProof(q);
    expect(other.status).toBe(400);
    expect(other.body.error).toBe('invalid_proof');
    expect((await tokenFor(s, q)).status).toBe(200);
  });

  it('refills the bucket on a success', async () => {
    for (let i = 0; i < 2; i++) expect((await badProof(r)).status).toBe(400);
    expect((await tokenFor(s, r)).status).toBe(200);
    const after: number[] = [];
    for (let i = 0; i < 3; i++) after.push((await badProof(r)).status);
    expect(after).toEqual([400, 400, 400]);
    // A full bucket of three again, and no more: the limit is back in force.
    expectRateLimited(await badProof(r), 20);
  });
});

describe('§14 /request per client IP and per agent', () => {
  it('public profile (aid_request=2/h): the third /request from 127.0.0.1 is 429', async () => {
    const s = await startAidServer({
      rateLimitProfile: 'public',
      rateLimitOverrides: ['aid_request=2/h', 'register=100/min'],
    });
    try {
      const agents = [
        await register(s.t.api, 'ip-1', TENANT),
        await register(s.t.api, 'ip-2', TENANT),
        await register(s.t.api, 'ip-3', TENANT),
      ];
      expect((await requestRegistration(s, agents[0])).status).toBe(202);
      expect((await requestRegistration(s, agents[1])).status).toBe(202);
      const third = await requestRegistration(s, agents[2]);
      // 2/h refills one token per 1800 s.
      expectRateLimited(third, 1800);
      expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(60);
      expect(third.body.error_description).toMatch(/registration requests from this address/);
      // Nothing was created for the refused agent.
      expect((await asAdmin(s, 'GET', '')).body.meta.total_count).toBe(2);
    } finally {
      await s.t.close();
    }
  });

  it('local profile: loopback is exempt per IP, but aid_request_key=2/d limits one agent', async () => {
    const s = await startAidServer({ rateLimitOverrides: ['aid_request=2/h', 'aid_request_key=2/d'] });
    try {
      const agents = [
        await register(s.t.api, 'lo-1', TENANT),
        await register(s.t.api, 'lo-2', TENANT),
        await register(s.t.api, 'lo-3', TENANT),
      ];
      for (const a of agents) expect((await requestRegistration(s, a)).status).toBe(202);
      // A re-request while pending is allowed by the state machine; the per-agent bucket stops the third.
      expect((await requestRegistration(s, agents[0])).status).toBe(202);
      const limited = await requestRegistration(s, agents[0]);
      expectRateLimited(limited, 12 * 3600);
      expect(limited.body.error_description).toMatch(/registration requests for this agent/);
      expect((await requestRegistration(s, agents[1])).status).toBe(202);
    } finally {
      await s.t.close();
    }
  });
});

describe('§14 failed code lookups (aid_lookup_failures=2/min)', () => {
  let s: AidServer;
  let userCode: string;
  beforeAll(async () => {
    s = await startAidServer({ rateLimitOverrides: ['aid_lookup_failures=2/min'] });
    ({ userCode } = await pendingRegistration(s, await register(s.t.api, 'looked-up', TENANT)));
  });
  afterAll(() => s.t.close());

  const byCode = (code: string) => call('GET', `${s.url}/agent_registrations/status?code=${encodeURIComponent(code)}`);
  const resolve = (code: string, token: string) =>
    asAdmin(s, 'GET', `/resolve?code=${encodeURIComponent(code)}`, undefined, token);

  it('status?code=: only 404s count; once the bucket is empty even a valid code is refused', async () => {
    const found = await byCode(userCode);
    expect(found.status).toBe(200);
    expect(found.body).toMatchObject({ error: 'authorization_pending', status: 'pending' });
    for (let i = 0; i < 2; i++) {
      const miss = await byCode('WRONG-CODE');
      expect(miss.status).toBe(404);
      expect(miss.body.error).toBe('not_found');
    }
    // The limiter peeks before the lookup, so the valid code is refused too (rate_limited, not the
    // poll interval's slow_down: the poll is never reached).
    const validNow = await byCode(userCode);
    expectRateLimited(validNow, 30);
    expect(validNow.body.error_description).toMatch(/failed code lookups/);
    expectRateLimited(await byCode('WRONG-CODE'), 30);
  });

  it('resolve?code=: counted per admin, apart from the IP bucket', async () => {
    const first = await s.mint('first@acme.com');
    // The IP's bucket is empty after the test above; the admin's is not.
    expect((await resolve(userCode, first)).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await resolve('WRONG-CODE', first)).status).toBe(404);
    expectRateLimited(await resolve('WRONG-CODE', first), 30);
    expectRateLimited(await resolve(userCode, first), 30);
    const second = await s.mint('second@acme.com');
    expect((await resolve('WRONG-CODE', second)).status).toBe(404);
    expect((await resolve(userCode, second)).status).toBe(200);
  });
});

describe('§14 introspection per caller (aid_introspect=2/min)', () => {
  let s: AidServer;
  let agent: Registered;
  beforeAll(async () => {
    s = await startAidServer({ rateLimitOverrides: ['aid_introspect=2/min'] });
    agent = await register(s.t.api, 'introspector', TENANT);
  });
  afterAll(() => s.t.close());

  it("refuses a caller's third call; an AMP-key caller and another admin have their own buckets", async () => {
    for (let i = 0; i < 2; i++)
      expect((await introspect(s, 'x.y.z')).body).toEqual({ active: false, reason: 'invalid_token' });
    const limited = await introspect(s, 'x.y.z');
    expectRateLimited(limited, 30);
    expect(limited.body.error_description).toMatch(/introspection requests/);

    const byKey = await introspect(s, 'x.y.z', { 'X-API-Key': agent.api_key });
    expect(byKey.status).toBe(200);
    expect(byKey.body).toEqual({ active: false, reason: 'invalid_token' });
    const other = await introspect(s, 'x.y.z', { Authorization: `Bearer ${await s.mint('other@acme.com')}` });
    expect(other.status).toBe(200);
  });
});

describe('§14 with AMP_RATE_LIMITS=off', () => {
  it('applies none of the AID limits, however small the overrides', async () => {
    const s = await startAidServer({
      rateLimits: 'off',
      rateLimitProfile: 'public',
      rateLimitOverrides: [
        'aid_token_key=1/min',
        'aid_request=1/h',
        'aid_request_key=1/d',
        'aid_lookup_failures=1/min',
        'aid_introspect=1/min',
      ],
    });
    try {
      const agents: Registered[] = [];
      for (let i = 0; i < 4; i++) agents.push(await register(s.t.api, `free-${i}`, TENANT));
      const requests: number[] = [];
      for (const a of agents) requests.push((await requestRegistration(s, a)).status);
      requests.push((await requestRegistration(s, agents[0])).status);
      expect(requests).toEqual([202, 202, 202, 202, 202]);

      // Pending is enough: the proof is checked (and refused) before the state (§5 steps 7, 8).
      const tokens: number[] = [];
      for (let i = 0; i < 5; i++) tokens.push((await tokenFor(s, agents[0], newKeypair().privateKey)).status);
      expect(tokens).toEqual([400, 400, 400, 400, 400]);
      const lookups: number[] = [];
      for (let i = 0; i < 3; i++)
        lookups.push((await call('GET', `${s.url}/agent_registrations/status?code=WRONG-CODE`)).status);
      expect(lookups).toEqual([404, 404, 404]);
      const introspections: number[] = [];
      for (let i = 0; i < 3; i++) introspections.push((await introspect(s, 'x.y.z')).status);
      expect(introspections).toEqual([200, 200, 200]);
    } finally {
      await s.t.close();
    }
  });
});

describe('§14 live pending registrations per tenant (200)', () => {
  const CAP = 200;
  const BATCH = 20;

  /** `n` AMP agents of the tenant, registered 20 at a time (loopback is not limited per IP in the local profile). */
  async function crowd(s: AidServer, n: number, prefix: string): Promise<Registered[]> {
    const out: Registered[] = [];
    for (let i = 0; i < n; i += BATCH) {
      out.push(
        ...(await Promise.all(
          Array.from({ length: Math.min(BATCH, n - i) }, (_, j) => register(s.t.api, `${prefix}-${i + j}`, TENANT)),
        )),
      );
    }
    return out;
  }

  /** T1 for each agent, 20 at a time; every answer must be 202. The registration ids, in order. */
  async function requestAll(s: AidServer, agents: Registered[]): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < agents.length; i += BATCH) {
      for (const r of await Promise.all(agents.slice(i, i + BATCH).map((a) => requestRegistration(s, a)))) {
        expect(r.status).toBe(202);
        ids.push(r.body.data.id);
      }
    }
    return ids;
  }

  it('refuses the 201st /request with 429; a pending agent may re-request; another tenant is not counted', {
    timeout: 120_000,
  }, async () => {
    const s = await startAidServer();
    try {
      const agents = await crowd(s, CAP + 1, 'crowd');
      const ids = await requestAll(s, agents.slice(0, CAP));
      expect((await asAdmin(s, 'GET', '?status=pending&records=1')).body.meta.total_count).toBe(CAP);

      const over = await requestRegistration(s, agents[CAP]);
      expect(over.status).toBe(429);
      expect(over.headers.get('retry-after')).toBe('60');
      expect(over.body).toMatchObject({
        error: 'rate_limited',
        error_description: `This organisation has ${CAP} pending registrations; approve or reject some first`,
      });

      const again = await requestRegistration(s, agents[0]);
      expect(again.status).toBe(202);
      expect(again.body.data.id).toBe(ids[0]);

      const elsewhere = await register(s.t.api, 'crowd-other', 'globex');
      const foreign = await call('POST', `${s.t.url}/globex/agent_registrations/request`, {
        headers: { 'X-Api-Key': elsewhere.api_key },
        json: registrationRequestBody(elsewhere),
      });
      expect(foreign.status).toBe(202);

      // Rejecting one frees exactly one place.
      expect((await asAdmin(s, 'POST', `/${ids[1]}/reject`)).status).toBe(200);
      expect((await requestRegistration(s, agents[CAP])).status).toBe(202);
      expect((await requestRegistration(s, await register(s.t.api, 'crowd-late', TENANT))).status).toBe(429);
    } finally {
      await s.t.close();
    }
  });

  it('has no cap with AMP_RATE_LIMITS=off', { timeout: 120_000 }, async () => {
    const s = await startAidServer({ rateLimits: 'off' });
    try {
      const ids = await requestAll(s, await crowd(s, CAP + 1, 'free-crowd'));
      expect(new Set(ids).size).toBe(CAP + 1);
      expect((await asAdmin(s, 'GET', '?status=pending&records=1')).body.meta.total_count).toBe(CAP + 1);
    } finally {
      await s.t.close();
    }
  });
});

describe('§16 issuer aliases', () => {
  let s: AidServer;
  let alias: string;
  let a: Registered;
  let id: string;
  beforeAll(async () => {
    // Names only, neither is where the server listens (requests go to s.url): the AMP_PUBLIC_URL
    // issuer, and the LAN address agents may name instead.
    alias = 'http://192.168.1.20:23000';
    s = await startAidServer({ publicUrl: 'https://amp.example.test', aidIssuerAliases: [alias] });
    a = await register(s.t.api, 'lan-agent', TENANT);
    id = await activeRegistration(s, a);
  });
  afterAll(() => s.t.close());

  it('accepts a token proof naming the alias issuer; the token keeps the AMP_PUBLIC_URL issuer', async () => {
    expect(s.issuer).toBe(`https://amp.example.test/${TENANT}`);
    expect(s.issuer).not.toContain('192.168.1.20');
    for (const named of [`${alias}/${TENANT}`, `${alias}/${TENANT}/`]) {
      const r = await tokenRequest(s, { fingerprint: a.body.fingerprint, proof: tokenProof(a.keys.privateKey, named) });
      expect(r.status).toBe(200);
      expect(jwtPayload(r.body.access_token)).toMatchObject({ iss: s.issuer, aud: [s.issuer], agent_id: id });
      expect((await introspect(s, r.body.access_token)).body).toMatchObject({ active: true, iss: s.issuer });
    }
  });

  it('refuses a proof naming an unlisted origin, or the alias with another tenant', async () => {
    for (const named of ['http://example.invalid/acme', `${alias}/globex`, `${alias}`]) {
      const r = await tokenRequest(s, { fingerprint: a.body.fingerprint, proof: tokenProof(a.keys.privateKey, named) });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_proof');
    }
  });

  it('accepts a status proof over the alias issuer and refuses one over an unlisted origin', async () => {
    const poll = (proof: string) =>
      call('POST', `${s.url}/agent_registrations/${id}/status`, {
        json: { fingerprint: a.body.fingerprint, proof },
      });
    // A refused proof never reaches the poll interval, so the good poll after it is not a slow_down.
    const bad = await poll(statusProof(a.keys.privateKey, 'http://example.invalid/acme'));
    expect(bad.status).toBe(401);
    expect(bad.body.error).toBe('invalid_proof');
    const good = await poll(statusProof(a.keys.privateKey, `${alias}/${TENANT}`));
    expect(good.status).toBe(200);
    expect(good.body.data).toMatchObject({
      id,
      attributes: { status: 'active', token_endpoint: `${s.issuer}/oauth/token`, oidc_issuer: s.issuer },
    });
  });

  it('check-config refuses an alias that is not an http(s) base URL (exit 2), and accepts a good one', async () => {
    const cli = (alias: string) =>
      run(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), 'check-config', '--aid-issuer-aliases', alias], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '' },
        timeout: 20_000,
      });
    const failed = await cli('ftp://x').then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('AID_ISSUER_ALIASES');
    expect(failed.stderr).toContain("'ftp://x'");
    const ok = await cli('http://192.168.1.20:23000');
    expect(ok.stdout).toBe('configuration is valid\n');
  });
});

describe('review findings (regressions)', () => {
  let s: AidServer;
  beforeAll(async () => {
    s = await startAidServer({ rateLimitOverrides: ['aid_token_key=3/min'] });
  });
  afterAll(() => s.t.close());

  it('a tenant whose last AMP agent deregistered keeps its registrations and audit trail reachable', async () => {
    const solo = 'solo';
    const a = await register(s.t.api, 'only-one', solo);
    const base = `${s.t.url}/${solo}`;
    const admin = await adminToken(s.t, { tenant: solo, email: 'ops@solo.com' });
    const req = await call('POST', `${base}/agent_registrations/request`, {
      headers: { 'X-Api-Key': a.api_key },
      json: registrationRequestBody(a),
    });
    expect(req.status).toBe(202);
    const id = req.body.data.id;
    expect(
      (
        await call('POST', `${base}/agent_registrations/${id}/approve`, {
          headers: { Authorization: `Bearer ${admin}` },
        })
      ).status,
    ).toBe(200);
    expect((await call('DELETE', `${s.t.api}/agents/me`, { key: a.api_key })).status).toBe(200);

    const detail = await call('GET', `${base}/agent_registrations/${id}`, {
      headers: { Authorization: `Bearer ${admin}` },
    });
    expect(detail.status).toBe(200);
    expect(detail.body.data.attributes.status).toBe('suspended');
    const logs = await call('GET', `${base}/agent_registrations/${id}/activity_logs`, {
      headers: { Authorization: `Bearer ${admin}` },
    });
    expect(logs.status).toBe(200);
    expect(logs.body.data.map((e: { attributes: { event_type: string } }) => e.attributes.event_type)).toContain(
      'registration_suspended',
    );
    expect((await call('GET', `${base}/.well-known/openid-configuration`)).status).toBe(200);
    // A tenant that never had anything is still unknown.
    expect((await call('GET', `${s.t.url}/never-seen/.well-known/openid-configuration`)).status).toBe(404);
  });

  it('both fingerprint forms of one registered key share one per-key token bucket', async () => {
    const a = await register(s.t.api, 'two-forms', TENANT);
    await activeRegistration(s, a);
    const other = newKeypair();
    // The raw-key form: SHA-256 over the 32 key bytes (the end of the SPKI DER).
    const rawKey = createPublicKey(a.keys.publicPem).export({ format: 'der', type: 'spki' }).subarray(-32);
    const forms = [a.body.fingerprint, 'SHA256:' + createHash('sha256').update(rawKey).digest('base64')];
    expect(forms[1]).toMatch(/^SHA256:/);
    expect(forms[1]).not.toBe(forms[0]);
    const codes: number[] = [];
    for (const fp of [forms[0], forms[1], forms[0], forms[1]])
      codes.push((await tokenFor(s, a, other.privateKey, fp)).status);
    expect(codes).toEqual([400, 400, 400, 429]);
  });

  it('an AMP key rotation to a key that another live registration holds is refused', async () => {
    const holder = newKeypair();
    const created = await asAdmin(s, 'POST', '', {
      agent_registration: {
        name: 'held-key',
        address: `held-key@${TENANT}.aimaestro.local`,
        fingerprint: fingerprintOf(holder.publicPem),
        public_key: holder.publicPem,
        role_id: 1,
      },
    });
    expect(created.body).toMatchObject({ data: { attributes: { status: 'active' } } });
    expect(created.status).toBe(201);
    const a = await register(s.t.api, 'key-thief', TENANT);
    const proof = sign(null, Buffer.from(holder.publicPem, 'utf8'), a.keys.privateKey).toString('base64');
    const r = await call('POST', `${s.t.api}/auth/rotate-keys`, {
      key: a.api_key,
      json: { new_public_key: holder.publicPem, proof },
    });
    expect(r.status).toBe(409);
    expect(r.body.error).toBe('key_already_registered');
    // Nothing changed: the agent keeps its key, the registration keeps its.
    const me = await call('GET', `${s.t.api}/agents/me`, { key: a.api_key });
    expect(me.body.fingerprint).toBe(a.body.fingerprint);
  });

  it('a status proof is accepted once; the same proof again is a replay (401 invalid_proof)', async () => {
    const a = await register(s.t.api, 'status-replay', TENANT);
    const { id } = await pendingRegistration(s, a);
    const proof = statusProof(a.keys.privateKey, s.issuer);
    const first = await call('POST', `${s.url}/agent_registrations/${id}/status`, {
      json: { fingerprint: a.body.fingerprint, proof },
    });
    expect(first.status).toBe(200);
    const again = await call('POST', `${s.url}/agent_registrations/${id}/status`, {
      json: { fingerprint: a.body.fingerprint, proof },
    });
    expect(again.status).toBe(401);
    expect(again.body.error).toBe('invalid_proof');
    expect(again.body.error_description).toMatch(/already used/);
  });
});
