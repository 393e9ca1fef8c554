// Registration (spec §4), metadata kept exactly, key recovery (§4.3, one proof gives one key even
// when sent concurrently), agents/me (§7.1), API-key auth forms (§1).
// Runs on both stores (the LMDB default and cluster mode on NATS JetStream): test/helpers/store-matrix.ts.

import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, newKeypair, register, startTestServer, type TestServer } from '../helpers/server.js';
import { STORES, storeOptions, useStoreMatrix } from '../helpers/store-matrix.js';

useStoreMatrix();

describe.each(STORES)('%s store', (store) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer(await storeOptions(store));
  });
  afterAll(() => t.close());

  describe('register', () => {
    it('answers 201 with the documented body', async () => {
      const keys = newKeypair();
      const r = await call('POST', `${t.api}/register`, {
        json: {
          tenant: 'Local',
          name: 'My-Agent',
          public_key: keys.publicPem,
          key_algorithm: 'ed25519',
          alias: 'Mine',
        },
      });
      expect(r.status).toBe(201);
      expect(r.body).toMatchObject({
        address: 'my-agent@local.aimaestro.local',
        short_address: 'my-agent@local.aimaestro.local',
        local_name: 'my-agent',
        tenant_id: 'local',
        tenant: 'local',
        provider: { name: 'aimaestro.local', endpoint: `${t.url}/api/v1`, route_url: `${t.url}/api/v1/route` },
      });
      expect(r.body.agent_id).toMatch(/^agt_[0-9a-f]{24}$/);
      expect(r.body.api_key).toMatch(/^amp_live_sk_[0-9a-f]{64}$/);
      expect(r.body.registered_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      // Canonical fingerprint: SHA-256 over the SPKI DER.
      const der = keys.publicKey.export({ format: 'der', type: 'spki' });
      const { createHash } = await import('node:crypto');
      expect(r.body.fingerprint).toBe('SHA256:' + createHash('sha256').update(der).digest('base64'));
    });

    it('uses the default tenant and builds scoped addresses', async () => {
      const a = await register(t.api, 'plain', undefined as unknown as string);
      expect(a.address).toBe('plain@default.aimaestro.local');
      const s = await register(t.api, 'scoped', 'acme', { scope: { platform: 'github', repo: 'agents-web' } });
      expect(s.body.address).toBe('scoped@agents-web.github.acme.aimaestro.local');
      expect(s.body.short_address).toBe('scoped@acme.aimaestro.local');
    });

    it('never shows the API key again: agents/me has no key', async () => {
      const a = await register(t.api, 'self-view', 'acme');
      const me = await call('GET', `${t.api}/agents/me`, { key: a.api_key });
      expect(me.status).toBe(200);
      expect(me.headers.get('cache-control')).toBe('no-store');
      expect(me.body).toMatchObject({
        agent_id: a.agent_id,
        address: 'self-view@acme.aimaestro.local',
        tenant: 'acme',
        status: 'active',
        key_algorithm: 'Ed25519',
        online: false,
        delivery: { webhook_url: null, webhook_secret_set: false, prefer_websocket: true },
      });
      expect(JSON.stringify(me.body)).not.toContain(a.api_key);
    });

    it('accepts the key as Bearer (any case), bare, or X-API-Key', async () => {
      const a = await register(t.api, 'auth-forms', 'acme');
      const forms: Record<string, string>[] = [
        { Authorization: `Bearer ${a.api_key}` },
        { Authorization: `bearer ${a.api_key}` },
        { Authorization: a.api_key },
        { 'X-API-Key': a.api_key },
      ];
      for (const headers of forms) {
        const r = await call('GET', `${t.api}/agents/me`, { headers });
        expect(r.status).toBe(200);
        expect(r.body.agent_id).toBe(a.agent_id);
      }
    });

    it("refuses a taken name with free suggestions, and another agent's key", async () => {
      const a = await register(t.api, 'taken', 'acme');
      const dup = await call('POST', `${t.api}/register`, {
        json: { tenant: 'acme', name: 'taken', public_key: newKeypair().publicPem },
      });
      expect(dup.status).toBe(409);
      expect(dup.body.message).toBe("Agent name 'taken' is already registered in tenant 'acme'");
      expect(dup.body.suggestions).toHaveLength(3);
      expect(dup.body.suggestions[0]).toBe('taken-2');
      expect(dup.body.details.suggestions).toEqual(dup.body.suggestions);
      const sameKey = await call('POST', `${t.api}/register`, {
        json: { tenant: 'acme', name: 'other', public_key: a.keys.publicPem },
      });
      expect(sameKey.status).toBe(409);
      expect(sameKey.body.error).toBe('key_already_registered');
      expect(sameKey.body.details.fingerprint).toBe(a.body.fingerprint);
      expect(JSON.stringify(sameKey.body)).not.toContain('taken');
    });

    it('lets only one of two concurrent registrations of a name win', async () => {
      const results = await Promise.all(
        [0, 1, 2, 3].map(() =>
          call('POST', `${t.api}/register`, {
            json: { tenant: 'race', name: 'racer', public_key: newKeypair().publicPem },
          }),
        ),
      );
      expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409]);
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

  describe('key recovery (signed re-registration)', () => {
    const proof = (keys: ReturnType<typeof newKeypair>, address: string, ts: number) =>
      sign(null, Buffer.from(`amp-register\n${ts}\n${address}`), keys.privateKey).toString('base64');

    it('re-issues the API key with a valid proof and revokes the old one', async () => {
      const a = await register(t.api, 'recover-me', 'acme');
      const ts = Math.floor(Date.now() / 1000);
      const body = {
        tenant: 'acme',
        name: 'recover-me',
        public_key: a.keys.publicPem,
        proof: { timestamp: ts, signature: proof(a.keys, a.address, ts) },
      };
      const r = await call('POST', `${t.api}/register`, { json: body });
      expect(r.status).toBe(200);
      expect(r.body.agent_id).toBe(a.agent_id);
      expect(r.body.registered_at).toBe(a.body.registered_at);
      expect(r.body.api_key).not.toBe(a.api_key);
      expect((await call('GET', `${t.api}/agents/me`, { key: a.api_key })).status).toBe(401);
      expect((await call('GET', `${t.api}/agents/me`, { key: r.body.api_key })).status).toBe(200);
      // The same proof is accepted once only.
      const replay = await call('POST', `${t.api}/register`, { json: body });
      expect(replay.status).toBe(403);
      expect(replay.body.error).toBe('signature_invalid');
    });

    it('refuses the same key without proof, a stale proof, and a proof by another key', async () => {
      const a = await register(t.api, 'no-proof', 'acme');
      const base = { tenant: 'acme', name: 'no-proof', public_key: a.keys.publicPem };
      const none = await call('POST', `${t.api}/register`, { json: base });
      expect(none.status).toBe(409);
      expect(none.body.error).toBe('name_taken');
      const old = Math.floor(Date.now() / 1000) - 301;
      const stale = await call('POST', `${t.api}/register`, {
        json: { ...base, proof: { timestamp: old, signature: proof(a.keys, a.address, old) } },
      });
      expect(stale.status).toBe(403);
      expect(stale.body.error).toBe('signature_invalid');
      const now = Math.floor(Date.now() / 1000);
      const wrong = await call('POST', `${t.api}/register`, {
        json: { ...base, proof: { timestamp: String(now), signature: proof(newKeypair(), a.address, now) } },
      });
      expect(wrong.status).toBe(403);
      // The original key still works after every refusal.
      expect((await call('GET', `${t.api}/agents/me`, { key: a.api_key })).status).toBe(200);
    });
  });

  describe('registration policy', () => {
    it('refuses tenants outside the allow-list with 403 tenant_access_denied', async () => {
      const t2 = await startTestServer({
        ...(await storeOptions(store)),
        registrationMode: 'allowlist',
        registrationTenants: ['acme'],
      });
      try {
        const ok = await register(t2.api, 'inside', 'acme');
        expect(ok.address).toBe('inside@acme.aimaestro.local');
        const r = await call('POST', `${t2.api}/register`, {
          json: { tenant: 'other', name: 'outside', public_key: newKeypair().publicPem },
        });
        expect(r.status).toBe(403);
        expect(r.body.error).toBe('tenant_access_denied');
      } finally {
        await t2.close();
      }
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
});
