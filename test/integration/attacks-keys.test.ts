// Attack table, keys and accounts (spec §4, §4.3, §6, §7, §17.1, §20, §23 item 3): one test per
// row, each asserting the exact refusal AND that nothing changed — the victim's key still works,
// GET agents/me is the same, the sockets that must stay open do. Message rows: attacks.test.ts.

import { createHash, sign as cryptoSign, type KeyObject } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  call,
  newKeypair,
  register,
  signMessage,
  startTestServer,
  type Reply,
  type TestServer,
} from '../helpers/server.js';
import { UpgradeRefused, closeAllWs, connectWs, openWs, type WsClient } from '../helpers/ws.js';

const DOMAIN = 'aimaestro.local';
const DAY_MS = 86_400_000;
const KEY_RE = /^amp_(live|test)_sk_[0-9a-f]{64}$/;
const ISO_MS_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
let srv: TestServer;
const servers: TestServer[] = [];
let seq = 0;
const agent = (who: string, tenant = 'acme', extra: Record<string, unknown> = {}) =>
  register(srv.api, `${who}-${++seq}`, tenant, extra);

beforeAll(async () => {
  srv = await startTestServer();
});
afterAll(async () => {
  await closeAllWs();
  await Promise.all([srv, ...servers].filter(Boolean).map((s) => s.close()));
});

async function start(opts: Parameters<typeof startTestServer>[0]): Promise<TestServer> {
  const s = await startTestServer(opts);
  servers.push(s);
  return s;
}

/** Open and answering: a ping gets its pong. */
async function alive(c: WsClient, rid: string): Promise<void> {
  c.sendText({ type: 'ping', request_id: rid });
  expect((await c.nextType('pong', rid)).type).toBe('pong');
  expect(c.frames.closeInfo).toBeUndefined();
}

function expectError(r: Reply, status: number, error: string, field?: string): void {
  expect({ status: r.status, error: r.body?.error }, JSON.stringify(r.body)).toEqual({ status, error });
  expect(typeof r.body.message).toBe('string');
  if (field !== undefined) expect(r.body.field).toBe(field);
}

const me = (key: string, api = srv.api) => call('GET', `${api}/agents/me`, { key });
/** GET agents/me status for a key: 200 while valid, 401 once not. */
const keyStatus = async (key: string) => (await me(key)).status;

function registerBody(name: string, tenant: string, publicPem: string, extra: Record<string, unknown> = {}) {
  return { name, tenant, public_key: publicPem, key_algorithm: 'Ed25519', ...extra };
}

/** §4.3 proof: Ed25519 over `amp-register\n{timestamp}\n{address}`. */
function recoveryProof(address: string, privateKey: KeyObject) {
  const timestamp = Math.floor(Date.now() / 1000);
  return {
    timestamp,
    signature: cryptoSign(null, Buffer.from(`amp-register\n${timestamp}\n${address}`), privateKey).toString('base64'),
  };
}

const fingerprintOf = (pk: KeyObject) =>
  'SHA256:' +
  createHash('sha256')
    .update(pk.export({ type: 'spki', format: 'der' }))
    .digest('base64');

describe('API keys', () => {
  it('revoked API key → 401 on REST; its socket closes 4003 key_revoked; other sessions and the Ed25519 key survive', async () => {
    const [alice, bob] = await Promise.all([agent('alice'), agent('bob')]);
    const byKey = await connectWs(srv.server.wsUrl, alice.api_key);
    const bySig = await connectWs(srv.server.wsUrl, { signedBy: alice });
    const bobWs = await connectWs(srv.server.wsUrl, bob.api_key);
    const before = Date.now();
    const rev = await call('DELETE', `${srv.api}/auth/revoke-key`, { key: alice.api_key });
    expect(rev.status).toBe(200);
    expect(rev.body).toEqual({ revoked: true, revoked_at: expect.stringMatching(ISO_MS_RE) });
    expect(Date.parse(rev.body.revoked_at)).toBeGreaterThanOrEqual(before - 1000);
    expect(await byKey.closed()).toEqual({ code: 4003, reason: 'key_revoked' });
    expectError(await me(alice.api_key), 401, 'unauthorized');
    expectError(
      await call('POST', `${srv.api}/route`, {
        key: alice.api_key,
        json: { to: bob.address, subject: 's', payload: { type: 'notification', message: 'm' } },
      }),
      401,
      'unauthorized',
    );
    expectError(await call('DELETE', `${srv.api}/auth/revoke-key`, { key: alice.api_key }), 401, 'unauthorized');
    const upgrade = await openWs(srv.server.wsUrl, { headers: { Authorization: `Bearer ${alice.api_key}` } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(upgrade).toBeInstanceOf(UpgradeRefused);
    expect((upgrade as UpgradeRefused).status).toBe(401);
    // Not closed: the signed session (not opened with an API key) and another agent's session.
    await alive(bySig, 's1');
    await alive(bobWs, 'b1');
    expect(await keyStatus(bob.api_key)).toBe(200);
    // The Ed25519 key stays valid: key recovery (§4.3) gives a fresh key to the same agent.
    const rec = await call('POST', `${srv.api}/register`, {
      json: registerBody(alice.name, 'acme', alice.keys.publicPem, {
        proof: recoveryProof(alice.address, alice.keys.privateKey),
      }),
    });
    expect(rec.status).toBe(200);
    expect({ agent_id: rec.body.agent_id, address: rec.body.address }).toEqual({
      agent_id: alice.agent_id,
      address: alice.address,
    });
    expect(await keyStatus(rec.body.api_key)).toBe(200);
    expect(await keyStatus(alice.api_key)).toBe(401);
  });

  it('rotate-key → 24 h grace; rotating from the grace key → 403 forbidden; a second rotation revokes the grace key (≤ 2 valid keys)', async () => {
    const alice = await agent('alice');
    const k1 = alice.api_key;
    const k1Ws = await connectWs(srv.server.wsUrl, k1);
    const t0 = Date.now();
    const r1 = await call('POST', `${srv.api}/auth/rotate-key`, { key: k1 });
    const t1 = Date.now();
    expect(r1.status).toBe(200);
    expect(r1.body).toEqual({
      api_key: expect.stringMatching(KEY_RE),
      expires_at: null,
      previous_key_valid_until: expect.stringMatching(ISO_MS_RE),
    });
    const until = Date.parse(r1.body.previous_key_valid_until);
    expect(until).toBeGreaterThanOrEqual(t0 + DAY_MS - 1);
    expect(until).toBeLessThanOrEqual(t1 + DAY_MS + 1);
    const k2 = r1.body.api_key as string;
    expect(k2).not.toBe(k1);
    expect([await keyStatus(k1), await keyStatus(k2)]).toEqual([200, 200]);
    await alive(k1Ws, 'g1'); // a grace key's session stays open
    const k2Ws = await connectWs(srv.server.wsUrl, k2);

    const fromGrace = await call('POST', `${srv.api}/auth/rotate-key`, { key: k1 });
    expectError(fromGrace, 403, 'forbidden');
    expect(fromGrace.body.api_key).toBeUndefined();
    expect([await keyStatus(k1), await keyStatus(k2)]).toEqual([200, 200]);

    const r2 = await call('POST', `${srv.api}/auth/rotate-key`, { key: k2 });
    expect(r2.status).toBe(200);
    expect(r2.body).toEqual({
      api_key: expect.stringMatching(KEY_RE),
      expires_at: null,
      previous_key_valid_until: expect.stringMatching(ISO_MS_RE),
    });
    const k3 = r2.body.api_key as string;
    expect([await keyStatus(k1), await keyStatus(k2), await keyStatus(k3)]).toEqual([401, 200, 200]);
    expect(await k1Ws.closed()).toEqual({ code: 4003, reason: 'key_revoked' });
    await alive(k2Ws, 'g2');
    expectError(await call('POST', `${srv.api}/auth/rotate-key`, { key: k1 }), 401, 'unauthorized');
    expect((await me(k3)).body.agent_id).toBe(alice.agent_id);
  });
});

describe('registration', () => {
  it('re-registering a taken name with the same public key but no proof → 409 name_taken; the existing key still works', async () => {
    const alice = await agent('alice', 'acme', { alias: 'Alice' });
    const before = (await me(alice.api_key)).body;
    const attempts = [
      registerBody(alice.name, 'acme', alice.keys.publicPem),
      registerBody(alice.name.toUpperCase(), 'ACME', alice.keys.publicPem),
      registerBody(alice.name, 'acme', newKeypair().publicPem),
    ];
    for (const json of attempts) {
      const r = await call('POST', `${srv.api}/register`, { json });
      expectError(r, 409, 'name_taken', 'name');
      expect(r.body.message).toBe(`Agent name '${alice.name}' is already registered in tenant 'acme'`);
      expect(r.body.api_key).toBeUndefined();
      expect(r.body.suggestions.length).toBeGreaterThanOrEqual(1);
      expect(r.body.suggestions.length).toBeLessThanOrEqual(3);
      expect(r.body.details.suggestions).toEqual(r.body.suggestions);
    }
    // A proof signed by another key is refused too (§4.3), and revokes nothing.
    const forged = await call('POST', `${srv.api}/register`, {
      json: registerBody(alice.name, 'acme', alice.keys.publicPem, {
        proof: recoveryProof(alice.address, newKeypair().privateKey),
      }),
    });
    expectError(forged, 403, 'signature_invalid');
    const after = await me(alice.api_key);
    expect(after.status).toBe(200);
    expect(after.body).toEqual(before);
  });

  it('registration flood from one IP (public: 10/min, loopback not exempt) → 11th 429; local profile exempts loopback', async () => {
    const pub = await start({ rateLimitProfile: 'public' });
    const first: Reply[] = [];
    for (let i = 1; i <= 10; i++)
      first.push(
        await call('POST', `${pub.api}/register`, { json: registerBody(`flood-${i}`, 'acme', newKeypair().publicPem) }),
      );
    expect(first.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(first.map((r) => r.headers.get('x-ratelimit-limit'))).toEqual(Array(10).fill('10'));
    const r = await call('POST', `${pub.api}/register`, {
      json: registerBody('flood-11', 'acme', newKeypair().publicPem),
    });
    expectError(r, 429, 'rate_limited');
    const retry = Number(r.headers.get('retry-after'));
    expect(Number.isInteger(retry) && retry >= 1).toBe(true);
    expect(r.body.retry_after).toBe(retry);
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(r.headers.get('x-ratelimit-limit')).toBe('10');
    expect(Number(r.headers.get('x-ratelimit-reset'))).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 1);
    const resolve = await call('GET', `${pub.api}/agents/resolve/flood-11@acme.${DOMAIN}`, {
      key: first[0]!.body.api_key,
    });
    expectError(resolve, 404, 'not_found');

    // Local profile with the same per-IP bucket squeezed to 3/min: loopback is exempt, so 30 pass.
    const local = await start({ rateLimitOverrides: ['register=3/min'] });
    const burst = await Promise.all(
      Array.from({ length: 30 }, (_, i) =>
        call('POST', `${local.api}/register`, { json: registerBody(`swarm-${i}`, 'acme', newKeypair().publicPem) }),
      ),
    );
    expect(burst.map((x) => x.status)).toEqual(Array(30).fill(201));
    // Control: the override bites where loopback is not exempt.
    const strict = await start({ rateLimitProfile: 'public', rateLimitOverrides: ['register=3/min'] });
    const s: number[] = [];
    for (let i = 0; i < 4; i++)
      s.push(
        (await call('POST', `${strict.api}/register`, { json: registerBody(`s-${i}`, 'acme', newKeypair().publicPem) }))
          .status,
      );
    expect(s).toEqual([201, 201, 201, 429]);
  });

  it('a deregistered name is held (409 name_taken), its key is revoked (403 key_revoked), its API key → 401', async () => {
    const [alice, bob] = await Promise.all([agent('alice'), agent('bob')]);
    const ws = await connectWs(srv.server.wsUrl, alice.api_key);
    const d = await call('DELETE', `${srv.api}/agents/me`, { key: alice.api_key });
    expect(d.status).toBe(200);
    expect(d.body).toEqual({
      deregistered: true,
      address: alice.address,
      deregistered_at: expect.stringMatching(ISO_MS_RE),
    });
    expect(await ws.closed()).toEqual({ code: 4003, reason: 'agent_deregistered' });
    expectError(await me(alice.api_key), 401, 'unauthorized');
    const sameName = await call('POST', `${srv.api}/register`, {
      json: registerBody(alice.name, 'acme', newKeypair().publicPem),
    });
    expectError(sameName, 409, 'name_taken', 'name');
    const oldKey = await call('POST', `${srv.api}/register`, {
      json: registerBody(`fresh-${++seq}`, 'acme', alice.keys.publicPem),
    });
    expectError(oldKey, 403, 'key_revoked');
    const recovery = await call('POST', `${srv.api}/register`, {
      json: registerBody(alice.name, 'acme', alice.keys.publicPem, {
        proof: recoveryProof(alice.address, alice.keys.privateKey),
      }),
    });
    expect(recovery.body.api_key).toBeUndefined();
    expect([403, 409]).toContain(recovery.status);
    // Nothing came back: the address is gone for senders and resolvers.
    expectError(
      await call('GET', `${srv.api}/agents/resolve/${alice.address}`, { key: bob.api_key }),
      404,
      'not_found',
    );
    expectError(
      await call('POST', `${srv.api}/route`, {
        key: bob.api_key,
        json: { to: alice.address, subject: 's', payload: { type: 'notification', message: 'm' } },
      }),
      404,
      'not_found',
      'to',
    );
    expect(await keyStatus(bob.api_key)).toBe(200);
  });

  it("registration mode 'key' → 403 tenant_access_denied without, with a wrong, or with another tenant's key; 201 with the right one", async () => {
    const SECRET = '0123456789abcdef-secret';
    const s = await start({ registrationMode: 'key', registrationKeys: [`acme:${SECRET}`] });
    const kp = newKeypair();
    const reg = (tenant: string, headers?: Record<string, string>) =>
      call('POST', `${s.api}/register`, { json: registerBody('keyed', tenant, kp.publicPem), headers });
    expectError(await reg('acme'), 403, 'tenant_access_denied');
    expectError(await reg('acme', { 'X-Registration-Key': 'wrong' }), 403, 'tenant_access_denied');
    expectError(await reg('acme', { 'X-Registration-Key': SECRET.slice(0, -1) + 'T' }), 403, 'tenant_access_denied');
    expectError(await reg('acme', { 'X-Registration-Key': `${SECRET}x` }), 403, 'tenant_access_denied');
    expectError(await reg('globex', { 'X-Registration-Key': SECRET }), 403, 'tenant_access_denied');
    // None of the refusals created or reserved anything: the same name and key now register.
    const ok = await reg('acme', { 'X-Registration-Key': SECRET });
    expect(ok.status).toBe(201);
    expect(ok.body.address).toBe(`keyed@acme.${DOMAIN}`);
    expectError(
      await call('GET', `${s.api}/agents/resolve/keyed@globex.${DOMAIN}`, { key: ok.body.api_key }),
      404,
      'not_found',
    );
  });
});

describe('identity changes', () => {
  it('keypair rotation with a bad proof → 403 signature_invalid; the registered fingerprint is unchanged', async () => {
    const [alice, bob] = await Promise.all([agent('alice'), agent('bob')]);
    const next = newKeypair();
    const stranger = newKeypair();
    const before = (await me(alice.api_key)).body;
    const sig = (data: string | Buffer, k: KeyObject) =>
      cryptoSign(null, typeof data === 'string' ? Buffer.from(data) : data, k).toString('base64');
    const bad: Array<[string, string]> = [
      ['signed by a stranger', sig(next.publicPem, stranger.privateKey)],
      ['self-signed by the new key', sig(next.publicPem, next.privateKey)],
      ['current key over other bytes', sig(stranger.publicPem, alice.keys.privateKey)],
      ['current key over the PEM plus a byte', sig(next.publicPem + '\n', alice.keys.privateKey)],
    ];
    for (const [what, proof] of bad) {
      const r = await call('POST', `${srv.api}/auth/rotate-keys`, {
        key: alice.api_key,
        json: { new_public_key: next.publicPem, key_algorithm: 'Ed25519', proof },
      });
      expectError(r, 403, 'signature_invalid');
      expect(r.body.rotated, what).toBeUndefined();
    }
    expect((await me(alice.api_key)).body).toEqual(before);
    expect(before.fingerprint).toBe(fingerprintOf(alice.keys.publicKey));
    // The old key still signs messages that verify; the candidate key does not.
    const m = { from: alice.address, to: bob.address, subject: 's', payload: { type: 'notification', message: 'm' } };
    expect(
      (
        await call('POST', `${srv.api}/route`, {
          key: alice.api_key,
          json: { ...m, signature: signMessage(alice.keys.privateKey, m) },
        })
      ).status,
    ).toBe(200);
    expectError(
      await call('POST', `${srv.api}/route`, {
        key: alice.api_key,
        json: { ...m, signature: signMessage(next.privateKey, m) },
      }),
      403,
      'signature_invalid',
    );
    // Control: the right proof rotates.
    const good = await call('POST', `${srv.api}/auth/rotate-keys`, {
      key: alice.api_key,
      json: {
        new_public_key: next.publicPem,
        key_algorithm: 'Ed25519',
        proof: sig(next.publicPem, alice.keys.privateKey),
      },
    });
    expect({ status: good.status, body: good.body }).toEqual({
      status: 200,
      body: { rotated: true, fingerprint: fingerprintOf(next.publicKey) },
    });
  });

  it('PATCH agents/me changing name / tenant / scope / address / public_key / key_algorithm → 400 invalid_field naming it; unchanged', async () => {
    const alice = await agent('alice', 'acme', { alias: 'Alice' });
    const before = (await me(alice.api_key)).body;
    const attempts: Array<[string, unknown]> = [
      ['name', 'mallory'],
      ['tenant', 'globex'],
      ['scope', { platform: 'github', repo: 'evil' }],
      ['address', `mallory@globex.${DOMAIN}`],
      ['public_key', newKeypair().publicPem],
      ['key_algorithm', 'RSA'],
    ];
    for (const [field, value] of attempts) {
      expectError(
        await call('PATCH', `${srv.api}/agents/me`, { key: alice.api_key, json: { [field]: value } }),
        400,
        'invalid_field',
        field,
      );
      // Mixed with a legal change: refused as a whole, the alias is not applied either.
      expectError(
        await call('PATCH', `${srv.api}/agents/me`, { key: alice.api_key, json: { alias: 'Changed', [field]: value } }),
        400,
        'invalid_field',
        field,
      );
    }
    expect((await me(alice.api_key)).body).toEqual(before);
    const resolved = await call('GET', `${srv.api}/agents/resolve/${alice.address}`, { key: alice.api_key });
    expect({ address: resolved.body.address, public_key: resolved.body.public_key.trim() }).toEqual({
      address: alice.address,
      public_key: alice.keys.publicPem.trim(),
    });
    // Control: a legal field alone is applied.
    const ok = await call('PATCH', `${srv.api}/agents/me`, { key: alice.api_key, json: { alias: 'Changed' } });
    expect({ status: ok.status, body: ok.body }).toEqual({
      status: 200,
      body: { updated: true, address: alice.address },
    });
    expect((await me(alice.api_key)).body).toEqual({ ...before, alias: 'Changed' });
  });
});
