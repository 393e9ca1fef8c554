// AID and AMP together (issue: registration mode `approval`; suspension stops messaging): an agent
// registered under `approval` cannot route until an admin approves its identity registration; an
// AID suspension closes its sockets and refuses its routes until reactivation.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AmpClient } from '../../src/client/index.js';
import { asAdmin, requestRegistration, startAidServer, type AidServer } from '../helpers/aid.js';
import { waitFor } from '../helpers/events.js';
import { call, register, route, tempDir, type Registered, type TestServer } from '../helpers/server.js';

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
