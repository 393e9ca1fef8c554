// AID rate limits (agent-identity §14): the per-fingerprint, per-IP, per-agent, failed-lookup,
// introspection and pending-count limits answer 429 `rate_limited` with Retry-After, and none
// applies with AMP_RATE_LIMITS=off. Each block runs its own server with small limit overrides so
// that no test has to wait for a bucket.

import { createHash, createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeRegistration,
  asAdmin,
  introspect,
  pendingRegistration,
  registrationRequestBody,
  requestRegistration,
  startAidServer,
  tokenFor,
  type AidServer,
} from '../helpers/aid.js';
import { call, newKeypair, register, type Registered, type Reply } from '../helpers/server.js';

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
