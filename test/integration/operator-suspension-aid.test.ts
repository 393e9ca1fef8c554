// An operator's suspension (§20) and the agent's AID registration status are two sources of one
// AMP status: neither may undo the other. Regression tests for the three ways one was lost.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeRegistration, adminToken, type AidServer, asAdmin, issuerOf } from '../helpers/aid.js';
import { call, register, route, startTestServer, type TestServer } from '../helpers/server.js';

let t: TestServer;
let admin: string;
let aid: AidServer;
const msg = (to: string, n: number) => ({ to, subject: `s${n}`, payload: { type: 'notification', message: `m${n}` } });
const op = (id: string, what: 'suspend' | 'unsuspend', json?: unknown) =>
  call('POST', `${t.api}/agents/${id}/${what}`, {
    headers: { Authorization: `Bearer ${admin}` },
    ...(json ? { json } : {}),
  });

beforeAll(async () => {
  t = await startTestServer();
  admin = await adminToken(t, { tenant: 'acme', email: 'ops@acme.com', scopes: ['amp:admin'] });
  aid = {
    t,
    tenant: 'acme',
    issuer: issuerOf(t, 'acme'),
    url: `${t.url}/acme`,
    admin: await adminToken(t, { tenant: 'acme' }),
    mint: (e) => adminToken(t, { tenant: 'acme', email: e }),
  };
});
afterAll(async () => t?.close());

describe('operator suspension and the AID registration status', () => {
  it('an AID suspension during an operator suspension survives the operator unsuspend', async () => {
    const bob = await register(t.api, 'bob-a', 'acme');
    const a = await register(t.api, 'agent-a', 'acme');
    const regId = await activeRegistration(aid, a);
    expect((await op(a.agent_id, 'suspend')).status).toBe(200);
    expect((await asAdmin(aid, 'POST', `/${regId}/suspend`)).status).toBe(200);
    expect((await op(a.agent_id, 'unsuspend')).status).toBe(200);
    const r = await route(t.api, a, msg(bob.address, 1));
    expect([r.status, r.body.error]).toEqual([403, 'agent_suspended']);
  });

  it('an operator suspension of an AID-suspended agent survives an AID reactivation', async () => {
    const bob = await register(t.api, 'bob-b', 'acme');
    const a = await register(t.api, 'agent-b', 'acme');
    const regId = await activeRegistration(aid, a);
    expect((await asAdmin(aid, 'POST', `/${regId}/suspend`)).status).toBe(200);
    const s = await op(a.agent_id, 'suspend', { reason: 'abuse' });
    expect(s.status).toBe(200);
    expect(s.body.suspended_at).not.toBeNull();
    expect((await asAdmin(aid, 'POST', `/${regId}/reactivate`)).status).toBe(200);
    const r = await route(t.api, a, msg(bob.address, 2));
    expect([r.status, r.body.error]).toEqual([403, 'agent_suspended']);
    // Lifting the operator's suspension then lets it route: AID reactivated it meanwhile.
    expect((await op(a.agent_id, 'unsuspend')).status).toBe(200);
    expect((await route(t.api, a, msg(bob.address, 3))).status).toBe(200);
  });

  it('an operator unsuspend does not lift a suspension that only AID imposed', async () => {
    const bob = await register(t.api, 'bob-c', 'acme');
    const a = await register(t.api, 'agent-c', 'acme');
    const regId = await activeRegistration(aid, a);
    expect((await asAdmin(aid, 'POST', `/${regId}/suspend`)).status).toBe(200);
    expect((await op(a.agent_id, 'unsuspend')).status).toBe(200);
    const r = await route(t.api, a, msg(bob.address, 4));
    expect([r.status, r.body.error]).toEqual([403, 'agent_suspended']);
  });
});
