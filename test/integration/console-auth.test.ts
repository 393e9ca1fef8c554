// The admin console's sign-in on the real server, with cookies handled by hand (no browser): a
// login link works once (also across a restart), expired or foreign tokens are refused, the
// session cookie's flags, CSRF on changes, read-only sessions refused by the server, sign-out,
// the audit actor of a console action, and the static page's headers and path checks.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintConsoleLogin } from '../../src/identity/console-login.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import {
  activityLogs,
  adminToken,
  type AidServer,
  issuerOf,
  pendingRegistration,
  startAidServer,
  tokenFor,
} from '../helpers/aid.js';
import { call, register, type Registered, startTestServer, tempDir } from '../helpers/server.js';

const PUBLIC_URL = 'http://console.test:8080';
const READ_ONLY = ['agent_registrations:read', 'amp:admin:read'];

function consoleDir(): string {
  const dir = tempDir('amp-console-');
  mkdirSync(join(dir, 'assets'));
  writeFileSync(join(dir, 'index.html'), '<!doctype html><script src="/admin/assets/app.js"></script>\n');
  writeFileSync(join(dir, 'assets', 'app.js'), 'console.log(1);\n');
  writeFileSync(join(dir, 'secret.txt'), 'not served\n');
  return dir;
}

interface Signed {
  cookie: string;
  csrf: string;
  setCookie: string;
  body: Record<string, any>;
}

async function loginToken(s: AidServer, opts: { scopes?: string[]; ttl?: number; now?: number } = {}) {
  const keys = await SigningKeys.load(s.t.dataDir, 'RS256');
  return mintConsoleLogin(keys, {
    issuer: issuerOf(s.t, s.tenant),
    tenant: s.tenant,
    email: 'ops@acme.com',
    scopes: opts.scopes ?? ['agent_registrations:write', 'amp:admin'],
    ttlSeconds: opts.ttl,
    now: opts.now,
  });
}

const postSession = (s: AidServer, token: string) => call('POST', `${s.t.url}/v1/console/session`, { json: { token } });

async function signIn(s: AidServer, scopes?: string[]): Promise<Signed> {
  const r = await postSession(s, await loginToken(s, { scopes }));
  expect(r.status, JSON.stringify(r.body)).toBe(201);
  const setCookie = r.headers.get('set-cookie') ?? '';
  const cookie = setCookie.split(';')[0];
  return { cookie, csrf: r.body.csrf_token, setCookie, body: r.body };
}

const withSession = (s: Signed, csrf: string | null = s.csrf) => ({
  Cookie: s.cookie,
  ...(csrf === null ? {} : { 'X-CSRF-Token': csrf }),
});

let s: AidServer;
let alice: Registered;
let dir: string;

beforeAll(async () => {
  dir = consoleDir();
  s = await startAidServer({ consoleDir: dir, dataDir: tempDir(), publicUrl: PUBLIC_URL });
  alice = await register(s.t.api, 'alice', 'acme');
});
afterAll(async () => {
  await s.t.close();
});

describe('sign-in links', () => {
  it('work once; a second use is 401 login_link_used, also after a restart', async () => {
    const token = await loginToken(s);
    const first = await postSession(s, token);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({
      email: 'ops@acme.com',
      tenant: 'acme',
      scopes: ['agent_registrations:write', 'amp:admin'],
      csrf_token: expect.any(String),
      features: { attachments: expect.any(Boolean), outbound: false },
    });
    const again = await postSession(s, token);
    expect(again.status).toBe(401);
    expect(again.body.error).toBe('login_link_used');

    const other = await loginToken(s);
    const session = await signIn(s);
    const { dataDir } = s.t;
    await s.t.server.close();
    // The same public URL (the issuer), the same data dir.
    s = await startAidServer({ consoleDir: dir, dataDir, publicUrl: PUBLIC_URL });
    const reused = await postSession(s, token);
    expect(reused.body.error).toBe('login_link_used');
    // Sessions end with the server; an unused link still works.
    const gone = await call('GET', `${s.t.url}/v1/console/session`, { headers: withSession(session) });
    expect(gone.status).toBe(401);
    expect((await postSession(s, other)).status).toBe(201);
  });

  it('two concurrent uses of one link: exactly one session', async () => {
    const token = await loginToken(s);
    const answers = await Promise.all([postSession(s, token), postSession(s, token), postSession(s, token)]);
    expect(answers.map((a) => a.status).sort()).toEqual([201, 401, 401]);
  });

  it('an expired link is 401 invalid_login_link saying it expired', async () => {
    const token = await loginToken(s, { ttl: 60, now: Math.floor(Date.now() / 1000) - 600 });
    const r = await postSession(s, token);
    expect(r.status).toBe(401);
    expect(r.body.error).toBe('invalid_login_link');
    expect(r.body.message).toMatch(/expired.*amp-relay admin login/);
  });

  it('admin tokens, agent tokens, foreign keys and garbage are refused', async () => {
    const admin = await adminToken(s.t, { tenant: 'acme' });
    const foreign = await startAidServer({ dataDir: tempDir() });
    const foreignLink = await loginToken(foreign);
    await foreign.t.close();
    const registration = await pendingRegistration(s, alice);
    expect(
      (
        await call('POST', `${s.url}/agent_registrations/${registration.id}/approve`, {
          headers: { Authorization: `Bearer ${s.admin}` },
        })
      ).status,
    ).toBe(200);
    const agentToken = (await tokenFor(s, alice)).body.access_token as string;
    expect(agentToken).toEqual(expect.any(String));
    for (const token of [admin, agentToken, foreignLink, 'not.a.jwt', '']) {
      const r = await postSession(s, token);
      expect(r.status, token).toBe(401);
      expect(r.body.error).toBe('invalid_login_link');
      expect(r.headers.get('set-cookie')).toBeNull();
    }
    // And a sign-in link is no admin token.
    const link = await loginToken(s);
    const r = await call('GET', `${s.t.api}/admin/agents`, { headers: { Authorization: `Bearer ${link}` } });
    expect(r.status).toBe(401);
  });
});

describe('sessions', () => {
  it('set an HttpOnly, SameSite=Strict cookie for the whole site, 8 hours', async () => {
    const { setCookie, body } = await signIn(s);
    expect(setCookie).toMatch(/^amp_console=[A-Za-z0-9_-]{43};/);
    expect(setCookie).toContain('Path=/');
    expect(setCookie).toContain('HttpOnly');
    expect(setCookie).toContain('SameSite=Strict');
    expect(setCookie).toContain('Max-Age=28800');
    expect(setCookie).not.toContain('Secure');
    const left = Date.parse(body.expires_at) - Date.now();
    expect(left).toBeGreaterThan(8 * 3600_000 - 60_000);
    expect(left).toBeLessThanOrEqual(8 * 3600_000);
  });

  it('GET console/session answers the session; sign-out needs the CSRF token, then 401', async () => {
    const a = await signIn(s);
    const got = await call('GET', `${s.t.url}/api/v1/console/session`, { headers: withSession(a, null) });
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ email: 'ops@acme.com', csrf_token: a.csrf });
    const noCsrf = await call('DELETE', `${s.t.url}/v1/console/session`, { headers: withSession(a, null) });
    expect(noCsrf.status).toBe(403);
    const out = await call('DELETE', `${s.t.url}/v1/console/session`, { headers: withSession(a) });
    expect(out.status).toBe(200);
    expect(out.body).toEqual({ signed_out: true });
    expect(out.headers.get('set-cookie')).toMatch(/^amp_console=; .*Max-Age=0/);
    const after = await call('GET', `${s.t.url}/v1/console/session`, { headers: withSession(a, null) });
    expect(after.status).toBe(401);
    const list = await call('GET', `${s.t.api}/admin/agents`, { headers: withSession(a, null) });
    expect(list.status).toBe(401);
    // The page tells the operator why: the session ended (not "a bearer token is required").
    expect(list.body.message).toMatch(/console session ended/);
    const regs = await call('GET', `${s.t.url}/acme/agent_registrations`, { headers: withSession(a, null) });
    expect(regs.status).toBe(401);
    expect(JSON.stringify(regs.body)).toMatch(/console session ended/);
  });

  it('a missing or wrong CSRF token is 403 and changes nothing (AMP and AID routes)', async () => {
    const a = await signIn(s);
    const bob = await register(s.t.api, 'bob', 'acme');
    for (const csrf of [null, 'wrong', `${a.csrf}x`]) {
      const r = await call('POST', `${s.t.api}/agents/${bob.agent_id}/suspend`, {
        headers: withSession(a, csrf),
        json: { reason: 'x' },
      });
      expect(r.status).toBe(403);
      expect(r.body.error).toBe('forbidden');
      expect(r.body.message).toMatch(/CSRF/);
    }
    const view = await call('GET', `${s.t.api}/admin/agents/${bob.agent_id}`, { headers: withSession(a, null) });
    expect(view.status).toBe(200);
    expect(view.body.status).toBe('active');

    const carol = await register(s.t.api, 'carol', 'acme');
    const { id } = await pendingRegistration(s, carol);
    const refused = await call('POST', `${s.url}/agent_registrations/${id}/approve`, {
      headers: withSession(a, 'wrong'),
      json: {},
    });
    expect(refused.status).toBe(403);
    expect(refused.body.error_description).toMatch(/CSRF/);
    const reg = await call('GET', `${s.url}/agent_registrations/${id}`, { headers: withSession(a, null) });
    expect(reg.status).toBe(200);
    expect(reg.body.data.attributes.status).toBe('pending');
  });

  it('a read-only session reads but cannot approve or suspend (403 from the server)', async () => {
    const ro = await signIn(s, READ_ONLY);
    const dave = await register(s.t.api, 'dave', 'acme');
    const { id } = await pendingRegistration(s, dave);
    expect((await call('GET', `${s.url}/agent_registrations`, { headers: withSession(ro, null) })).status).toBe(200);
    expect((await call('GET', `${s.t.api}/admin/agents`, { headers: withSession(ro, null) })).status).toBe(200);
    const approve = await call('POST', `${s.url}/agent_registrations/${id}/approve`, {
      headers: withSession(ro),
      json: {},
    });
    expect(approve.status).toBe(403);
    const suspend = await call('POST', `${s.t.api}/agents/${dave.agent_id}/suspend`, { headers: withSession(ro) });
    expect(suspend.status).toBe(403);
    const reg = await call('GET', `${s.url}/agent_registrations/${id}`, { headers: withSession(ro, null) });
    expect(reg.body.data.attributes.status).toBe('pending');
  });

  it('audits console actions with the session e-mail and the IP; suspend and deregister work by cookie', async () => {
    const a = await signIn(s);
    const erin = await register(s.t.api, 'erin', 'acme');
    const { id } = await pendingRegistration(s, erin);
    const ok = await call('POST', `${s.url}/agent_registrations/${id}/approve`, { headers: withSession(a), json: {} });
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    const approved = (await activityLogs(s, id)).find((e) => e.event_type === 'registration_approved');
    expect(approved).toMatchObject({ actor_email: 'ops@acme.com' });
    expect(JSON.stringify(approved)).toContain('127.0.0.1');

    const frank = await register(s.t.api, 'frank', 'acme');
    const sus = await call('POST', `${s.t.api}/agents/${frank.agent_id}/suspend`, {
      headers: withSession(a),
      json: { reason: 'spam' },
    });
    expect(sus.status).toBe(200);
    const del = await call('DELETE', `${s.t.api}/admin/agents/${frank.agent_id}`, { headers: withSession(a) });
    expect(del.status).toBe(200);
  });

  it('an Authorization header wins over the cookie', async () => {
    const ro = await signIn(s, READ_ONLY);
    const gina = await register(s.t.api, 'gina', 'acme');
    const r = await call('POST', `${s.t.api}/agents/${gina.agent_id}/suspend`, {
      headers: { ...withSession(ro), Authorization: `Bearer ${await adminToken(s.t, { scopes: ['amp:admin'] })}` },
      json: { reason: 'x' },
    });
    expect(r.status).toBe(200);
    const bad = await call('GET', `${s.t.api}/admin/agents`, {
      headers: { ...withSession(ro, null), Authorization: 'Bearer nope' },
    });
    expect(bad.status).toBe(401);
  });

  it('amp:admin:read admin tokens read but do not write', async () => {
    const token = await adminToken(s.t, { scopes: ['amp:admin:read'] });
    const auth = { Authorization: `Bearer ${token}` };
    expect((await call('GET', `${s.t.api}/admin/agents`, { headers: auth })).status).toBe(200);
    const w = await call('POST', `${s.t.api}/agents/${alice.agent_id}/suspend`, { headers: auth, json: {} });
    expect(w.status).toBe(403);
  });
});

describe('the console page', () => {
  it('serves index.html with the CSP and headers for /admin, its pages and /agents/authorize', async () => {
    const pages = [
      '/admin',
      '/admin/',
      '/admin/registrations/abc',
      '/admin/a/b/c/d/e',
      '/agents/authorize?code=ABCD-EFGH',
    ];
    for (const path of pages) {
      const r = await fetch(`${s.t.url}${path}`);
      expect(r.status, path).toBe(200);
      expect(r.headers.get('content-type')).toMatch(/^text\/html/);
      expect(r.headers.get('content-security-policy')).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
          "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
      );
      expect(r.headers.get('x-content-type-options')).toBe('nosniff');
      expect(r.headers.get('x-frame-options')).toBe('DENY');
      expect(r.headers.get('referrer-policy')).toBe('no-referrer');
      const html = await r.text();
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/i);
    }
    const js = await fetch(`${s.t.url}/admin/assets/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await js.text()).toBe('console.log(1);\n');
    // An asset opened by itself runs nothing on this origin.
    expect(js.headers.get('content-security-policy')).toBe("default-src 'none'");
    // A missing asset, however deep, is 404 (never the page); other methods on a page path are 405.
    for (const path of ['/admin/assets/x/y/z.js', '/admin/assets/a/b']) {
      const r = await fetch(`${s.t.url}${path}`);
      expect(r.status, path).toBe(404);
      expect(((await r.json()) as { error: string }).error).toBe('not_found');
    }
    expect((await fetch(`${s.t.url}/admin/a/b/c/d`, { method: 'POST' })).status).toBe(405);
  });

  it('signing in needs a JSON body: a form post (text/plain, urlencoded) is 400 and opens no session', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', '']) {
      const token = await loginToken(s);
      const headers: Record<string, string> = type ? { 'Content-Type': type } : {};
      const r = await fetch(`${s.t.url}/v1/console/session`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ token }),
      });
      expect(r.status, type).toBe(400);
      expect(r.headers.get('set-cookie'), type).toBeNull();
      // The link is not spent by the refused attempt.
      expect((await postSession(s, token)).status, type).toBe(201);
    }
  });

  it('refuses paths outside assets/', async () => {
    for (const path of [
      '/admin/assets/..%2Fsecret.txt',
      '/admin/assets/%2e%2e/secret.txt',
      '/admin/assets/..%2F..%2F..%2Fetc%2Fpasswd',
      '/admin/assets/%2e%2e',
      '/admin/assets/nope.js',
    ]) {
      // fetch itself resolves a literal %2e%2e segment (to /admin/secret.txt: a console page).
      const r = await fetch(`${s.t.url}${path}`);
      const text = await r.text();
      expect(text, path).not.toContain('not served');
      if (r.status !== 404) expect(text, path).toContain('<!doctype html>');
    }
  });

  it('is 503 console_not_built when the console directory is missing', async () => {
    const t = await startTestServer({ consoleDir: join(tempDir(), 'none') });
    try {
      const r = await call('GET', `${t.url}/admin`);
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ error: 'console_not_built', message: expect.stringMatching(/npm run build/) });
    } finally {
      await t.close();
    }
  });
});
