// The bash agent CLI and Agent Identity (AID): amp-register.sh on a provider in approval mode files
// the agent's AID registration and prints the user code; amp-send.sh is refused until an admin
// approves (over the AID admin HTTP API, with an admin JWT minted from the server's keys);
// amp-identity.sh request/status/token against a real server in approval and open mode, the token
// verified against the server's JWKS with jose; and AID JSON bodies sent by `curl -d` (which labels
// them form-urlencoded) read as JSON, as on the AMP routes. The README's blocks run as written, in a
// temp HOME with scripts/ on PATH; the only adaptation is localhost:23000 -> the test server's port.

import { execFile, spawn } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { cpSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { adminToken, issuerOf, tokenProof } from '../helpers/aid.js';
import { readmeBlock } from '../helpers/readme.js';
import { call, ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';

const PROC_TIMEOUT_MS = 20_000;
const TENANT = 'acme';
const PATH = `${join(ROOT, 'scripts')}:${process.env.PATH ?? ''}`;
const USER_CODE_RE = /user code ([A-HJ-KM-NP-Z2-9]{4}-[A-HJ-KM-NP-Z2-9]{4})\b/;

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

function done(resolve: (r: Run) => void) {
  return (err: Error | null, stdout: string | Buffer, stderr: string | Buffer) => {
    const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: string | null }) | null;
    const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
    resolve({ code, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr) });
  };
}

const procOpts = (home: string) => ({
  env: { PATH, HOME: home },
  cwd: home,
  timeout: PROC_TIMEOUT_MS,
  killSignal: 'SIGKILL' as const,
});

/** One CLI script as its own process with only PATH and HOME; never throws on a non-zero exit. */
const cli = (home: string, script: string, args: string[] = []): Promise<Run> =>
  new Promise((resolve) => execFile('bash', [join(ROOT, 'scripts', script), ...args], procOpts(home), done(resolve)));

/** A README block, as written but for the provider's port, run by bash in `home`. */
const readmeRun = (home: string, id: string, port: number): Promise<Run> =>
  new Promise((resolve) =>
    execFile(
      'bash',
      ['-c', readmeBlock(id).replaceAll('localhost:23000', `localhost:${port}`)],
      procOpts(home),
      done(resolve),
    ),
  );

/** curl with arguments (never a shell), for the bodies the CLI does not send. */
const curl = (args: string[]): Promise<Run> =>
  new Promise((resolve) =>
    execFile('curl', ['-sS', '-w', '\n%{http_code}', ...args], { timeout: PROC_TIMEOUT_MS }, done(resolve)),
  );

async function curlJson(args: string[]): Promise<{ status: number; body: any }> {
  const r = await curl(args);
  expect(r.code, r.stderr).toBe(0);
  const nl = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(nl + 1)), body: JSON.parse(r.stdout.slice(0, nl)) };
}

function expectExit(r: Run, code: number): void {
  expect({ code: r.code, signal: r.signal, stderr: r.stderr }, `stdout: ${r.stdout}`).toMatchObject({
    code,
    signal: null,
  });
}

const agentDir = (home: string, name: string) => join(home, '.agent-messaging', 'agents', name);
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
const identityOf = (home: string, name: string) => readJson(join(agentDir(home, name), 'identity.json'));
const configOf = (home: string, name: string) => readJson(join(agentDir(home, name), 'config.json'));
const apiKeyOf = (home: string, name: string) => readFileSync(join(agentDir(home, name), 'api_key'), 'utf8').trim();
const mode = (p: string) => statSync(p).mode & 0o777;

let approval: TestServer; // AMP_REGISTRATION_MODE=approval
let open: TestServer; // the default, open
const temps: string[] = [];
function home(prefix: string): string {
  const d = tempDir(`amp-aid-cli-${prefix}-`);
  temps.push(d);
  return d;
}

/** An admin call on the tenant's AID registrations, with an admin JWT minted from the server's keys. */
async function admin(t: TestServer, method: string, path: string, json?: unknown) {
  const token = await adminToken(t, { tenant: TENANT, scopes: ['agent_registrations:write'] });
  return call(method, `${t.url}/${TENANT}/agent_registrations${path}`, {
    headers: { Authorization: `Bearer ${token}` },
    json,
  });
}

async function approve(t: TestServer, id: string): Promise<void> {
  const r = await admin(t, 'POST', `/${id}/approve`);
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  expect(r.body.data.attributes.status).toBe('active');
}

/** The access token verified against the server's JWKS; its claims. */
async function verifiedClaims(t: TestServer, jwt: string) {
  const issuer = issuerOf(t, TENANT);
  const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${t.url}/${TENANT}/.well-known/jwks.json`)), {
    issuer,
    audience: issuer,
    algorithms: ['RS256'],
  });
  return payload;
}

/** amp-register.sh in a new HOME; the HOME. */
async function registered(t: TestServer, name: string): Promise<{ h: string; r: Run }> {
  const h = home(name);
  const r = await cli(h, 'amp-register.sh', ['-n', name, '-p', t.url, '-t', TENANT]);
  expectExit(r, 0);
  return { h, r };
}

setupOrFailEveryTest(async () => {
  approval = await startTestServer({ registrationMode: 'approval', rateLimits: 'off' });
  open = await startTestServer({ rateLimits: 'off' });
});

afterAll(async () => {
  await approval?.close();
  await open?.close();
  for (const d of temps) rmSync(d, { recursive: true, force: true });
});

describe('approval mode: amp-register.sh files the AID registration; sending waits for the admin', () => {
  let h: string; // my-agent's HOME (the README's agent)
  let id: string;
  let userCode: string;
  let registerOutput: string; // what the README's register block printed

  it("README cli-approval-register: registers, files the request, prints the user code and the admin's commands", async () => {
    h = home('readme');
    const r = await readmeRun(h, 'cli-approval-register', approval.server.port);
    expectExit(r, 0);
    registerOutput = r.stderr;
    expect(r.stderr).toContain('Registered my-agent@acme.aimaestro.local');
    expect(r.stdout).toContain('exit 8: still pending'); // amp-identity.sh status while pending
    userCode = USER_CODE_RE.exec(r.stderr)?.[1] ?? '';
    expect(userCode, r.stderr).not.toBe('');

    const file = join(agentDir(h, 'my-agent'), 'identity.json');
    expect(mode(file)).toBe(0o600);
    const rec = identityOf(h, 'my-agent');
    id = rec.registration_id;
    expect(rec).toMatchObject({ tenant: TENANT, status: 'pending', user_code: userCode, issuer: issuerOf(approval) });
    expect(r.stderr).toContain(`amp-relay admin registrations approve ${id} --tenant ${TENANT}`);

    // The admin sees it: in the pending list, and by the user code the agent's human passes on.
    const list = await admin(approval, 'GET', '?status=pending');
    expect(list.status).toBe(200);
    expect(list.body.data.map((d: { id: string }) => d.id)).toEqual([id]);
    const byCode = await admin(approval, 'GET', `/resolve?code=${userCode}`);
    expect(byCode.status).toBe(200);
    expect(byCode.body.data.id).toBe(id);
    expect(byCode.body.data.attributes).toMatchObject({
      status: 'pending',
      address: 'my-agent@acme.aimaestro.local',
      fingerprint: configOf(h, 'my-agent').fingerprint,
      amp_agent_id: configOf(h, 'my-agent').agent_id,
      registration_method: 'agent_initiated',
    });
  });

  it('README cli-approval-output: the lines the README shows are the lines printed (ids, code, time and port aside)', async () => {
    const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const lines = readmeBlock('cli-approval-output').trimEnd().split('\n');
    expect(lines.length).toBeGreaterThan(4);
    for (const line of lines) {
      const re = esc(line)
        .replaceAll('4e6aa83e-…', '[0-9a-f-]{36}')
        .replace('ABCD-2345', '[A-Z2-9]{4}-[A-Z2-9]{4}')
        .replace('2026-12-04T10:00:00Z', '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ')
        .replace('localhost:23000', `localhost:${approval.server.port}`);
      expect(registerOutput).toMatch(new RegExp(`^${re}$`, 'm'));
    }
  });

  it('amp-send.sh is refused (403 from the provider; exit 8 with the reason) while the registration is pending', async () => {
    const peer = await registered(approval, 'peer');
    const r = await cli(h, 'amp-send.sh', ['peer', 'Hello', 'Still waiting?']);
    expectExit(r, 8);
    expect(r.stderr).toContain("awaits an admin's approval");
    expect(r.stderr).toContain('amp-identity.sh');
    // What the provider answered the script: 403.
    const raw = await call('POST', `${approval.api}/route`, {
      key: apiKeyOf(h, 'my-agent'),
      json: { to: 'peer', subject: 'x', payload: { type: 'request', message: 'x' } },
    });
    expect(raw.status).toBe(403);
    // amp-identity.sh token says pending too; amp-status.sh shows the status and where to look.
    expectExit(await cli(h, 'amp-identity.sh', ['token']), 8);
    const st = await cli(h, 'amp-status.sh');
    expectExit(st, 0);
    expect(st.stderr).toMatch(/^Status: +pending$/m);
    expect(st.stderr).toContain('amp-identity.sh -a my-agent status');
    expect(peer.r.stderr).toMatch(USER_CODE_RE);
  });

  it('after the admin approves: amp-send.sh works; README cli-approval-token: status active, a token that verifies', async () => {
    await approve(approval, id);
    const sent = await cli(h, 'amp-send.sh', ['--json', 'peer', 'Hello', 'Approved now']);
    expectExit(sent, 0);
    expect(JSON.parse(sent.stdout).id).toMatch(/^msg_\d+_[a-zA-Z0-9]+$/);

    const r = await readmeRun(h, 'cli-approval-token', approval.server.port);
    expectExit(r, 0);
    expect(r.stderr).toContain('my-agent@acme.aimaestro.local: active (role agent)');
    const [answer, claims] = r.stdout
      .trim()
      .split(/\n(?=\{)/)
      .map((s) => JSON.parse(s));
    expect(answer).toEqual({
      agent_address: 'my-agent@acme.aimaestro.local',
      scope: 'agent:identity',
      expires_in: 3600,
    });
    expect(claims).toEqual({
      iss: issuerOf(approval),
      sub: `agent:${id}`,
      agent_address: 'my-agent@acme.aimaestro.local',
    });

    // The token the script keeps, checked against the JWKS.
    const tok = await cli(h, 'amp-identity.sh', ['token']);
    expectExit(tok, 0);
    const payload = await verifiedClaims(approval, tok.stdout.trim());
    expect(payload).toMatchObject({
      sub: `agent:${id}`,
      agent_address: 'my-agent@acme.aimaestro.local',
      agent_fingerprint: configOf(h, 'my-agent').fingerprint,
      token_type: 'agent',
      company_url_id: TENANT,
      scopes: ['agent:identity'],
    });
    expect(mode(join(agentDir(h, 'my-agent'), 'identity-token.json'))).toBe(0o600);
  });

  it('token: reused while valid; --new gets another (a new proof, a new jti); --json is the whole answer', async () => {
    const a = await cli(h, 'amp-identity.sh', ['token']);
    const b = await cli(h, 'amp-identity.sh', ['token']);
    expectExit(a, 0);
    expect(b.stdout).toBe(a.stdout);
    const c = await cli(h, 'amp-identity.sh', ['token', '--new']);
    expectExit(c, 0);
    expect(c.stdout).not.toBe(a.stdout);
    const [ca, cc] = [await verifiedClaims(approval, a.stdout.trim()), await verifiedClaims(approval, c.stdout.trim())];
    expect(cc.jti).not.toBe(ca.jti);
    // Back to back: the second proof would repeat the first within one second (Ed25519 is
    // deterministic) and be refused as a replay; the script waits for the next second instead.
    const d = await cli(h, 'amp-identity.sh', ['token', '--new']);
    expectExit(d, 0);
    expect(d.stdout).not.toBe(c.stdout);
    const j = await cli(h, 'amp-identity.sh', ['token', '--json']);
    expectExit(j, 0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      access_token: d.stdout.trim(),
      token_type: 'Bearer',
      agent_id: id,
      credential_type: 'access_token',
    });
    expect(j.stderr).toBe('');
  });

  it('amp-register.sh --json in approval mode: the registration plus its status and the filed request', async () => {
    const hj = home('json');
    const r = await cli(hj, 'amp-register.sh', ['--json', '-n', 'jsoner', '-p', approval.url, '-t', TENANT]);
    expectExit(r, 0);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({
      address: 'jsoner@acme.aimaestro.local',
      api_key: apiKeyOf(hj, 'jsoner'),
      status: 'pending',
      identity: identityOf(hj, 'jsoner'),
    });
    expect(out.identity).toMatchObject({ status: 'pending', registration_id: expect.any(String) });
    expect(out.identity.user_code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}$/);
  });

  it('status --wait polls at the interval until the admin approves, then exits 0', async () => {
    const { h: hw } = await registered(approval, 'waiter');
    const child = spawn('bash', [join(ROOT, 'scripts', 'amp-identity.sh'), 'status', '--wait', '60'], {
      env: { PATH, HOME: hw },
      cwd: hw,
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), PROC_TIMEOUT_MS);
    let stderr = '';
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      child.stderr.on('data', (d) => {
        stderr += String(d);
        if (stderr.includes('pending')) resolve();
      });
      child.on('exit', () => reject(new Error(`exited before saying pending: ${stderr}`)));
    });
    await approve(approval, identityOf(hw, 'waiter').registration_id);
    const code = await exited;
    clearTimeout(killer);
    expect(code, stderr).toBe(0);
    expect(stderr).toContain('waiter@acme.aimaestro.local: active');
    expect(identityOf(hw, 'waiter').status).toBe('active');
  }, 30_000);

  it('rejected: status exits 1 with the reason, token is refused, request files anew', async () => {
    const { h: hr } = await registered(approval, 'rejected-one');
    const first = identityOf(hr, 'rejected-one').registration_id;
    const rej = await admin(approval, 'POST', `/${first}/reject`, { reason: 'unknown agent' });
    expect(rej.status).toBe(200);
    const s = await cli(hr, 'amp-identity.sh', ['status']);
    expectExit(s, 1);
    expect(s.stderr).toContain('rejected by an admin (unknown agent)');
    const t = await cli(hr, 'amp-identity.sh', ['token']);
    expectExit(t, 1);
    expect(t.stderr).toContain('amp-identity.sh request');
    const again = await cli(hr, 'amp-identity.sh', ['request', '--json']);
    expectExit(again, 0);
    const rec = JSON.parse(again.stdout);
    expect(rec.status).toBe('pending');
    expect(rec.registration_id).not.toBe(first);
    expect(rec.user_code).toMatch(/^[A-Z2-9]{4}-[A-Z2-9]{4}$/);
  });
});

describe('open mode: amp-identity.sh request, status, token', () => {
  let h: string;
  let id: string;

  it('amp-register.sh files nothing on an open provider; the agent sends at once', async () => {
    const reg = await registered(open, 'opener');
    h = reg.h;
    expect(reg.r.stderr).not.toMatch(/pending|user code/);
    expect(() => identityOf(h, 'opener')).toThrow();
    expectExit(await cli(h, 'amp-send.sh', ['opener', 'Note to self', 'hi']), 0);
    const list = await admin(open, 'GET', '');
    expect(list.body.data).toEqual([]);
  });

  it('token before any request: exit 1, says to file one; status: exit 5', async () => {
    const t = await cli(h, 'amp-identity.sh', ['token']);
    expectExit(t, 1);
    expect(t.stderr).toContain('amp-identity.sh request');
    const s = await cli(h, 'amp-identity.sh', ['status']);
    expectExit(s, 5);
    expect(s.stderr).toContain('amp-identity.sh request');
  });

  it('request files once (a second request only shows it); status pending (8), then active (0); token verifies', async () => {
    const r = await cli(h, 'amp-identity.sh', ['request', '--description', 'Notes to itself']);
    expectExit(r, 0);
    const code = USER_CODE_RE.exec(r.stderr)?.[1];
    expect(code, r.stderr).toBeDefined();
    id = identityOf(h, 'opener').registration_id;
    const again = await cli(h, 'amp-identity.sh', ['request']);
    expectExit(again, 0);
    expect(again.stderr).toContain('is on record');
    const list = await admin(open, 'GET', '');
    expect(list.body.data.map((d: { id: string }) => d.id)).toEqual([id]);
    expect(list.body.data[0].attributes.description).toBe('Notes to itself');

    const pending = await cli(h, 'amp-identity.sh', ['status', '--json']);
    expectExit(pending, 8);
    expect(JSON.parse(pending.stdout)).toMatchObject({ error: 'authorization_pending', status: 'pending' });

    await approve(open, id);
    // One poll per interval (5 s): a poll this soon is answered slow_down, and the script says so.
    // Exit 9, not 1: the status is unknown, not a refusal.
    const tooSoon = await cli(h, 'amp-identity.sh', ['status']);
    expectExit(tooSoon, 9);
    expect(tooSoon.stderr).toContain('polled too soon');
    // --wait shorter than the interval the provider now asks for still waits it out once, then reports.
    const waited = await cli(h, 'amp-identity.sh', ['status', '--wait', '1']);
    expectExit(waited, 0);
    expect(waited.stderr).toContain('active');

    const tok = await cli(h, 'amp-identity.sh', ['token', '--json']);
    expectExit(tok, 0);
    const answer = JSON.parse(tok.stdout);
    expect(answer).toMatchObject({
      agent_address: 'opener@acme.aimaestro.local',
      agent_id: id,
      scope: 'agent:identity',
    });
    expect(await verifiedClaims(open, answer.access_token)).toMatchObject({ sub: `agent:${id}`, role_id: 1 });
  });

  it("a provider's slow_down interval is data, never code: a $(...) in it is not run; exit 9, bounded", async () => {
    const marker = join(home('pwn'), 'pwned');
    // A proxy in front of the real server (Host passed on, so the URLs it gives out name the proxy)
    // that answers every status poll with a hostile slow_down.
    const proxy = createHttpServer((req, res) => {
      if (req.method === 'POST' && req.url?.endsWith('/status')) {
        req.resume();
        res.writeHead(429, { 'Content-Type': 'application/json' });
        const interval = `BASH_VERSINFO[$(touch ${marker})0]`;
        return res.end(JSON.stringify({ error: 'slow_down', error_description: 'slow down', interval }));
      }
      const up = httpRequest(`${open.url}${req.url}`, { method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      req.pipe(up);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const via = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      const h = home('hostile');
      expectExit(await cli(h, 'amp-register.sh', ['-n', 'hostile', '-p', via, '-t', TENANT]), 0);
      expectExit(await cli(h, 'amp-identity.sh', ['request']), 0);
      const r = await cli(h, 'amp-identity.sh', ['status']);
      expectExit(r, 9);
      expect(existsSync(marker)).toBe(false);
      // With --wait: the bad interval counts as 5 s, waited out once, then the answer is reported.
      const w = await cli(h, 'amp-identity.sh', ['status', '--wait', '1']);
      expectExit(w, 9);
      expect(existsSync(marker)).toBe(false);
    } finally {
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it('an unreachable provider: exit 3, naming its base URL (not the AID route)', async () => {
    const hu = home('unreachable');
    const dir = agentDir(hu, 'opener');
    cpSync(agentDir(h, 'opener'), dir, { recursive: true });
    const dead = 'http://127.0.0.1:1';
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ ...configOf(h, 'opener'), provider_url: dead, endpoint: `${dead}/api/v1` }),
    );
    const runs = [
      await cli(hu, 'amp-identity.sh', ['request', '--force']),
      await cli(hu, 'amp-identity.sh', ['status']),
    ];
    rmSync(join(dir, 'identity.json')); // else the token goes to the token endpoint on record
    runs.push(await cli(hu, 'amp-identity.sh', ['token', '--new']));
    for (const r of runs) {
      expectExit(r, 3);
      expect(r.stderr).toContain(`Provider not found: cannot reach ${dead} `);
    }
  });

  it('usage errors exit 2; --help exits 0', async () => {
    for (const args of [
      [],
      ['frobnicate'],
      ['status', '--wait', 'soon'],
      ['token', '--audience', 'not a url'],
      ['a', 'b'],
    ]) {
      const r = await cli(h, 'amp-identity.sh', args);
      expectExit(r, 2);
      expect(r.stderr).toContain('--help');
    }
    const help = await cli(h, 'amp-identity.sh', ['--help']);
    expectExit(help, 0);
    expect(help.stdout).toMatch(/request[\s\S]*status[\s\S]*token/);
    expectExit(await cli(h, 'amp-identity.sh', ['-a', 'nobody', 'status']), 6);
  });
});

describe('AID bodies sent by curl -d (labelled form-urlencoded) are read as JSON, as on the AMP routes', () => {
  it('registration request, status poll, approval and token exchange with JSON bodies and no JSON content type', async () => {
    const { h } = await registered(open, 'curler');
    const cfg = configOf(h, 'curler');
    const publicPem = readFileSync(join(agentDir(h, 'curler'), 'keys', 'public.pem'), 'utf8');
    const base = `${open.url}/${TENANT}`;
    const req = await curlJson([
      '-X',
      'POST',
      `${base}/agent_registrations/request`,
      '-H',
      `X-Api-Key: ${apiKeyOf(h, 'curler')}`,
      '-d',
      JSON.stringify({ name: 'curler', address: cfg.address, fingerprint: cfg.fingerprint, public_key: publicPem }),
    ]);
    expect(req.status, JSON.stringify(req.body)).toBe(202);
    const regId = req.body.data.id;

    const poll = await curlJson([
      '-X',
      'POST',
      `${base}/agent_registrations/${regId}/status`,
      '-d',
      JSON.stringify({ fingerprint: cfg.fingerprint }),
    ]);
    expect(poll.status, JSON.stringify(poll.body)).toBe(200);
    expect(poll.body).toMatchObject({ status: 'pending' });

    const token = await adminToken(open, { tenant: TENANT });
    const ok = await curlJson([
      '-X',
      'POST',
      `${base}/agent_registrations/${regId}/reject`,
      '-H',
      `Authorization: Bearer ${token}`,
      '-d',
      JSON.stringify({ reason: 'sent by curl -d' }),
    ]);
    expect(ok.status).toBe(200);
    expect(ok.body.data.attributes.rejection_reason).toBe('sent by curl -d');

    // The token endpoint takes JSON by curl -d too (rejected: agent_not_registered, so the body was
    // read: an unread one is 400 invalid_request), and its RFC form still works.
    const key = createPrivateKey(readFileSync(join(agentDir(h, 'curler'), 'keys', 'private.pem')));
    const fields = { grant_type: 'urn:aid:agent-identity', fingerprint: cfg.fingerprint };
    const asJson = await curlJson([
      '-X',
      'POST',
      `${base}/oauth/token`,
      '-d',
      JSON.stringify({ ...fields, proof: tokenProof(key, issuerOf(open)) }),
    ]);
    expect(asJson.body.error, JSON.stringify(asJson.body)).toBe('agent_not_registered');
    const asForm = await curlJson([
      '-X',
      'POST',
      `${base}/oauth/token`,
      '-d',
      new URLSearchParams({ ...fields, proof: tokenProof(key, issuerOf(open)) }).toString(),
    ]);
    expect(asForm.body.error, JSON.stringify(asForm.body)).toBe('agent_not_registered');
    // Introspection too: a JSON body by curl -d is read (an unread one would be 400, token is required).
    const intro = await curlJson([
      '-X',
      'POST',
      `${base}/oauth/introspect`,
      '-H',
      `X-Api-Key: ${apiKeyOf(h, 'curler')}`,
      '-d',
      JSON.stringify({ token: 'not.a.jwt' }),
    ]);
    expect(intro).toEqual({ status: 200, body: { active: false, reason: 'invalid_token' } });
  });
});
