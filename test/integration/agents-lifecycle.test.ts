// Agent lifecycle, positive paths with exact shapes: the Agent Card (§7.2), PATCH/GET agents/me
// (§7.1), listing (§7.4), resolve (§7.5), API-key rotation and revocation (§6) with key recovery
// (§4.3), keypair rotation (§23 item 3), deregistration (§7.3), idempotency (§12.5) and the
// rate-limit headers and info document (§20, §3).

import { createHash, createPublicKey, randomUUID, sign } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY_RE } from '../../proto/index.js';
import { AmpClient, type AmpSocket, type SocketOptions } from '../../src/client/index.js';
import { Inbox, waitFor } from '../helpers/events.js';
import { sdkAgent } from '../helpers/sdk.js';
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

const ISO_MS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const DAY_MS = 24 * 3600 * 1000;

let t: TestServer;
const sockets: AmpSocket[] = [];

beforeAll(async () => {
  t = await startTestServer();
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.close();
});
afterAll(() => t.close());

const spki = (pem: string) => createPublicKey(pem).export({ type: 'spki', format: 'der' });
const fp = (pem: string) => 'SHA256:' + createHash('sha256').update(spki(pem)).digest('base64');
const fpRaw = (pem: string) => 'SHA256:' + createHash('sha256').update(spki(pem).subarray(12)).digest('base64');
/** The stored canonical PEM (§4): re-exported SPKI, no trailing newline. */
const canonicalPem = (pem: string) => (createPublicKey(pem).export({ type: 'spki', format: 'pem' }) as string).trim();
const note = (to: string, subject: string) => ({ to, subject, payload: { type: 'notification', message: subject } });
const pendingIds = async (key: string, api = t.api) => {
  const r = await call('GET', `${api}/messages/pending?limit=100`, { key });
  expect(r.status).toBe(200);
  return (r.body.messages as Array<{ id: string }>).map((m) => m.id);
};

/** An SDK socket (no reconnect) that has received `connected`, with an inbox recording pushes. */
async function open(apiKey: string, opts: Omit<SocketOptions, 'url'> = {}, baseUrl = t.url) {
  const s = new AmpClient({ baseUrl, apiKey }).connect({ reconnect: false, ...opts });
  sockets.push(s);
  const inbox = new Inbox(s);
  await s.ready();
  return { s, inbox };
}

describe('agent card and self (§7.1, §7.2)', () => {
  it('GET agents/me/card: unsigned, provider-asserted, id = client UUID, expires 182 days after issue', async () => {
    const uuid = randomUUID();
    const a = await register(t.api, 'card-a', 'cards', {
      agent_id: uuid,
      alias: 'Card Agent',
      capabilities: ['threading', 'x:y'],
    });
    const before = Date.now();
    const r = await call('GET', `${t.api}/agents/me/card`, { key: a.api_key });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      amp_agent_card: '1.0',
      id: uuid,
      address: 'card-a@cards.aimaestro.local',
      alias: 'Card Agent',
      public_key: canonicalPem(a.keys.publicPem),
      key_algorithm: 'Ed25519',
      fingerprint: fp(a.keys.publicPem),
      provider_endpoint: t.api,
      capabilities: ['threading', 'x:y'],
      issued_at: expect.stringMatching(ISO_MS),
      expires_at: expect.stringMatching(ISO_MS),
      signature: null,
      provider_asserted: true,
    });
    const issued = Date.parse(r.body.issued_at);
    expect(issued).toBeGreaterThanOrEqual(before - 1);
    expect(issued).toBeLessThanOrEqual(Date.now());
    expect(Date.parse(r.body.expires_at) - issued).toBe(182 * DAY_MS);

    // Without a client UUID the card id is the server's agent_id; no alias → null.
    const b = await register(t.api, 'card-b', 'cards');
    const rb = await call('GET', `${t.api}/agents/me/card`, { key: b.api_key });
    expect(rb.body).toMatchObject({ id: b.agent_id, alias: null, capabilities: [] });
  });

  it('PATCH agents/me: alias, prefer_websocket, metadata and capabilities (replaced); GET reflects them', async () => {
    const a = await register(t.api, 'patch-a', 'cards', { metadata: { team: 'x', keep: 1 }, capabilities: ['old'] });
    const p1 = await call('PATCH', `${t.api}/agents/me`, {
      key: a.api_key,
      json: {
        alias: 'Patched',
        delivery: { prefer_websocket: false },
        metadata: { role: 'worker' },
        capabilities: ['a', 'b'],
      },
    });
    expect(p1.status).toBe(200);
    expect(p1.body).toEqual({ updated: true, address: a.address });
    const me1 = await call('GET', `${t.api}/agents/me`, { key: a.api_key });
    expect(me1.body).toEqual({
      agent_id: a.agent_id,
      address: a.address,
      short_address: a.address,
      tenant: 'cards',
      alias: 'Patched',
      status: 'active',
      delivery: { webhook_url: null, webhook_secret_set: false, prefer_websocket: false },
      key_algorithm: 'Ed25519',
      fingerprint: fp(a.keys.publicPem),
      capabilities: ['a', 'b'],
      metadata: { role: 'worker' },
      online: false,
      registered_at: a.body.registered_at,
      last_seen_at: me1.body.last_seen_at,
    });
    // A second PATCH replaces metadata and capabilities wholesale and leaves the rest alone.
    const p2 = await call('PATCH', `${t.api}/agents/me`, {
      key: a.api_key,
      json: { metadata: { other: true }, capabilities: ['c'] },
    });
    expect(p2.body).toEqual({ updated: true, address: a.address });
    const me2 = await call('GET', `${t.api}/agents/me`, { key: a.api_key });
    expect(me2.body).toMatchObject({
      alias: 'Patched',
      metadata: { other: true },
      capabilities: ['c'],
      delivery: { prefer_websocket: false },
    });
    expect(me2.body.metadata).toEqual({ other: true });
  });
});

describe('listing (§7.4)', () => {
  it('caller tenant only, by address, cursor pages walk every agent once, search, online', async () => {
    const names = ['l-e', 'l-b', 'l-g', 'l-a', 'l-d', 'l-f', 'l-c'];
    const regs: Record<string, Registered> = {};
    for (const n of names) regs[n] = await register(t.api, n, 'lst', n === 'l-c' ? { alias: 'Zebra Herder' } : {});
    await register(t.api, 'l-a', 'lst2', { alias: 'Zebra Herder' }); // same name and alias, other tenant
    const me = regs['l-a']!;
    await open(regs['l-d']!.api_key);

    const sorted = [...names].sort().map((n) => `${n}@lst.aimaestro.local`);
    const seen: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 5; page++) {
      const r = await call('GET', `${t.api}/agents?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, {
        key: me.api_key,
      });
      expect(r.status).toBe(200);
      expect(Object.keys(r.body).sort()).toEqual(['agents', 'cursor', 'has_more', 'total']);
      expect(r.body.total).toBe(7);
      for (const a of r.body.agents) {
        expect(a).toEqual({
          address: a.address,
          alias: a.address.startsWith('l-c@') ? 'Zebra Herder' : null,
          online: a.address.startsWith('l-d@'),
        });
        seen.push(a.address);
      }
      sizes.push(r.body.agents.length);
      cursor = r.body.cursor;
      if (!r.body.has_more) {
        expect(cursor).toBeNull();
        break;
      }
      expect(typeof cursor).toBe('string');
    }
    expect(sizes).toEqual([3, 3, 1]);
    expect(seen).toEqual(sorted);

    const search = async (q: string) =>
      (await call('GET', `${t.api}/agents?search=${encodeURIComponent(q)}`, { key: me.api_key })).body;
    expect(await search('ZEBRA')).toEqual({
      agents: [{ address: 'l-c@lst.aimaestro.local', alias: 'Zebra Herder', online: false }],
      total: 1,
      cursor: null,
      has_more: false,
    });
    expect((await search('L-B')).agents.map((a: { address: string }) => a.address)).toEqual([
      'l-b@lst.aimaestro.local',
    ]);
    expect((await search('@LST.AIMAESTRO')).total).toBe(7);
    expect((await search('nothing-like-this')).total).toBe(0);
    expect((await call('GET', `${t.api}/agents?tenant=lst`, { key: me.api_key })).body.total).toBe(7);
    const other = await call('GET', `${t.api}/agents?tenant=lst2`, { key: me.api_key });
    expect(other.status).toBe(403);
    expect(other.body.error).toBe('forbidden');
  });
});

describe('resolve (§7.5)', () => {
  it('full, short and bare-name forms; any tenant resolves a full address; legacy path; unknown → 404', async () => {
    const target = await register(t.api, 'tgt', 'rsv', {
      scope: { platform: 'github', repo: 'web' },
      alias: 'Resolver',
      capabilities: ['c1'],
    });
    const caller = await register(t.api, 'caller', 'rsv');
    const outsider = await register(t.api, 'outsider', 'rsv-other');
    const pem = target.keys.publicPem;
    const expected = {
      address: 'tgt@web.github.rsv.aimaestro.local',
      short_address: 'tgt@rsv.aimaestro.local',
      alias: 'Resolver',
      public_key: canonicalPem(pem),
      key_algorithm: 'Ed25519',
      fingerprint: fp(pem),
      fingerprint_raw: fpRaw(pem),
      online: false,
      capabilities: ['c1'],
    };
    expect(target.address).toBe(expected.address);
    const resolve = (who: Registered, addr: string) =>
      call('GET', `${t.api}/agents/resolve/${encodeURIComponent(addr)}`, { key: who.api_key });
    for (const form of [expected.address, expected.short_address, 'tgt', 'TGT@RSV.AIMAESTRO.LOCAL']) {
      const r = await resolve(caller, form);
      expect(r.status, form).toBe(200);
      expect(r.body, form).toEqual(expected);
    }
    // Another tenant's agent resolves the full (and short) address; its bare name means its own tenant.
    expect((await resolve(outsider, expected.address)).body).toEqual(expected);
    expect((await resolve(outsider, expected.short_address)).body).toEqual(expected);
    const bare = await resolve(outsider, 'tgt');
    expect(bare.status).toBe(404);
    expect(bare.body.error).toBe('not_found');
    // Legacy GET agents/{address} with a literal '@'.
    const legacy = await call('GET', `${t.api}/agents/${expected.short_address}`, { key: outsider.api_key });
    expect(legacy.status).toBe(200);
    expect(legacy.body).toEqual(expected);
    const unknown = await resolve(caller, 'nobody@rsv.aimaestro.local');
    expect(unknown.status).toBe(404);
    expect(unknown.body.error).toBe('not_found');
    const unknownLegacy = await call('GET', `${t.api}/agents/nobody@rsv.aimaestro.local`, { key: caller.api_key });
    expect(unknownLegacy.status).toBe(404);
    expect(unknownLegacy.body.error).toBe('not_found');
    // online follows an open socket.
    await open(target.api_key);
    expect((await resolve(caller, 'tgt')).body).toEqual({ ...expected, online: true });
  });
});

describe('API keys (§6) and key recovery (§4.3)', () => {
  it('rotate-key: new key works, old key stays valid ~24 h, sockets of the old key keep receiving', async () => {
    const a = await register(t.api, 'rk-a', 'keys');
    const sender = await register(t.api, 'rk-s', 'keys');
    const { s, inbox } = await open(a.api_key);
    const before = Date.now();
    const r = await call('POST', `${t.api}/auth/rotate-key`, { key: a.api_key });
    expect(r.status).toBe(200);
    expect(Object.keys(r.body).sort()).toEqual(['api_key', 'expires_at', 'previous_key_valid_until']);
    expect(r.body.api_key).toMatch(API_KEY_RE);
    expect(r.body.api_key).not.toBe(a.api_key);
    expect(r.body.expires_at).toBeNull();
    expect(r.body.previous_key_valid_until).toMatch(ISO_MS);
    expect(Math.abs(Date.parse(r.body.previous_key_valid_until) - (before + DAY_MS))).toBeLessThanOrEqual(60_000);
    for (const key of [r.body.api_key, a.api_key]) {
      const me = await call('GET', `${t.api}/agents/me`, { key });
      expect(me.status).toBe(200);
      expect(me.body.agent_id).toBe(a.agent_id);
    }
    const sent = await route(t.api, sender, note(a.address, 'after rotation'));
    expect(sent.status).toBe(200);
    await inbox.has([sent.body.id]);
    expect(s.connected?.address).toBe(a.address);
    // Only the current key may rotate (§6): the grace key gets 403 forbidden.
    const fromGrace = await call('POST', `${t.api}/auth/rotate-key`, { key: a.api_key });
    expect(fromGrace.status).toBe(403);
    expect(fromGrace.body.error).toBe('forbidden');
  });

  it('revoke-key: every key → 401, their sessions close 4003 key_revoked; signed recovery restores access', async () => {
    const a = await register(t.api, 'rv-a', 'keys');
    const key2 = (await call('POST', `${t.api}/auth/rotate-key`, { key: a.api_key })).body.api_key as string;
    const { s } = await open(a.api_key);
    const closed = waitFor<[number, string]>(s, 'close');
    const before = Date.now();
    const r = await call('DELETE', `${t.api}/auth/revoke-key`, { key: key2 });
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ revoked: true, revoked_at: expect.stringMatching(ISO_MS) });
    expect(Date.parse(r.body.revoked_at)).toBeGreaterThanOrEqual(before - 1);
    expect(await closed).toEqual([4003, 'key_revoked']);
    for (const key of [a.api_key, key2]) {
      const me = await call('GET', `${t.api}/agents/me`, { key });
      expect(me.status).toBe(401);
      expect(me.body.error).toBe('unauthorized');
    }
    const ts = Math.floor(Date.now() / 1000);
    const signature = sign(null, Buffer.from(`amp-register\n${ts}\n${a.address}`), a.keys.privateKey).toString(
      'base64',
    );
    const rec = await call('POST', `${t.api}/register`, {
      json: { name: 'rv-a', tenant: 'keys', public_key: a.keys.publicPem, proof: { timestamp: ts, signature } },
    });
    expect(rec.status).toBe(200);
    expect(rec.body).toMatchObject({
      address: a.address,
      agent_id: a.agent_id,
      registered_at: a.body.registered_at,
      fingerprint: fp(a.keys.publicPem),
    });
    expect(rec.body.api_key).toMatch(API_KEY_RE);
    expect([a.api_key, key2]).not.toContain(rec.body.api_key);
    const me = await call('GET', `${t.api}/agents/me`, { key: rec.body.api_key });
    expect(me.status).toBe(200);
    expect(me.body.agent_id).toBe(a.agent_id);
  });

  it('key recovery closes the sockets opened with the revoked key (4003 key_revoked)', async () => {
    const a = await sdkAgent(t, 'rev-a');
    const socket = a.client.connect({ reconnect: false });
    sockets.push(socket);
    await socket.ready();
    const closed = waitFor<[number, string]>(socket, 'close');
    const ts = Math.floor(Date.now() / 1000);
    const proof = sign(null, Buffer.from(`amp-register\n${ts}\n${a.registration.address}`), a.keys.privateKey).toString(
      'base64',
    );
    const r = await fetch(`${t.url}/api/v1/register`, {
      method: 'POST',
      body: JSON.stringify({
        name: 'rev-a',
        tenant: 'acme',
        public_key: a.keys.publicPem,
        proof: { timestamp: ts, signature: proof },
      }),
    });
    expect(r.status).toBe(200);
    expect(await closed).toEqual([4003, 'key_revoked']);
  });
});

describe('keypair rotation (§23 item 3)', () => {
  const rotate = (a: Registered, newPem: string, signed: Buffer) =>
    call('POST', `${t.api}/auth/rotate-keys`, {
      key: a.api_key,
      json: {
        new_public_key: newPem,
        key_algorithm: 'Ed25519',
        proof: sign(null, signed, a.keys.privateKey).toString('base64'),
      },
    });

  it('proof over the new PEM: new fingerprint, new key signs, old key refused, signed session closed, API-key socket kept', async () => {
    const a = await register(t.api, 'kp-a', 'keys');
    const peer = await register(t.api, 'kp-peer', 'keys');
    const signedSession = await open(a.api_key, { auth: { address: a.address, privateKey: a.keys.privateKey } });
    const keySession = await open(a.api_key);
    const signedClosed = waitFor<[number, string]>(signedSession.s, 'close');
    const nk = newKeypair();
    const r = await rotate(a, nk.publicPem, Buffer.from(nk.publicPem, 'utf8'));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ rotated: true, fingerprint: fp(nk.publicPem) });
    expect(r.body.fingerprint).not.toBe(fp(a.keys.publicPem));
    expect(await signedClosed).toEqual([4003, 'key_rotated']);
    expect((await call('GET', `${t.api}/agents/me`, { key: a.api_key })).body.fingerprint).toBe(fp(nk.publicPem));

    // Messages signed with the NEW key verify.
    const m1 = note(peer.address, 'signed with the new key');
    const ok = await route(t.api, a, { ...m1, signature: signMessage(nk.privateKey, { from: a.address, ...m1 }) });
    expect(ok.status).toBe(200);
    const item = (await call('GET', `${t.api}/messages/pending?limit=100`, { key: peer.api_key })).body.messages.find(
      (m: { id: string }) => m.id === ok.body.id,
    );
    expect(item.security).toMatchObject({ trust_level: 'verified', signature_verified: true });
    expect(item.sender_public_key).toBe(spki(nk.publicPem).subarray(12).toString('hex'));
    // Signed with the OLD key: it no longer verifies against the registered key → 403
    // signature_invalid (§11 item 1, §21), not key_revoked (§11 item 3 applies to a signature that verified).
    const m2 = note(peer.address, 'signed with the old key');
    const bad = await route(t.api, a, { ...m2, signature: signMessage(a.keys.privateKey, { from: a.address, ...m2 }) });
    expect(bad.status).toBe(403);
    expect(bad.body.error).toBe('signature_invalid');

    // The API-key socket was not proven by the old key: it stays open and keeps receiving pushes.
    const sent = await route(t.api, peer, note(a.address, 'still pushed'));
    await keySession.inbox.has([sent.body.id]);
    expect(keySession.s.connected?.address).toBe(a.address);
    const resolved = await call('GET', `${t.api}/agents/resolve/${encodeURIComponent(a.address)}`, {
      key: peer.api_key,
    });
    expect(resolved.body).toMatchObject({
      public_key: canonicalPem(nk.publicPem),
      fingerprint: fp(nk.publicPem),
      fingerprint_raw: fpRaw(nk.publicPem),
    });
  });

  it('accepts a proof over the raw 32-byte key', async () => {
    const a = await register(t.api, 'kp-raw', 'keys');
    const nk = newKeypair();
    const r = await rotate(a, nk.publicPem, spki(nk.publicPem).subarray(12));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ rotated: true, fingerprint: fp(nk.publicPem) });
  });

  it('accepts a proof over the lowercase hex of the raw key', async () => {
    const a = await register(t.api, 'kp-hex', 'keys');
    const nk = newKeypair();
    const r = await rotate(a, nk.publicPem, Buffer.from(spki(nk.publicPem).subarray(12).toString('hex'), 'utf8'));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ rotated: true, fingerprint: fp(nk.publicPem) });
  });
});

describe('deregistration (§7.3)', () => {
  it('DELETE agents/me: socket closed 4003, queue gone, name free at once with hold 0, old key revoked', async () => {
    const t0 = await startTestServer({ deregistrationHoldDays: 0 });
    try {
      const a = await register(t0.api, 'gone', 'dr');
      const s = await register(t0.api, 'sender', 'dr');
      const queued = await route(t0.api, s, note(a.address, 'before'));
      expect(queued.status).toBe(200);
      const { s: sock, inbox } = await open(a.api_key, {}, t0.url);
      await inbox.has([queued.body.id]);
      const closed = waitFor<[number, string]>(sock, 'close');
      const before = Date.now();
      const r = await call('DELETE', `${t0.api}/agents/me`, { key: a.api_key });
      expect(r.status).toBe(200);
      expect(r.body).toEqual({
        deregistered: true,
        address: a.address,
        deregistered_at: expect.stringMatching(ISO_MS),
      });
      expect(Date.parse(r.body.deregistered_at)).toBeGreaterThanOrEqual(before - 1);
      expect(await closed).toEqual([4003, 'agent_deregistered']);
      expect((await call('GET', `${t0.api}/agents/me`, { key: a.api_key })).status).toBe(401);
      const to = await route(t0.api, s, note(a.address, 'after'));
      expect(to.status).toBe(404);
      expect(to.body).toMatchObject({ error: 'not_found', field: 'to' });
      // Hold 0: the name is free at once for a NEW key; the new agent inherits nothing.
      const again = await register(t0.api, 'gone', 'dr');
      expect(again.address).toBe(a.address);
      expect(again.agent_id).not.toBe(a.agent_id);
      expect(await pendingIds(again.api_key, t0.api)).toEqual([]);
      // The old key's fingerprint is revoked (reason agent_deregistered).
      const oldKey = await call('POST', `${t0.api}/register`, {
        json: { name: 'gone-2', tenant: 'dr', public_key: a.keys.publicPem },
      });
      expect(oldKey.status).toBe(403);
      expect(oldKey.body.error).toBe('key_revoked');
    } finally {
      await t0.close();
    }
  });

  it('with the default hold the name stays taken (409 name_taken)', async () => {
    const a = await register(t.api, 'held', 'dr');
    expect((await call('DELETE', `${t.api}/agents/me`, { key: a.api_key })).status).toBe(200);
    const again = await call('POST', `${t.api}/register`, {
      json: { name: 'held', tenant: 'dr', public_key: newKeypair().publicPem },
    });
    expect(again.status).toBe(409);
    expect(again.body.error).toBe('name_taken');
  });
});

describe('idempotency (§12.5)', () => {
  let a: Registered;
  let b: Registered;
  let c: Registered;
  beforeAll(async () => {
    a = await register(t.api, 'idem-a', 'idem');
    b = await register(t.api, 'idem-b', 'idem');
    c = await register(t.api, 'idem-c', 'idem');
  });
  const body = (key?: string, subject = 'once') => ({
    ...note('idem-b', subject),
    ...(key ? { idempotency_key: key } : {}),
  });
  const count = async () => (await pendingIds(b.api_key)).length;

  it('same key and body → 200, same answer, Idempotent-Replayed: true, one message; other subject → 409', async () => {
    const n = await count();
    const key = `idk_${randomUUID()}`;
    const r1 = await route(t.api, a, body(key));
    const r2 = await route(t.api, a, body(key));
    expect(r1.status).toBe(200);
    expect(r1.headers.get('idempotent-replayed')).toBeNull();
    expect(r2.status).toBe(200);
    expect(r2.headers.get('idempotent-replayed')).toBe('true');
    expect(r2.body).toEqual(r1.body);
    expect(await count()).toBe(n + 1);
    const other = await route(t.api, a, body(key, 'different'));
    expect(other.status).toBe(409);
    expect(other.body.error).toBe('duplicate_idempotency_key');
    expect(await count()).toBe(n + 1);
  });

  it('the Idempotency-Key header works the same', async () => {
    const n = await count();
    const headers = { 'Idempotency-Key': `idk_${randomUUID()}` };
    const r1 = await route(t.api, a, body(), headers);
    const r2 = await route(t.api, a, body(), headers);
    expect([r1.status, r2.status]).toEqual([200, 200]);
    expect(r2.body.id).toBe(r1.body.id);
    expect(r2.headers.get('idempotent-replayed')).toBe('true');
    expect(await count()).toBe(n + 1);
    expect((await route(t.api, a, body(undefined, 'changed'), headers)).body.error).toBe('duplicate_idempotency_key');
  });

  it('20 concurrent identical requests → exactly one message, one id in every answer', async () => {
    const n = await count();
    const key = `idk_${randomUUID()}`;
    const answers = await Promise.all(Array.from({ length: 20 }, () => route(t.api, a, body(key, 'concurrent'))));
    expect(answers.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(answers.map((r) => r.body.id)).size).toBe(1);
    expect(answers.filter((r) => r.headers.get('idempotent-replayed') === 'true')).toHaveLength(19);
    const ids = await pendingIds(b.api_key);
    expect(ids.length).toBe(n + 1);
    expect(ids.filter((id) => id === answers[0]!.body.id)).toHaveLength(1);
  });

  it('the same key from another sender is independent', async () => {
    const n = await count();
    const key = `idk_${randomUUID()}`;
    const fromA = await route(t.api, a, body(key, 'scoped'));
    const fromC = await route(t.api, c, body(key, 'scoped'));
    expect([fromA.status, fromC.status]).toEqual([200, 200]);
    expect(fromC.body.id).not.toBe(fromA.body.id);
    expect(fromC.headers.get('idempotent-replayed')).toBeNull();
    expect(await count()).toBe(n + 2);
  });
});

describe('rate limits (§20)', () => {
  const headerInts = (h: Headers) => {
    for (const name of ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'])
      expect(h.get(name), name).toMatch(/^\d+$/);
    return {
      limit: Number(h.get('x-ratelimit-limit')),
      remaining: Number(h.get('x-ratelimit-remaining')),
      reset: Number(h.get('x-ratelimit-reset')),
    };
  };

  it('route answers carry X-RateLimit-* for the route bucket (burst 600 in the local profile)', async () => {
    const a = await register(t.api, 'rl-a', 'rl');
    const b = await register(t.api, 'rl-b', 'rl');
    const nowS = Math.floor(Date.now() / 1000);
    const first = await route(t.api, a, note(b.address, 'r0'));
    expect(first.status).toBe(200);
    const h = headerInts(first.headers);
    expect(h.limit).toBe(600);
    expect(h.remaining).toBe(599);
    expect(h.reset).toBeGreaterThanOrEqual(nowS);
    expect(h.reset).toBeLessThanOrEqual(nowS + 10);
    // A burst drains the bucket faster than it refills (100 tokens/s): Remaining goes down.
    const burst = await Promise.all(
      Array.from({ length: 40 }, (_, i) => route(t.api, a, note(b.address, `r${i + 1}`))),
    );
    const remaining = burst.map((r) => headerInts(r.headers).remaining);
    expect(burst.every((r) => headerInts(r.headers).limit === 600)).toBe(true);
    expect(Math.min(...remaining)).toBeLessThan(h.remaining);
  });

  it('other REST calls carry the agent bucket (1200/min), Remaining decreasing', async () => {
    const a = await register(t.api, 'rl-c', 'rl');
    const seen: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await call('GET', `${t.api}/agents/me`, { key: a.api_key });
      const h = headerInts(r.headers);
      expect(h.limit).toBe(1200);
      expect(h.reset).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000));
      seen.push(h.remaining);
    }
    expect(seen[0]).toBe(1199);
    expect(seen[4]).toBeLessThan(seen[0]!);
  });

  it('/v1/info rate_limits: local {6000, 1200}, public {60, 100} (route header limit 60), absent when off', async () => {
    expect((await call('GET', `${t.api}/info`)).body.rate_limits).toEqual({
      messages_per_minute: 6000,
      api_requests_per_minute: 1200,
    });
    const pub = await startTestServer({ rateLimitProfile: 'public' });
    const off = await startTestServer({ rateLimits: 'off' });
    try {
      expect((await call('GET', `${pub.api}/info`)).body.rate_limits).toEqual({
        messages_per_minute: 60,
        api_requests_per_minute: 100,
      });
      const a = await register(pub.api, 'pub-a', 'rl');
      const r = await route(pub.api, a, note('pub-a', 'self'));
      expect(r.status).toBe(200);
      expect(headerInts(r.headers)).toMatchObject({ limit: 60, remaining: 59 });
      const info = await call('GET', `${off.api}/info`);
      expect(info.status).toBe(200);
      expect('rate_limits' in info.body).toBe(false);
    } finally {
      await Promise.all([pub.close(), off.close()]);
    }
  });
});
