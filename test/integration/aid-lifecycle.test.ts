// AID registration lifecycle (agent-identity §3, §4, §10, §11): request with the agent's AMP key,
// admin approve / suspend / reactivate / reject / delete with scoped admin JWTs (an unknown or
// overlong registration id is a 404), and the audit trail each transition leaves, with its filters.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken, asAdmin, expectAidError, fingerprintOf, startAidServer, type AidServer } from '../helpers/aid.js';
import { call, newKeypair, register, tempDir, type Registered, type TestServer } from '../helpers/server.js';

let s: AidServer;
let t: TestServer;
let base: string;
let readToken: string;
let otherTenantToken: string;
let alice: Registered;
let bob: Registered;
let outsider: Registered;
const dataDir = tempDir('amp-aid-life-');

beforeAll(async () => {
  s = await startAidServer({ dataDir });
  t = s.t;
  base = s.url;
  alice = await register(t.api, 'alice', 'acme');
  bob = await register(t.api, 'bob', 'acme');
  outsider = await register(t.api, 'mallory', 'globex');
  readToken = await adminToken(t, { scopes: ['agent_registrations:read'] });
  otherTenantToken = await adminToken(t, { tenant: 'globex' });
});
afterAll(() => t.close());

const requestBody = (a: Registered) => ({
  agent_registration: {
    name: a.name,
    address: a.address,
    fingerprint: a.body.fingerprint,
    public_key: a.keys.publicPem,
    key_algorithm: 'Ed25519',
    description: 'test agent',
  },
});
const request = (a: Registered, key = a.api_key, tenant = 'acme') =>
  call('POST', `${t.url}/${tenant}/agent_registrations/request`, {
    headers: { 'X-Api-Key': key },
    json: requestBody(a),
  });

describe('registration lifecycle', () => {
  let id: string;

  it('T1: the agent asks with its AMP key and gets a pending registration with codes', async () => {
    const r = await request(alice);
    expect(r.status).toBe(202);
    expect(r.headers.get('cache-control')).toBe('no-store');
    id = r.body.data.id;
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(r.body.data.attributes).toMatchObject({
      status: 'pending',
      name: 'alice',
      address: alice.address,
      fingerprint: alice.body.fingerprint,
      registration_method: 'agent_initiated',
      expires_in: 86400,
      interval: 5,
      token_endpoint: `${s.issuer}/oauth/token`,
      oidc_issuer: s.issuer,
    });
    expect(r.body.user_code).toMatch(/^[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{4}-[ABCDEFGHJKMNPQRSTUVWXYZ23456789]{4}$/);
    expect(r.body.authorization_url).toMatch(
      new RegExp(`^${t.publicBase}/agents/authorize\\?code=acme\\.[A-Za-z0-9_-]{43}$`),
    );
    // A repeat while pending: same registration, new codes.
    const again = await request(alice);
    expect(again.status).toBe(202);
    expect(again.body.data.id).toBe(id);
    expect(again.body.user_code).not.toBe(r.body.user_code);
  });

  it("T1 refusals: no key, another tenant, somebody else's key material", async () => {
    const none = await call('POST', `${base}/agent_registrations/request`, { json: requestBody(bob) });
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ error: 'invalid_client', errors: [{ status: '401', code: 'invalid_client' }] });
    expect((await request(outsider, outsider.api_key, 'acme')).status).toBe(403);
    const foreign = await call('POST', `${base}/agent_registrations/request`, {
      headers: { 'X-Api-Key': bob.api_key },
      json: requestBody(alice),
    });
    expect(foreign.status).toBe(422);
    expect(foreign.body.error).toBe('validation_failed');
  });

  it("admin scopes: read cannot approve, another tenant's admin cannot read, no token is 401", async () => {
    const ro = await asAdmin(s, 'POST', `/${id}/approve`, undefined, readToken);
    expect(ro.status).toBe(403);
    expect(ro.body.error).toBe('insufficient_scope');
    expect((await asAdmin(s, 'GET', `/${id}`, undefined, otherTenantToken)).status).toBe(401);
    const anon = await call('GET', `${base}/agent_registrations`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toBe('Bearer error="invalid_token"');
    const listed = await asAdmin(s, 'GET', '?status=pending_approval', undefined, readToken);
    expect(listed.body.data.map((d: { id: string }) => d.id)).toEqual([id]);
    expect(listed.body.meta).toEqual({ total_count: 1, page: 1, records: 25, total_pages: 1 });
  });

  it('T3 approve, T5 suspend, T6 reactivate; invalid transitions are 422', async () => {
    const wrong = await asAdmin(s, 'POST', `/${id}/suspend`);
    expect(wrong.status).toBe(422);
    expect(wrong.body).toEqual({
      error: 'invalid_transition',
      error_description: 'Cannot suspend a registration in status pending',
      errors: [
        { status: '422', code: 'invalid_transition', detail: 'Cannot suspend a registration in status pending' },
      ],
    });
    const ok = await asAdmin(s, 'POST', `/${id}/approve`, { role_id: 1 });
    expect(ok.status).toBe(200);
    expect(ok.body.data.attributes).toMatchObject({
      status: 'active',
      approved: true,
      role_id: 1,
      role_name: 'agent',
      address_verified: true,
      amp_agent_id: alice.agent_id,
    });
    expect((await request(alice)).body).toMatchObject({
      error: 'already_registered',
      error_description: 'Fingerprint has already been registered',
    });
    const sus = await asAdmin(s, 'PUT', `/${id}/suspend`, { reason: 'suspicious_activity' });
    expect(sus.body.data.attributes).toMatchObject({ status: 'suspended', suspension_reason: 'suspicious_activity' });
    const re = await asAdmin(s, 'POST', `/${id}/reactivate`);
    expect(re.body.data.attributes.status).toBe('active');
    expect((await asAdmin(s, 'POST', `/${id}/approve`, { role_id: 99 })).status).toBe(422);
  });

  it('T4 reject and T7 delete', async () => {
    const r = await request(bob);
    const bid = r.body.data.id;
    const rej = await asAdmin(s, 'POST', `/${bid}/reject`, { reason: 'unknown agent' });
    expect(rej.body.data.attributes).toMatchObject({ status: 'rejected', rejection_reason: 'unknown agent' });
    // After a rejection a new request is allowed.
    const again = await request(bob);
    expect(again.status).toBe(202);
    expect(again.body.data.id).not.toBe(bid);
    const del = await asAdmin(s, 'DELETE', `/${again.body.data.id}`);
    expect(del.body.data.attributes.status).toBe('deleted');
    expect((await asAdmin(s, 'POST', `/${again.body.data.id}/revoke`)).status).toBe(422);
    expect((await asAdmin(s, 'GET', '/not-a-registration')).status).toBe(404);
  });

  it('leaves an audit event per transition with actor, IP and statuses, filterable', async () => {
    const logs = await asAdmin(s, 'GET', `/${id}/activity_logs`, undefined, readToken);
    expect(logs.status).toBe(200);
    const events = logs.body.data.map((e: { attributes: Record<string, unknown> }) => e.attributes);
    expect(events.map((e: { event_type: string }) => e.event_type)).toEqual([
      'registration_reactivated',
      'registration_suspended',
      'registration_approved',
      'registration_requested',
      'registration_requested',
    ]);
    expect(events[2]).toMatchObject({
      actor_type: 'admin',
      actor_id: 'admin:ops@acme.com',
      actor_email: 'ops@acme.com',
      previous_status: 'pending',
      new_status: 'active',
      new_role_id: 1,
      new_role_name: 'agent',
      ip_address: expect.any(String),
    });
    expect(events[1]).toMatchObject({
      previous_status: 'active',
      new_status: 'suspended',
      reason: 'suspicious_activity',
    });
    expect(events[4]).toMatchObject({
      actor_type: 'agent',
      actor_id: `agent:${id}`,
      actor_email: null,
      actor_address: alice.address,
      previous_status: null,
      new_status: 'pending',
    });
    const only = await asAdmin(
      s,
      'GET',
      `/${id}/activity_logs?event_type=registration_suspended,registration_approved`,
      undefined,
      readToken,
    );
    expect(only.body.data.map((e: { attributes: { event_type: string } }) => e.attributes.event_type)).toEqual([
      'registration_suspended',
      'registration_approved',
    ]);
    const approvedAt = Date.parse(events[2].created_at);
    const window = await asAdmin(
      s,
      'GET',
      `/${id}/activity_logs?since=${new Date(approvedAt).toISOString()}&before=${new Date(approvedAt + 1).toISOString()}`,
      undefined,
      readToken,
    );
    expect(window.body.data.map((e: { attributes: { event_type: string } }) => e.attributes.event_type)).toEqual([
      'registration_approved',
    ]);
    const bad = await asAdmin(s, 'GET', `/${id}/activity_logs?event_type=foo`, undefined, readToken);
    expect(bad.status).toBe(422);
    expect(bad.body.error_description).toBe('Unknown event_type: foo');
    const tenantWide = await asAdmin(s, 'GET', '/activity_logs?event_type=registration_rejected', undefined, readToken);
    expect(tenantWide.body.meta.total_count).toBe(1);
  });

  it('a 6000-character registration id in the path is 404 not_found, never 500', async () => {
    const a = await register(s.t.api, 'long-id', 'acme');
    const id = 'x'.repeat(6000);
    const replies = {
      status: await call('POST', `${s.url}/agent_registrations/${id}/status`, {
        json: { fingerprint: a.body.fingerprint },
      }),
      get: await asAdmin(s, 'GET', `/${id}`),
      approve: await asAdmin(s, 'POST', `/${id}/approve`, {}),
      logs: await asAdmin(s, 'GET', `/${id}/activity_logs`),
    };
    for (const r of Object.values(replies)) expectAidError(r, 404, 'not_found');
  });
});

describe('admin create, update, resolve', () => {
  it('T2 creates an active registration bound to the AMP agent with that key', async () => {
    const carol = await register(t.api, 'carol', 'acme');
    const r = await asAdmin(s, 'POST', '', {
      agent_registration: {
        name: 'carol',
        address: carol.address,
        fingerprint: carol.body.fingerprint,
        public_key: carol.keys.publicPem,
      },
      role_id: 1,
      token_lifetime: 100,
    });
    expect(r.status).toBe(201);
    expect(r.body.data.attributes).toMatchObject({
      status: 'active',
      registration_method: 'admin_initiated',
      amp_agent_id: carol.agent_id,
      address_verified: true,
      token_lifetime: 300,
    });
    expect(
      (
        await asAdmin(s, 'POST', '', {
          agent_registration: {
            name: 'carol',
            address: carol.address,
            fingerprint: carol.body.fingerprint,
            public_key: carol.keys.publicPem,
          },
          role_id: 1,
        })
      ).body.error,
    ).toBe('already_registered');
    expect(
      (
        await asAdmin(s, 'POST', '', {
          name: 'x',
          address: carol.address,
          fingerprint: carol.body.fingerprint,
          public_key: carol.keys.publicPem,
        })
      ).body.error,
    ).toBe('validation_failed');
    const logs = await asAdmin(s, 'GET', `/${r.body.data.id}/activity_logs`, undefined, readToken);
    expect(logs.body.data[0].attributes).toMatchObject({
      event_type: 'registration_created',
      previous_status: null,
      new_status: 'active',
      new_role_id: 1,
    });
  });

  it('T8 updates name and lifetime with an audited change list; not on deleted registrations', async () => {
    const dave = await register(t.api, 'dave', 'acme');
    const created = await asAdmin(s, 'POST', '', {
      name: 'dave',
      address: dave.address,
      fingerprint: dave.body.fingerprint,
      public_key: dave.keys.publicPem,
      role_id: 1,
    });
    const id = created.body.data.id;
    const up = await asAdmin(s, 'PATCH', `/${id}`, {
      agent_registration: { name: 'dave the second', token_lifetime: 999_999 },
    });
    expect(up.body.data.attributes).toMatchObject({ name: 'dave the second', token_lifetime: 86400, status: 'active' });
    const logs = await asAdmin(s, 'GET', `/${id}/activity_logs?event_type=registration_updated`, undefined, readToken);
    expect(logs.body.data[0].attributes.metadata.changes).toEqual({
      name: { from: 'dave', to: 'dave the second' },
      token_lifetime: { from: 3600, to: 86400 },
    });
    await asAdmin(s, 'DELETE', `/${id}`);
    expect((await asAdmin(s, 'PUT', `/${id}`, { name: 'z' })).body.error).toBe('invalid_transition');
  });

  it('resolves a pending request by user code, audited; unknown codes are 404', async () => {
    const erin = await register(t.api, 'erin', 'acme');
    const req = await request(erin);
    const r = await asAdmin(
      s,
      'GET',
      `/resolve?code=${encodeURIComponent(req.body.user_code.toLowerCase())}`,
      undefined,
      readToken,
    );
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({
      data: { id: req.body.data.id, attributes: { status: 'pending' } },
      company_url_id: 'acme',
      company_name: 'acme',
    });
    expect((await asAdmin(s, 'GET', '/resolve?code=AAAA-AAAA', undefined, readToken)).status).toBe(404);
    const logs = await asAdmin(
      s,
      'GET',
      `/${req.body.data.id}/activity_logs?event_type=authorization_code_resolved`,
      undefined,
      readToken,
    );
    expect(logs.body.meta.total_count).toBe(1);
  });

  it('refuses a second live registration for the same address (§3)', async () => {
    const body = (pem: string, fp: string) => ({
      name: 'dup',
      address: 'dup@acme.aimaestro.local',
      public_key: pem,
      fingerprint: fp,
      role_id: 1,
    });
    const k1 = newKeypair();
    const k2 = newKeypair();
    const fp = (k: typeof k1) => fingerprintOf(k.publicKey);
    expect((await asAdmin(s, 'POST', '', body(k1.publicPem, fp(k1)))).status).toBe(201);
    const second = await asAdmin(s, 'POST', '', body(k2.publicPem, fp(k2)));
    expect(second.status).toBe(422);
    expect(second.body).toMatchObject({
      error: 'already_registered',
      error_description: 'Address has already been registered',
    });
  });
});
