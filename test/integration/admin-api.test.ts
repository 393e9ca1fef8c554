// The operators' endpoints under /api/v1/admin (amp:admin JWT, the token's tenant only): agents with
// status, suspension, queue depth and last seen; queue totals and the deepest queues with their
// oldest message; deregistration. And why a refused admin token was refused, in the server's debug
// log (never the token), and admin tokens under AID_ISSUER_ALIASES.

import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issuerOf, mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import {
  call,
  register,
  routeOk,
  startTestServer,
  tempDir,
  type Registered,
  type TestServer,
} from '../helpers/server.js';
import { rmSync } from 'node:fs';

/** Every log record the server writes, parsed. */
function capturingLogger() {
  const records: Record<string, any>[] = [];
  const raw: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) {
        raw.push(line);
        records.push(JSON.parse(line));
      }
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), records, raw };
}

let t: TestServer;
let log: ReturnType<typeof capturingLogger>;
let keys: SigningKeys;
let alice: Registered;
let bob: Registered;
let carol: Registered;
let other: Registered;
const ALIAS = 'https://amp.example.net';

async function mint(tenant: string, scopes = ['amp:admin'], issuer = issuerOf(t.publicBase, tenant)) {
  return mintAdminToken(keys, { issuer, tenant, email: 'ops@acme.com', scopes });
}
const get = (path: string, token: string) =>
  call('GET', `${t.api}${path}`, { headers: { Authorization: `Bearer ${token}` } });

beforeAll(async () => {
  log = capturingLogger();
  t = await startTestServer({ logger: log.logger, aidIssuerAliases: [ALIAS] });
  keys = await SigningKeys.open(t.dataDir, 'RS256');
  alice = await register(t.api, 'alice', 'acme');
  bob = await register(t.api, 'bob', 'acme');
  carol = await register(t.api, 'carol', 'acme');
  other = await register(t.api, 'olga', 'other');
  // bob: 3 queued, carol: 1, alice: none.
  for (const i of [1, 2, 3])
    await routeOk(t.api, alice, { to: 'bob', subject: `m${i}`, payload: { type: 'notification', message: 'x' } });
  await routeOk(t.api, alice, { to: 'carol', subject: 'c', payload: { type: 'notification', message: 'x' } });
  await routeOk(t.api, other, { to: 'olga', subject: 'self', payload: { type: 'notification', message: 'x' } });
});
afterAll(async () => {
  await t?.close();
});

describe('GET admin/agents and admin/queues', () => {
  it("lists the token's tenant only, with status, suspension, queue depth, oldest message and last seen", async () => {
    const token = await mint('acme');
    const r = await get('/admin/agents', token);
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tenant: 'acme', total: 3, has_more: false, cursor: null });
    const byName = Object.fromEntries(r.body.agents.map((a: any) => [a.address.split('@')[0], a]));
    expect(Object.keys(byName).sort()).toEqual(['alice', 'bob', 'carol']);
    expect(byName.bob).toMatchObject({
      agent_id: bob.agent_id,
      status: 'active',
      suspended: false,
      suspension: null,
      online: false,
      queue_depth: 3,
    });
    expect(Date.parse(byName.bob.oldest_queued_at)).toBeLessThanOrEqual(Date.now());
    expect(byName.alice).toMatchObject({ queue_depth: 0, oldest_queued_at: null });
    // alice used her API key to route: last seen is known.
    expect(Date.parse(byName.alice.last_seen_at)).toBeGreaterThan(Date.now() - 60_000);
  });

  it('shows an operator suspension with its reason and expiry', async () => {
    const token = await mint('acme');
    const s = await call('POST', `${t.api}/agents/${carol.agent_id}/suspend`, {
      headers: { Authorization: `Bearer ${token}` },
      json: { reason: 'spam', duration_hours: 2 },
    });
    expect(s.status).toBe(200);
    const r = await get(`/admin/agents/${carol.agent_id}`, token);
    expect(r.body).toMatchObject({
      status: 'suspended',
      suspended: true,
      suspension: { reason: 'spam', by: 'ops@acme.com' },
    });
    expect(Date.parse(r.body.suspension.expires_at)).toBeGreaterThan(Date.now() + 3600_000);
    await call('POST', `${t.api}/agents/${carol.agent_id}/unsuspend`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect((await get(`/admin/agents/${carol.agent_id}`, token)).body).toMatchObject({
      suspended: false,
      suspension: null,
    });
  });

  it('sums the queues and lists the deepest first, with the oldest message age', async () => {
    const r = await get('/admin/queues', await mint('acme'));
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ tenant: 'acme', total_messages: 4, agents_with_messages: 2, complete: true });
    expect(r.body.scanned_agents).toBe(3);
    expect(r.body.agents.map((a: any) => [a.agent_id, a.depth])).toEqual([
      [bob.agent_id, 3],
      [carol.agent_id, 1],
    ]);
    expect(r.body.oldest_age_seconds).toBeGreaterThanOrEqual(0);
    expect(r.body.oldest_queued_at).toBe(r.body.agents[0].oldest_queued_at);
    expect((await get('/admin/queues?limit=1', await mint('acme'))).body.agents).toHaveLength(1);
    expect((await get('/admin/queues?limit=0', await mint('acme'))).status).toBe(400);
    // Acks shrink it.
    const pending = await call('GET', `${t.api}/messages/pending`, { key: carol.api_key });
    await call('DELETE', `${t.api}/messages/pending/${pending.body.messages[0].id}`, { key: carol.api_key });
    expect((await get('/admin/queues', await mint('acme'))).body).toMatchObject({ total_messages: 3 });
  });

  it("answers another tenant's agent 404, and refuses missing tokens, agent keys and other scopes", async () => {
    const token = await mint('acme');
    expect((await get(`/admin/agents/${other.agent_id}`, token)).status).toBe(404);
    expect(
      (
        await call('DELETE', `${t.api}/admin/agents/${other.agent_id}`, {
          headers: { Authorization: `Bearer ${token}` },
        })
      ).status,
    ).toBe(404);
    const others = await get('/admin/agents', await mint('other'));
    expect(others.body.agents.map((a: any) => a.agent_id)).toEqual([other.agent_id]);
    expect((await call('GET', `${t.api}/admin/agents`)).status).toBe(401);
    expect((await get('/admin/agents', alice.api_key)).status).toBe(401);
    const noAmpAdmin = await get('/admin/queues', await mint('acme', ['agent_registrations:write']));
    expect(noAmpAdmin.status).toBe(403);
    expect(noAmpAdmin.body.message).toMatch(/amp:admin/);
  });

  it('deregisters an agent of the tenant: gone from the list, its key refused', async () => {
    const token = await mint('acme');
    const d = await call('DELETE', `${t.api}/admin/agents/${bob.agent_id}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    expect(d.status).toBe(200);
    expect(d.body).toMatchObject({ agent_id: bob.agent_id, deregistered: true, address: bob.address });
    expect((await get(`/admin/agents/${bob.agent_id}`, token)).status).toBe(404);
    expect((await call('GET', `${t.api}/agents/me`, { key: bob.api_key })).status).toBe(401);
    expect((await get('/admin/queues', token)).body.agents.map((a: any) => a.agent_id)).not.toContain(bob.agent_id);
  });
});

/**
 * Send the headers and the first KB of a `length`-byte body, never the rest; resolves with the
 * answer's status line, which the server can only give before it read the body.
 */
function answerBeforeBody(method: string, path: string, length: number, headers = ''): Promise<string> {
  const url = new URL(`${t.api}${path}`);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(url.port), url.hostname);
    let got = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer before the body within 5 s: ${JSON.stringify(got)}`));
    }, 5000);
    sock.on('data', (d) => {
      got += d;
      const line = /^HTTP\/1\.1 \d{3}[^\r]*/.exec(got);
      if (!line) return;
      clearTimeout(timer);
      sock.destroy();
      resolve(line[0]);
    });
    sock.on('error', reject);
    sock.write(
      `${method} ${url.pathname} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${headers}` +
        `Content-Length: ${length}\r\n\r\n${' '.repeat(1024)}`,
    );
  });
}

describe('the admin JWT is checked before any body is read', () => {
  const big = Buffer.alloc(2 * 1024 * 1024, 0x20);
  const targets = () => [
    ['DELETE', `/admin/agents/${carol.agent_id}`],
    ['POST', `/agents/${carol.agent_id}/suspend`],
    ['POST', `/agents/${carol.agent_id}/unsuspend`],
  ];

  it('a 2 MB body with no token or a bad one is 401 (not 413); a good token still gets 413', async () => {
    const good = await mint('acme');
    const [h, p] = good.split('.');
    const badSig = `${h}.${p}.${Buffer.from('not the signature').toString('base64url')}`;
    for (const [method, path] of targets()) {
      const send = (headers: Record<string, string>) => call(method, `${t.api}${path}`, { raw: big, headers });
      const none = await send({});
      expect([method, path, none.status, none.body.error]).toEqual([method, path, 401, 'unauthorized']);
      expect((await send({ Authorization: `Bearer ${badSig}` })).status, path).toBe(401);
      expect((await send({ Authorization: `Bearer ${alice.api_key}` })).status, path).toBe(401);
      const scope = await send({ Authorization: `Bearer ${await mint('acme', ['agent_registrations:write'])}` });
      expect(scope.status, path).toBe(403);
      expect((await send({ Authorization: `Bearer ${good}` })).status, path).toBe(413);
    }
    expect((await get(`/admin/agents/${carol.agent_id}`, good)).body.agent_id).toBe(carol.agent_id);
  });

  it('answers 401 while a 500 KB body is still unsent: nothing is buffered for a refused token', async () => {
    for (const [method, path] of targets()) {
      expect(await answerBeforeBody(method, path, 500_000), path).toMatch(/^HTTP\/1\.1 401 /);
      expect(await answerBeforeBody(method, path, 500_000, 'Authorization: Bearer x.y.z\r\n'), path).toMatch(
        /^HTTP\/1\.1 401 /,
      );
    }
  });
});

describe('admin token refusals are logged at debug with the reason, never the token', () => {
  const refusals = () => log.records.filter((r) => r.event === 'admin_token_refused');

  async function refusedWith(token: string, path = '/admin/agents') {
    const before = refusals().length;
    const r = await get(path, token);
    expect(r.status === 401 || r.status === 403).toBe(true);
    const found = refusals().slice(before);
    expect(found).toHaveLength(1);
    for (const line of log.raw) expect(line).not.toContain(token.split('.')[2]);
    return found[0];
  }

  it('wrong issuer: expected and got', async () => {
    const why = await refusedWith(await mint('acme', ['amp:admin'], 'http://localhost:23000/acme'));
    expect(why).toMatchObject({ level: 20, reason: 'wrong_issuer', got: 'http://localhost:23000/acme' });
    expect(why.expected).toContain(`${t.publicBase}/acme`);
  });

  it('unknown key, bad signature, expired, missing scope, agent token', async () => {
    expect(await refusedWith(await mintWith(await otherKeys(), {}))).toMatchObject({ reason: 'unknown_key' });
    const good = await mint('acme');
    const [h, p, sig] = good.split('.');
    const flipped = `${h}.${p}.${sig.startsWith('A') ? 'B' : 'A'}${sig.slice(1)}`;
    expect(await refusedWith(flipped)).toMatchObject({ reason: 'bad_signature' });
    const expired = await refusedWith(await mintWith(keys, { exp: Math.floor(Date.now() / 1000) - 3600 }));
    expect(expired).toMatchObject({ reason: 'expired' });
    expect(Date.parse(expired.got)).toBeLessThan(Date.now());
    expect(await refusedWith(await mint('acme', ['agent_registrations:read']))).toMatchObject({
      reason: 'missing_scope',
      expected: 'amp:admin:read',
    });
    expect(await refusedWith(await mintWith(keys, { token_type: 'agent' }))).toMatchObject({
      reason: 'not_admin_token',
    });
  });

  it('wrong tenant on an AID route', async () => {
    const token = await mint('other', ['agent_registrations:write']);
    const before = refusals().length;
    const r = await call('GET', `${t.url}/acme/agent_registrations`, { headers: { Authorization: `Bearer ${token}` } });
    expect(r.status).toBe(401);
    expect(refusals().slice(before)).toEqual([
      expect.objectContaining({ reason: 'wrong_tenant', expected: 'acme', got: 'other' }),
    ]);
  });

  it('accepts an admin token whose issuer is under an AID_ISSUER_ALIASES base', async () => {
    const r = await get('/admin/agents', await mint('acme', ['amp:admin'], `${ALIAS}/acme`));
    expect(r.status).toBe(200);
    expect(
      (await get('/admin/agents', await mint('acme', ['amp:admin'], 'https://elsewhere.example/acme'))).status,
    ).toBe(401);
  });
});

/** A key set of another data dir: what a token minted from the wrong one is signed with. */
async function otherKeys(): Promise<SigningKeys> {
  const dir = tempDir();
  try {
    return await SigningKeys.load(dir, 'RS256');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An admin token of acme with some claims overridden. */
async function mintWith(ks: SigningKeys, over: Record<string, unknown>): Promise<string> {
  const key = await ks.current();
  const issuer = issuerOf(t.publicBase, 'acme');
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    scopes: ['amp:admin'],
    scope: 'amp:admin',
    token_type: 'admin',
    email: 'ops@acme.com',
    company_url_id: 'acme',
    iat: now - 7200,
    exp: now + 600,
    ...over,
  })
    .setProtectedHeader({ alg: key.alg, kid: key.kid })
    .setIssuer(issuer)
    .setAudience(issuer)
    .setSubject('admin:ops@acme.com')
    .sign(key.privateKey);
}
