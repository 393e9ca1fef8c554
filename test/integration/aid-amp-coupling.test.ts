// AID and AMP together (agent-identity §13; issue: registration mode `approval`, suspension stops
// messaging): an agent registered under `approval` cannot route until an admin approves its
// identity registration; an AID suspension closes its sockets and refuses its routes until
// reactivation, and outlives the registration's deletion until a new approval. Deregistering the
// AMP agent suspends (active) or rejects (pending) its registration as the system; rotating its
// AMP keypair moves the registration to the new key behind a token cutoff. Changes that overlap
// in time: aid-amp-races.test.ts.

import { sign } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmpClient } from '../../src/client/index.js';
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
  tokenFor,
  type AidServer,
} from '../helpers/aid.js';
import { waitFor } from '../helpers/events.js';
import {
  call,
  newKeypair,
  register,
  route,
  signMessage,
  tempDir,
  type Registered,
  type TestServer,
} from '../helpers/server.js';

const TENANT = 'acme';

let s: AidServer;
let t: TestServer;
let agent: Registered;
let peer: Registered;
let regId: string;
const dataDir = tempDir('amp-aid-couple-');

beforeAll(async () => {
  s = await startAidServer({ dataDir, registrationMode: 'approval' });
  t = s.t;
  agent = await register(t.api, 'newcomer', 'acme');
  peer = await register(t.api, 'peer', 'acme');
  // Without AMP_PUBLIC_URL the issuer is http://localhost:<port>/acme; read it as a client would.
  const issuer = (await call('GET', `${t.url}/acme/.well-known/openid-configuration`)).body.issuer as string;
  expect(issuer).toBe(`http://localhost:${t.server.port}/acme`);
  // The admin token (startAidServer) is minted for that issuer.
  expect(s.issuer).toBe(issuer);
});
afterAll(() => t.close());

const send = (from: Registered) =>
  route(t.api, from, { to: 'peer', subject: 's', payload: { type: 'notification', message: 'x' } });

describe('approval mode', () => {
  it('a new agent awaits approval: it may not route, its status says pending', async () => {
    expect((await call('GET', `${t.api}/info`)).body.registration_modes).toEqual(['approval']);
    expect((await call('GET', `${t.api}/agents/me`, { key: agent.api_key })).body.status).toBe('pending');
    const r = await send(agent);
    expect(r.status).toBe(403);
    expect(r.body.error).toBe('forbidden');
  });

  it('after the admin approves its identity registration it routes', async () => {
    const req = await requestRegistration(s, agent);
    regId = req.body.data.id;
    expect((await asAdmin(s, 'POST', `/${regId}/approve`)).status).toBe(200);
    expect((await call('GET', `${t.api}/agents/me`, { key: agent.api_key })).body.status).toBe('active');
    expect((await send(agent)).status).toBe(200);
  });
});

describe('suspension', () => {
  it("closes the agent's sockets, refuses its routes, and reactivation restores both", async () => {
    const socket = new AmpClient({ baseUrl: t.url, apiKey: agent.api_key }).connect({ reconnect: false });
    await socket.ready();
    const closed = waitFor<[number, string]>(socket, 'close');
    expect((await asAdmin(s, 'POST', `/${regId}/suspend`)).status).toBe(200);
    expect(await closed).toEqual([4003, 'agent_suspended']);
    const r = await send(agent);
    expect(r.status).toBe(403);
    expect(r.body.error).toBe('agent_suspended');
    // Others are untouched: the peer (registered under approval too) is still just pending.
    expect((await call('GET', `${t.api}/agents/me`, { key: peer.api_key })).body.status).toBe('pending');
    expect((await asAdmin(s, 'POST', `/${regId}/reactivate`)).status).toBe(200);
    expect((await send(agent)).status).toBe(200);
  });
});

describe('suspension and deletion', () => {
  let s: AidServer;
  beforeAll(async () => {
    s = await startAidServer({ rateLimits: 'off' });
  });
  afterAll(() => s.t.close());

  it('suspend then delete leaves the AMP agent suspended; a new request and approval lets it route again', async () => {
    const a = await register(s.t.api, 'comeback', TENANT);
    const b = await register(s.t.api, 'listener', TENANT);
    const send = () => {
      const m = { from: a.address, to: b.address, subject: 'hi', payload: { type: 'notification', message: 'x' } };
      return route(s.t.api, a, {
        to: b.address,
        subject: 'hi',
        payload: m.payload,
        signature: signMessage(a.keys.privateKey, m),
      });
    };
    expect((await send()).status).toBe(200);
    const id = await activeRegistration(s, a);
    expect((await asAdmin(s, 'POST', `/${id}/suspend`)).status).toBe(200);
    const refused = await send();
    expect(refused.status).toBe(403);
    expect(refused.body.error).toBe('agent_suspended');
    expect((await asAdmin(s, 'DELETE', `/${id}`)).status).toBe(200);
    expect((await send()).body.error).toBe('agent_suspended');

    const again = await requestRegistration(s, a);
    expect(again.status).toBe(202);
    expect(again.body.data.id).not.toBe(id);
    const ap = await asAdmin(s, 'POST', `/${again.body.data.id}/approve`);
    expect(ap.status).toBe(200);
    expect(ap.body.data.attributes).toMatchObject({ status: 'active', amp_agent_id: a.agent_id });
    const routed = await send();
    expect([200, 201]).toContain(routed.status);
    expect((await tokenFor(s, a)).status).toBe(200);
  });
});

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
});
