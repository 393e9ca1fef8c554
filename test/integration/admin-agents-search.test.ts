// GET /v1/admin/agents?q=: the console's agent search, a case-insensitive substring of the address,
// name, alias or id, within the admin's tenant; each row has id, address, name, status, online and
// queue_depth.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminToken } from '../helpers/aid.js';
import { call, register, routeOk, startTestServer, type Registered, type TestServer } from '../helpers/server.js';
import { closeAllWs, connectWs } from '../helpers/ws.js';

let t: TestServer;
let admin: string;
let alpha: Registered;
let beta: Registered;

const search = (q: string) =>
  call('GET', `${t.url}/v1/admin/agents?q=${encodeURIComponent(q)}`, { headers: { Authorization: `Bearer ${admin}` } });
const names = (r: { body: { agents: Array<{ name: string }> } }) => r.body.agents.map((a) => a.name).sort();

beforeAll(async () => {
  t = await startTestServer();
  admin = await adminToken(t, { tenant: 'acme', scopes: ['amp:admin'] });
  alpha = await register(t.api, 'alpha-bot', 'acme', { alias: 'Night Shift' });
  beta = await register(t.api, 'beta-bot', 'acme');
  await register(t.api, 'alpha-elsewhere', 'other');
  await routeOk(t.api, alpha, { to: 'beta-bot', subject: 's', payload: { type: 'notification', message: 'x' } });
});
afterAll(async () => {
  await closeAllWs();
  await t?.close();
});

describe('GET /v1/admin/agents?q=', () => {
  it('matches name, address, alias and id, case-insensitively, in the tenant only', async () => {
    expect(names(await search('ALPHA'))).toEqual(['alpha-bot']);
    expect(names(await search('-bot@acme'))).toEqual(['alpha-bot', 'beta-bot']);
    expect(names(await search('night shift'))).toEqual(['alpha-bot']);
    expect(names(await search(beta.agent_id.toUpperCase()))).toEqual(['beta-bot']);
    expect(names(await search(beta.agent_id.slice(-6)))).toEqual(['beta-bot']);
    expect(names(await search('no-such-agent'))).toEqual([]);
    expect((await search('ALPHA')).body.total).toBe(1);
  });

  it('gives each row id, address, name, status, online and queue_depth', async () => {
    const ws = await connectWs(t.server.wsUrl, alpha.api_key);
    const r = await search('bot');
    const rows = Object.fromEntries(r.body.agents.map((a: any) => [a.name, a]));
    expect(rows['alpha-bot']).toMatchObject({
      id: alpha.agent_id,
      address: alpha.address,
      status: 'active',
      online: true,
    });
    expect(rows['beta-bot']).toMatchObject({ id: beta.agent_id, name: 'beta-bot', online: false, queue_depth: 1 });
    await ws.close();
  });
});
