// Operators' controls (spec §20, issue 13 item 13): POST agents/{agent_id}/suspend and /unsuspend
// with an `amp:admin` JWT of the agent's tenant. A suspended agent's sockets close with 4003
// `agent_suspended`, its routes, listing and acks are refused (403 agent_suspended), messages to it
// are refused (403 recipient_suspended), its queue is kept; unsuspend restores all of it. Both calls
// are idempotent and leave an audit line (never the token). Plus the §20 abuse counters in /metrics.

import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activeRegistration, adminToken, asAdmin, type AidServer, issuerOf } from '../helpers/aid.js';
import {
  call,
  register,
  route,
  routeOk,
  startTestServer,
  type Registered,
  type TestServer,
} from '../helpers/server.js';
import { closeAllWs, connectWs, openWs, UpgradeRefused, until } from '../helpers/ws.js';

const lines: Array<Record<string, any>> = [];
const raw: string[] = [];
const sink = new Writable({
  write(chunk, _enc, done) {
    for (const line of String(chunk).split('\n').filter(Boolean)) {
      raw.push(line);
      lines.push(JSON.parse(line));
    }
    done();
  },
});

let t: TestServer;
let mallory: Registered;
let bob: Registered;
let other: Registered;
let admin: string;
const msg = (to: string, n: number) => ({ to, subject: `s${n}`, payload: { type: 'notification', message: `m${n}` } });
const suspend = (id: string, token: string | undefined, json?: unknown) =>
  call('POST', `${t.api}/agents/${id}/suspend`, {
    headers: token ? { Authorization: `Bearer ${token}` } : {},
    ...(json === undefined ? {} : { json }),
  });
const unsuspend = (id: string, token: string) =>
  call('POST', `${t.api}/agents/${id}/unsuspend`, { headers: { Authorization: `Bearer ${token}` } });

beforeAll(async () => {
  t = await startTestServer({ logger: pino({ level: 'info' }, sink) });
  [mallory, bob, other] = await Promise.all([
    register(t.api, 'mallory', 'acme'),
    register(t.api, 'bob', 'acme'),
    register(t.api, 'other', 'globex'),
  ]);
  admin = await adminToken(t, { tenant: 'acme', email: 'ops@acme.com', scopes: ['amp:admin'] });
});
afterAll(async () => {
  await closeAllWs();
  await t?.close();
});

describe('POST agents/{agent_id}/suspend and /unsuspend (§20)', () => {
  it('suspend closes sockets with 4003 agent_suspended, refuses its routes, list and acks and messages to it; unsuspend restores', async () => {
    const queued = await routeOk(t.api, bob, msg(mallory.address, 1));
    const ws = await connectWs(t.server.wsUrl, mallory.api_key);

    const s = await suspend(mallory.agent_id, admin, { reason: 'suspicious_activity' });
    expect(s.status).toBe(200);
    expect(s.body).toEqual({
      agent_id: mallory.agent_id,
      suspended: true,
      suspended_at: expect.any(String),
      expires_at: null,
    });
    expect(await ws.closed(5000)).toEqual({ code: 4003, reason: 'agent_suspended' });

    const sent = await route(t.api, mallory, msg(bob.address, 2));
    expect([sent.status, sent.body.error]).toEqual([403, 'agent_suspended']);
    const to = await route(t.api, bob, msg(mallory.address, 3));
    expect([to.status, to.body.error, to.body.field]).toEqual([403, 'recipient_suspended', 'to']);
    const pending = await call('GET', `${t.api}/messages/pending`, { key: mallory.api_key });
    expect([pending.status, pending.body.error]).toEqual([403, 'agent_suspended']);
    const listed = await call('GET', `${t.api}/agents`, { key: mallory.api_key });
    expect([listed.status, listed.body.error]).toEqual([403, 'agent_suspended']);
    const upgrade = await openWs(t.server.wsUrl, { headers: { Authorization: `Bearer ${mallory.api_key}` } }).catch(
      (e) => e,
    );
    expect(upgrade).toBeInstanceOf(UpgradeRefused);
    expect([upgrade.status, upgrade.body.error]).toEqual([403, 'agent_suspended']);

    // Idempotent: the same state, nothing changed, no second audit line.
    const again = await suspend(mallory.agent_id, admin);
    expect(again.body).toEqual(s.body);

    const u = await unsuspend(mallory.agent_id, admin);
    expect(u.status).toBe(200);
    expect(u.body).toEqual({ agent_id: mallory.agent_id, suspended: false, unsuspended_at: expect.any(String) });
    expect((await unsuspend(mallory.agent_id, admin)).body.suspended).toBe(false);

    // The queue was kept; routes flow both ways again; sockets connect again.
    const back = await call('GET', `${t.api}/messages/pending`, { key: mallory.api_key });
    expect(back.body.messages.map((m: any) => m.id)).toEqual([queued.id]);
    await routeOk(t.api, mallory, msg(bob.address, 4));
    await routeOk(t.api, bob, msg(mallory.address, 5));
    const ws2 = await connectWs(t.server.wsUrl, mallory.api_key);
    expect(ws2.connected.data.pending_count).toBe(2);

    // One audit line each, with the admin and the agent, never the token.
    const audit = lines.filter((l) => l.event === 'agent_suspended' || l.event === 'agent_unsuspended');
    expect(audit.map((l) => [l.event, l.agent, l.admin, l.level])).toEqual([
      ['agent_suspended', mallory.agent_id, 'ops@acme.com', 40],
      ['agent_unsuspended', mallory.agent_id, 'ops@acme.com', 40],
    ]);
    expect(audit[0].reason).toBe('suspicious_activity');
    expect(raw.some((l) => l.includes(admin))).toBe(false);
  });

  it('a suspension with duration_hours ends by itself', async () => {
    const s = await suspend(bob.agent_id, admin, { duration_hours: 1 / 3600 });
    expect(s.status).toBe(200);
    expect(Date.parse(s.body.expires_at) - Date.parse(s.body.suspended_at)).toBe(1000);
    const refused = await route(t.api, bob, msg(mallory.address, 6));
    expect(refused.body.error).toBe('agent_suspended');
    const lifted = await until(async () => (await route(t.api, bob, msg(mallory.address, 7))).status === 200, 5000);
    expect(lifted).toBe(true);
  });

  it("needs an amp:admin token of the agent's tenant: 401 without, 403 without the scope, 404 for another tenant", async () => {
    expect((await suspend(mallory.agent_id, undefined)).status).toBe(401);
    expect((await suspend(mallory.agent_id, 'not.a.jwt')).status).toBe(401);
    // An API key is no admin token.
    expect((await suspend(mallory.agent_id, mallory.api_key)).status).toBe(401);
    const noScope = await adminToken(t, { tenant: 'acme', scopes: ['agent_registrations:write'] });
    const r = await suspend(mallory.agent_id, noScope);
    expect([r.status, r.body.error]).toEqual([403, 'forbidden']);
    const globex = await adminToken(t, { tenant: 'globex', email: 'ops@globex.com', scopes: ['amp:admin'] });
    const cross = await suspend(mallory.agent_id, globex);
    expect([cross.status, cross.body.error]).toEqual([404, 'not_found']);
    expect((await suspend('agt_nope', admin)).status).toBe(404);
    const bad = await suspend(other.agent_id, globex, { duration_hours: -1 });
    expect([bad.status, bad.body.error, bad.body.field]).toEqual([400, 'invalid_field', 'duration_hours']);
    // Nothing was suspended by any of these.
    await routeOk(t.api, mallory, msg(bob.address, 8));
    await routeOk(t.api, other, msg(bob.address, 9));
  });
});

describe("an operator's suspension and the agent's AID registration", () => {
  it("an AID reactivation does not lift an operator's suspension; the unsuspend does", async () => {
    const carol = await register(t.api, 'carol', 'acme');
    const aid: AidServer = {
      t,
      tenant: 'acme',
      issuer: issuerOf(t, 'acme'),
      url: `${t.url}/acme`,
      admin: await adminToken(t, { tenant: 'acme' }),
      mint: (email) => adminToken(t, { tenant: 'acme', email }),
    };
    const regId = await activeRegistration(aid, carol);
    expect((await suspend(carol.agent_id, admin)).status).toBe(200);
    expect((await asAdmin(aid, 'POST', `/${regId}/suspend`)).status).toBe(200);
    expect((await asAdmin(aid, 'POST', `/${regId}/reactivate`)).status).toBe(200);
    expect((await route(t.api, carol, msg(bob.address, 20))).body.error).toBe('agent_suspended');
    expect((await unsuspend(carol.agent_id, admin)).status).toBe(200);
    await routeOk(t.api, carol, msg(bob.address, 21));
  });
});

describe('§20 abuse counters in /metrics', () => {
  it('counts accepted and blocked routes per agent over 24 h (bounded series)', async () => {
    const before = await call('GET', `${t.url}/metrics`);
    const sample = (text: string, name: string, address: string) => {
      const m = new RegExp(`^${name}\\{agent="${address.replace(/\./g, '\\.')}"\\} (\\d+)$`, 'm').exec(text);
      return m ? Number(m[1]) : 0;
    };
    const blocked0 = sample(before.body, 'amp_agent_blocked_24h', other.address);
    const sent0 = sample(before.body, 'amp_agent_total_messages_24h', other.address);
    // Two bad signatures and one 'from' that is not the sender: three blocked; one accepted.
    const sig = Buffer.alloc(64, 1).toString('base64');
    for (const n of [1, 2]) {
      const r = await route(t.api, other, { ...msg(bob.address, 10 + n), signature: sig });
      expect(r.body.error).toBe('signature_invalid');
    }
    expect((await route(t.api, other, { ...msg(bob.address, 13), from: bob.address })).body.error).toBe('forbidden');
    await routeOk(t.api, other, msg(bob.address, 14));
    const after = (await call('GET', `${t.url}/metrics`)).body as string;
    expect(sample(after, 'amp_agent_blocked_24h', other.address) - blocked0).toBe(3);
    expect(sample(after, 'amp_agent_total_messages_24h', other.address) - sent0).toBe(1);
    expect(after).toMatch(/^# TYPE amp_agent_quarantined_24h gauge$/m);
    expect(after).toMatch(/^# TYPE amp_agent_flagged_24h gauge$/m);
    expect(after).toMatch(/^amp_route_blocked_total \d+$/m);
  });
});
