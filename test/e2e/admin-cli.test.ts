// `amp-relay admin` as an operator runs it: the built CLI as its own process against the server run
// as a child process (`amp-relay serve`) on a temp data dir, configured as the server is (AMP_PORT,
// AMP_DATA_DIR). Every subcommand with --json and as a table, the README's "Admin CLI" blocks as
// written, and the failures with their exit codes (1 refused, 2 usage, 3 unreachable,
// 4 unauthorized, 5 unknown id or tenant).

import { execFile, execFileSync } from 'node:child_process';
import { chownSync, copyFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http';
import { type AddressInfo, createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { lookup } from 'node:dns/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { KEY_FILE, SigningKeys } from '../../src/identity/signing-keys.js';
import { readmeBlock } from '../helpers/readme.js';
import {
  type ChildServer,
  call,
  type Registered,
  ROOT,
  register,
  routeOk,
  spawnServer,
  startTestServer,
  tempDir,
} from '../helpers/server.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { makeCert } from '../helpers/tls.js';

const PROC_TIMEOUT_MS = 60_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(cmd: string, args: string[], env: Record<string, string>, cwd = ROOT): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { cwd, env, timeout: PROC_TIMEOUT_MS, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const c = (err as { code?: unknown } | null)?.code;
      resolve({ code: err ? (typeof c === 'number' ? c : null) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

let server: ChildServer;
let dataDir: string;
let home: string;
let port: string;
const extraDirs: string[] = [];
let alice: Registered;
let bob: Registered;
let zed: Registered;
let ann: Registered;

/** The server's settings, as an operator's shell on its machine has them. */
const serverEnv = () => ({ PATH: process.env.PATH ?? '', HOME: home, AMP_PORT: port, AMP_DATA_DIR: dataDir });

/** `amp-relay admin ...` with the server's settings. */
const admin = (...args: string[]) =>
  exec(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), 'admin', ...args], serverEnv());

/** `amp-relay admin ...` with the server's settings, some changed or added. */
const adminWith = (env: Record<string, string>, ...args: string[]) =>
  exec(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), 'admin', ...args], { ...serverEnv(), ...env });

/** `admin ... --json`, which must succeed; its parsed output. */
async function adminJson(...args: string[]): Promise<any> {
  const r = await admin(...args, '--json');
  expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(0);
  return JSON.parse(r.stdout);
}

async function requestRegistration(a: Registered): Promise<string> {
  return (await requestRegistrationAnswer(a)).id;
}

/** The request's answer (`data`): id and the user code among its attributes. */
async function requestRegistrationAnswer(a: Registered): Promise<any> {
  const r = await call('POST', `${server.url}/${a.tenant}/agent_registrations/request`, {
    headers: { 'X-Api-Key': a.api_key },
    json: { name: a.name, address: a.address, fingerprint: a.body.fingerprint, public_key: a.keys.publicPem },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.data;
}

/** A loopback port nothing listens on: one the OS gave us, closed again. */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port: p } = srv.address() as AddressInfo;
      srv.close(() => resolve(p));
    });
  });
}

/** `amp-relay admin-token` for tenant default, as if the server listened on `onPort`. */
async function mintedToken(scopes: string, onPort: string): Promise<string> {
  const args = ['admin-token', '--email', 'a@b.c', '--tenant', 'default', '--scopes', scopes];
  const r = await exec(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), ...args], {
    ...serverEnv(),
    AMP_PORT: onPort,
  });
  expect(r.code, r.stderr).toBe(0);
  return r.stdout.trim();
}

// Root with unshare and mount (else skipped, saying so): /etc/hosts replaced, for the CLI only, by
// one where localhost is ::1 first, as on most systems (this machine's /etc/hosts has no ::1).
const unshare = (() => {
  try {
    execFileSync('unshare', ['-m', 'sh', '-c', 'mount --bind /etc/hosts /etc/hosts'], { stdio: 'ignore' });
    return true;
  } catch {
    console.warn('skipped: unshare -m / mount --bind not available here (needs root)');
    return false;
  }
})();

/** `amp-relay admin ...` in a mount namespace where /etc/hosts says localhost is ::1 first, checked. */
async function adminV6First(dir: string, env: Record<string, string>, ...args: string[]): Promise<Run> {
  const hosts = join(dir, 'hosts');
  writeFileSync(hosts, '::1 localhost ip6-localhost\n127.0.0.1 localhost\n');
  const script = `mount --bind ${hosts} /etc/hosts && exec "$@"`;
  const all = { ...serverEnv(), ...env };
  const seen = await exec('unshare', ['-m', 'sh', '-c', script, 'sh', 'getent', 'ahosts', 'localhost'], all);
  expect(seen.stdout.split('\n')[0]).toMatch(/^::1\s/);
  const cli = [process.execPath, join(ROOT, 'bin', 'amp-relay.js'), 'admin', ...args];
  return exec('unshare', ['-m', 'sh', '-c', script, 'sh', ...cli], all);
}

setupOrFailEveryTest(async () => {
  const built = await exec(process.execPath, [join(ROOT, 'scripts', 'ensure-built.mjs')], {
    PATH: process.env.PATH ?? '',
  });
  if (built.code !== 0) throw new Error(`build failed: ${built.stderr}`);
  dataDir = tempDir('amp-admin-cli-');
  home = tempDir('amp-admin-home-');
  server = await spawnServer(dataDir);
  port = new URL(server.url).port;
  alice = await register(server.api, 'alice');
  bob = await register(server.api, 'bob');
  zed = await register(server.api, 'zed');
  ann = await register(server.api, 'ann', 'acme');
  for (const i of [1, 2])
    await routeOk(server.api, alice, { to: 'bob', subject: `s${i}`, payload: { type: 'notification', message: 'hi' } });
});

afterAll(async () => {
  await server?.stop();
  for (const d of [dataDir, home, ...extraDirs]) if (d) rmSync(d, { recursive: true, force: true });
});

describe('help and usage', () => {
  it('admin --help lists every command and the exit codes; each command has its own help', async () => {
    const r = await admin('--help');
    expect(r.code).toBe(0);
    for (const c of ['registrations list', 'registrations approve ID', 'agents suspend AGENT', 'queues', 'audit'])
      expect(r.stdout).toContain(c);
    expect(r.stdout).toMatch(
      /Exit codes: 0 ok; 1 .*; 2 .*; 3 server unreachable or its certificate not trusted;\s4 .*; 5 unknown id/s,
    );
    const s = await admin('agents', 'suspend', '--help');
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('--hours H');
    expect(s.stdout).not.toContain('registrations list');
    const group = await admin('registrations', '--help');
    expect(group.stdout).toContain('registrations reactivate ID');
  });

  it('usage mistakes exit 2 with a pointer to the help', async () => {
    for (const args of [
      [],
      ['bogus'],
      ['agents', 'suspend'],
      ['queues', 'extra'],
      ['queues', '--reason', 'x'],
      ['queues', '--nope'],
    ]) {
      const r = await admin(...args);
      expect(r.code, args.join(' ')).toBe(2);
    }
    const r = await admin('agents', 'suspend');
    expect(r.stderr).toContain("'agents suspend' needs one id");
    expect(r.stderr).toContain('amp-relay admin --help');
  });
});

describe('agents and queues', () => {
  it('agents list: JSON with queue depths, and a table', async () => {
    const body = await adminJson('agents', 'list');
    expect(body.tenant).toBe('default');
    const b = body.agents.find((a: any) => a.agent_id === bob.agent_id);
    expect(b).toMatchObject({ address: bob.address, status: 'active', suspended: false, queue_depth: 2 });
    const t = await admin('agents', 'list');
    expect(t.stdout.split('\n')[0]).toMatch(/^AGENT_ID\s+ADDRESS\s+STATUS\s+ONLINE\s+QUEUE\s+OLDEST\s+LAST_SEEN$/);
    expect(t.stdout).toMatch(new RegExp(`${bob.agent_id}\\s+${bob.address}\\s+active\\s+no\\s+2\\s+\\d{4}-`));
    expect(t.stdout).toContain('3 of 3 agent(s)');
  });

  it('agents show: one agent', async () => {
    expect(await adminJson('agents', 'show', bob.agent_id)).toMatchObject({ agent_id: bob.agent_id, queue_depth: 2 });
    const t = await admin('agents', 'show', bob.agent_id);
    expect(t.stdout).toMatch(/^agent id:\s+agt_/m);
    expect(t.stdout).toMatch(/^queue depth:\s+2$/m);
  });

  it('queues: totals, oldest, deepest first', async () => {
    const body = await adminJson('queues');
    expect(body).toMatchObject({ total_messages: 2, agents_with_messages: 1, complete: true });
    expect(body.agents[0]).toMatchObject({ agent_id: bob.agent_id, depth: 2 });
    const t = await admin('queues');
    expect(t.stdout).toMatch(/^2 message\(s\) queued for 1 agent\(s\) of default; oldest queued \d+s ago/);
    expect(t.stdout).toMatch(new RegExp(`^${bob.agent_id}\\s+${bob.address}\\s+2\\s+\\d+s\\s+\\d{4}-`, 'm'));
  });

  it('agents suspend and unsuspend', async () => {
    const s = await adminJson('agents', 'suspend', zed.agent_id, '--reason', 'spam', '--hours', '2');
    expect(s).toMatchObject({ agent_id: zed.agent_id, suspended: true });
    expect((await call('GET', `${server.api}/messages/pending`, { key: zed.api_key })).status).toBe(403);
    const shown = await admin('agents', 'show', zed.agent_id);
    expect(shown.stdout).toMatch(/^suspension:\s+spam by \S+@\S+ since/m);
    const u = await admin('agents', 'unsuspend', zed.agent_id);
    expect(u.code).toBe(0);
    expect(u.stdout).toBe(`${zed.agent_id}: not suspended\n`);
    expect((await call('GET', `${server.api}/messages/pending`, { key: zed.api_key })).status).toBe(200);
    const t = await admin('agents', 'suspend', zed.agent_id);
    expect(t.stdout).toBe(`${zed.agent_id}: suspended until unsuspended\n`);
    expect((await adminJson('agents', 'unsuspend', zed.agent_id)).suspended).toBe(false);
  });

  it("agents are named by id or by address; another tenant's address is unknown", async () => {
    expect(await adminJson('agents', 'show', zed.address)).toMatchObject({ agent_id: zed.agent_id });
    const s = await admin('agents', 'suspend', zed.address.toUpperCase());
    expect(s.stdout).toBe(`${zed.agent_id}: suspended until unsuspended\n`);
    expect((await adminJson('agents', 'unsuspend', zed.address)).suspended).toBe(false);
    const other = await admin('agents', 'suspend', ann.address);
    expect(other.code).toBe(5);
    expect(other.stderr).toContain('404 not_found: No such agent');
  });

  it('agents deregister asks for --yes, then deletes', async () => {
    const no = await admin('agents', 'deregister', zed.agent_id);
    expect(no.code).toBe(2);
    expect(no.stderr).toContain('--yes');
    expect((await call('GET', `${server.api}/agents/me`, { key: zed.api_key })).status).toBe(200);
    const r = await admin('agents', 'deregister', zed.agent_id, '--yes');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`${zed.agent_id}: ${zed.address} deregistered at`);
    expect((await call('GET', `${server.api}/agents/me`, { key: zed.api_key })).status).toBe(401);
    const gone = await admin('agents', 'show', zed.agent_id);
    expect(gone.code).toBe(5);
    expect(gone.stderr).toContain('404 not_found: No such agent');
  });
});

describe('registrations and audit', () => {
  it('list, show, approve, suspend, reactivate, reject', async () => {
    const aliceReg = await requestRegistration(alice);
    const list = await adminJson('registrations', 'list', '--status', 'pending');
    expect(list.data.map((r: any) => r.id)).toContain(aliceReg);
    const table = await admin('registrations', 'list', '--status', 'pending');
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+ADDRESS\s+STATUS\s+METHOD\s+CREATED$/);
    expect(table.stdout).toMatch(
      new RegExp(`^${aliceReg}\\s+alice\\s+${alice.address}\\s+pending\\s+agent_initiated`, 'm'),
    );
    expect((await adminJson('registrations', 'show', aliceReg)).data.attributes.status).toBe('pending');
    expect((await admin('registrations', 'show', aliceReg)).stdout).toMatch(/^status:\s+pending$/m);

    const approved = await admin('registrations', 'approve', aliceReg);
    expect(approved.stdout).toBe(`${aliceReg}: ${alice.address} is now active\n`);
    const suspended = await adminJson('registrations', 'suspend', aliceReg, '--reason', 'audit');
    expect(suspended.data.attributes).toMatchObject({ status: 'suspended', suspension_reason: 'audit' });
    expect((await admin('registrations', 'reactivate', aliceReg)).stdout).toContain('is now active');
    // A transition the state machine refuses: the server's words, exit 1.
    const again = await admin('registrations', 'approve', aliceReg);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/the server answered 4\d\d \w+: /);

    const annReg = await requestRegistration(ann);
    const rejected = await admin('registrations', 'reject', annReg, '--tenant', 'acme', '--reason', 'unknown agent');
    expect(rejected.stdout).toBe(`${annReg}: ${ann.address} is now rejected\n`);
  });

  it('audit: filtered by type and time, JSON and table', async () => {
    const body = await adminJson('audit', '--type', 'registration_approved,registration_suspended');
    expect(body.data.map((e: any) => e.attributes.event_type).sort()).toEqual([
      'registration_approved',
      'registration_suspended',
    ]);
    const t = await admin('audit', '--type', 'registration_approved');
    expect(t.stdout.split('\n')[0]).toMatch(/^TIME\s+EVENT\s+ACTOR\s+REGISTRATION\s+STATUS\s+REASON$/);
    expect(t.stdout).toMatch(/registration_approved\s+\S+@\S+\s+\S+\s+pending -> active/);
    const future = await adminJson('audit', '--since', new Date(Date.now() + 3600_000).toISOString());
    expect(future.data).toEqual([]);
    const bad = await admin('audit', '--type', 'nonsense');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('Unknown event_type: nonsense');
  });
});

describe('failures', () => {
  it('an unknown id or tenant exits 5', async () => {
    const agent = await admin('agents', 'suspend', 'agt_000000000000000000000000');
    expect(agent.code).toBe(5);
    const reg = await admin('registrations', 'show', '00000000-0000-4000-8000-000000000000');
    expect(reg.code).toBe(5);
    const tenant = await admin('registrations', 'list', '--tenant', 'nosuch');
    expect(tenant.code).toBe(5);
    expect(tenant.stderr).toContain("404 not_found: Unknown organisation 'nosuch'");
  });

  it('a server that does not answer exits 3', async () => {
    const closed = await closedPort();
    const r = await adminWith({ AMP_PORT: String(closed) }, 'queues');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain(`cannot reach the server at http://127.0.0.1:${closed} (ECONNREFUSED): is it running`);
  });

  it('a refused token exits 4 with the server message and a hint', async () => {
    const garbage = await admin('queues', '--token', 'not.a.jwt');
    expect(garbage.code).toBe(4);
    expect(garbage.stderr).toContain('401 unauthorized: The admin token is invalid or expired');
    expect(garbage.stderr).toContain('hint: --token is not a JWT');
    const noScope = await admin('queues', '--token', await mintedToken('agent_registrations:write', port));
    expect(noScope.code).toBe(4);
    expect(noScope.stderr).toContain('403 forbidden: The token lacks the amp:admin:read scope');
    expect(noScope.stderr).toContain('hint: the token may lack the scope(s) amp:admin');
    const wrongIssuer = await admin('queues', '--token', await mintedToken('amp:admin', '23000'));
    expect(wrongIssuer.code).toBe(4);
    expect(wrongIssuer.stderr).toContain(
      `the token's issuer is http://localhost:23000/default, this server's is http://localhost:${port}/default`,
    );
  });

  it("keys from another data dir exit 4 and say the data dir is not the server's; none exit 2", async () => {
    const other = tempDir();
    extraDirs.push(other);
    await SigningKeys.load(other, 'RS256');
    const r = await exec(
      process.execPath,
      [join(ROOT, 'bin', 'amp-relay.js'), 'admin', 'queues', '--data-dir', other],
      serverEnv(),
    );
    expect(r.code).toBe(4);
    expect(r.stderr).toMatch(
      /the server does not publish the signing key in .* is --data-dir \/ AMP_DATA_DIR this server's data dir\?/,
    );
    const empty = tempDir();
    extraDirs.push(empty);
    const e = await exec(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), 'admin', 'queues'], {
      ...serverEnv(),
      AMP_DATA_DIR: empty,
    });
    expect(e.code).toBe(2);
    expect(e.stderr).toContain(`no signing keys in ${empty}`);
  });
});

describe('where a minted token goes', () => {
  /** A server that answers discovery with the real server's issuer and records every request. */
  async function fakeServer(
    host = '127.0.0.1',
    onPort = 0,
    issuerBase = `http://localhost:${port}`,
  ): Promise<{ port: number; seen: IncomingHttpHeaders[]; close(): Promise<void> }> {
    const seen: IncomingHttpHeaders[] = [];
    const srv = createHttpServer((req, res) => {
      seen.push(req.headers);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      // 'self': the issuer a configuration naming this fake's own port derives (anyone can).
      const base = issuerBase === 'self' ? `http://localhost:${(srv.address() as AddressInfo).port}` : issuerBase;
      res.end(JSON.stringify({ issuer: `${base}/default`, agents: [], data: [] }));
    });
    await new Promise<void>((resolve, reject) => {
      srv.on('error', reject);
      srv.listen({ host, port: onPort, ipv6Only: host.includes(':') }, resolve);
    });
    return {
      port: (srv.address() as AddressInfo).port,
      seen,
      close: () => new Promise<void>((resolve) => srv.close(() => resolve())),
    };
  }

  it("--url not the server's by its configuration: exit 2, nothing sent", async () => {
    const fake = await fakeServer();
    try {
      const r = await admin('queues', '--url', `http://127.0.0.1:${fake.port}`);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--url http://127.0.0.1:${fake.port} is not one of this server's URLs`);
      expect(r.stderr).toContain(`a minted token goes only to 127.0.0.1:${port} (AMP_HOST, AMP_PORT)`);
      // A plain-http public URL gets no minted token; an https one would (its certificate names it).
      const pub = `http://127.0.0.1:${fake.port}`;
      const p = await adminWith({ AMP_PUBLIC_URL: pub }, 'queues');
      expect(p.code).toBe(2);
      expect(p.stderr).toContain('a plain-http public URL gets no minted token');
      // A host name in AMP_HOST: pinned when it resolves to one address (as localhost does in this
      // machine's /etc/hosts), refused when it resolves to several (below, with ::1 first).
      const single = (await lookup('localhost', { all: true })).length === 1;
      const named = await adminWith({ AMP_HOST: 'localhost' }, 'queues');
      if (single) expect(named.code, named.stderr).toBe(0);
      else expect(named.stderr).toContain('AMP_HOST=localhost resolves to');
      const byIp = await adminWith({ AMP_HOST: 'localhost' }, 'queues', '--url', `http://127.0.0.1:${port}`);
      if (single) expect(byIp.code, byIp.stderr).toBe(0);
      expect(r.stderr).toMatch(/AMP_PUBLIC_URL.*AMP_PORT.*--token-file or AMP_ADMIN_TOKEN/);
      expect(fake.seen.filter((h) => h.authorization)).toEqual([]);
    } finally {
      await fake.close();
    }
  });

  it("a server announcing another issuer than the configuration's: exit 2, no token sent", async () => {
    const fake = await fakeServer();
    try {
      // The CLI is told the server listens on the fake's port; the fake claims the real issuer.
      const r = await adminWith({ AMP_PORT: String(fake.port) }, 'queues');
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(
        `announces issuer http://localhost:${port}/default, this configuration gives http://localhost:${fake.port}/default`,
      );
      expect(fake.seen.length).toBeGreaterThan(0);
      expect(fake.seen.filter((h) => h.authorization)).toEqual([]);
    } finally {
      await fake.close();
    }
  });

  it('a fresh server (no agent yet) on AMP_HOST=::1 answers queues and agents list', async () => {
    const dir = tempDir('amp-admin-fresh-');
    extraDirs.push(dir);
    const fresh = await spawnServer(dir, ['--host', '::1']);
    try {
      const env = { AMP_HOST: '::1', AMP_PORT: new URL(fresh.url).port, AMP_DATA_DIR: dir };
      const q = await adminWith(env, 'queues');
      expect(q.code, q.stderr).toBe(0);
      expect(q.stdout).toBe('0 message(s) queued for 0 agent(s) of default\n');
      const a = await adminWith(env, 'agents', 'list', '--json');
      expect(a.code, a.stderr).toBe(0);
      expect(JSON.parse(a.stdout)).toMatchObject({ agents: [], total: 0 });
      // The tenant has no discovery document yet (404): the configuration's issuer is used.
      const u = await adminWith(env, 'queues', '--url', fresh.url);
      expect(u.code, u.stderr).toBe(0);
      // localhost resolves to 127.0.0.1 here, where a server on ::1 does not listen: the minted
      // token's connection goes to ::1 (the address AMP_HOST binds), not to a name lookup.
      const l = await adminWith(env, 'queues', '--url', `http://localhost:${env.AMP_PORT}`);
      expect(l.code, l.stderr).toBe(0);
      // Another port than AMP_PORT is not the server's.
      const other = await adminWith(env, 'queues', '--url', `http://localhost:${await closedPort()}`);
      expect(other.code).toBe(2);
      expect(other.stderr).toContain(`a minted token goes only to [::1]:${env.AMP_PORT} (AMP_HOST, AMP_PORT)`);
    } finally {
      await fresh.stop();
    }
  });

  it('[::1] at the port of a server on 127.0.0.1 or 0.0.0.0 gets nothing: the token goes to 127.0.0.1', async () => {
    // Anyone on this machine can listen there and announce the real issuer.
    const fake = await fakeServer('::1', Number(port));
    try {
      for (const host of ['127.0.0.1', '0.0.0.0'])
        for (const at of [`http://[::1]:${port}`, `http://localhost:${port}`]) {
          const r = await adminWith({ AMP_HOST: host }, 'queues', '--url', at);
          expect(r.code, r.stderr).toBe(0);
          expect(r.stdout).toMatch(/message\(s\) queued/);
        }
      expect(fake.seen).toEqual([]);
    } finally {
      await fake.close();
    }
  });

  it('a server on AMP_HOST=:: (dual-stack) is reached with the defaults, and at [::1]', async () => {
    const dir = tempDir('amp-admin-dual-');
    extraDirs.push(dir);
    const dual = await spawnServer(dir, ['--host', '::']);
    try {
      const env = { AMP_HOST: '::', AMP_PORT: new URL(dual.url).port, AMP_DATA_DIR: dir };
      const q = await adminWith(env, 'queues');
      expect(q.code, q.stderr).toBe(0);
      expect(q.stdout).toBe('0 message(s) queued for 0 agent(s) of default\n');
      const v6 = await adminWith(env, 'queues', '--url', `http://[::1]:${env.AMP_PORT}`);
      expect(v6.code, v6.stderr).toBe(0);
    } finally {
      await dual.stop();
    }
  });

  it.skipIf(!unshare)(
    'localhost resolving to ::1 first: a listener on [::1] gets no token (0.0.0.0 server)',
    async () => {
      const dir = tempDir('amp-admin-v4-');
      extraDirs.push(dir);
      const v4 = await spawnServer(dir, ['--host', '0.0.0.0']);
      const at = new URL(v4.url).port;
      // The rogue announces the issuer the CLI expects (anyone can derive it).
      const rogue = await fakeServer('::1', Number(at), `http://localhost:${at}`);
      try {
        const env = { AMP_DATA_DIR: dir, AMP_PORT: at, AMP_PUBLIC_URL: `http://localhost:${at}` };
        const r = await adminV6First(dir, env, 'queues');
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout).toBe('0 message(s) queued for 0 agent(s) of default\n');
        expect(rogue.seen.filter((h) => h.authorization)).toEqual([]);
      } finally {
        await rogue.close();
        await v4.stop();
      }
    },
  );

  it.skipIf(!unshare)(
    'AMP_HOST a name resolving to several addresses (localhost: ::1, 127.0.0.1): no minted token, exit 2',
    async () => {
      const dir = tempDir('amp-admin-named-');
      extraDirs.push(dir);
      const rogue = await fakeServer('127.0.0.1', 0, 'self');
      try {
        const env = { AMP_HOST: 'localhost', AMP_PORT: String(rogue.port) };
        const r = await adminV6First(dir, env, 'queues', '--url', `http://127.0.0.1:${rogue.port}`);
        expect(r.code, r.stderr).toBe(2);
        expect(r.stderr).toContain('AMP_HOST=localhost resolves to ::1, 127.0.0.1');
        const d = await adminV6First(dir, env, 'queues');
        expect(d.code, d.stderr).toBe(2);
        expect(rogue.seen.filter((h) => h.authorization)).toEqual([]);
      } finally {
        await rogue.close();
      }
    },
  );

  it('a redirect is not followed: exit 1 naming the Location, the body is not sent again', async () => {
    const seen: string[] = [];
    const srv = createHttpServer((req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ''}`);
      if (req.url?.startsWith('/elsewhere')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        return res.end(JSON.stringify({ agents: [], total: 0, data: [] }));
      }
      res.writeHead(307, { Location: '/elsewhere' });
      res.end();
    });
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    const at = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    try {
      const env = { AMP_ADMIN_TOKEN: 'tok' };
      const get = await adminWith(env, 'queues', '--url', at);
      expect(get.code, get.stdout).toBe(1);
      expect(get.stderr).toContain(`the server at ${at} answered 307, a redirect to ${at}/elsewhere; not followed`);
      const post = await adminWith(env, 'agents', 'suspend', 'agt_000000000000000000000000', '--url', at);
      expect(post.code, post.stdout).toBe(1);
      expect(seen.filter((r) => r.includes('/elsewhere'))).toEqual([]);
      expect(seen).toHaveLength(2);
      // A minted token's pinned connection does not follow one either (the discovery GET is redirected).
      const minted = await adminWith({ AMP_PORT: new URL(at).port }, 'queues');
      expect(minted.code, minted.stderr).toBe(1);
      expect(minted.stderr).toContain(`the server at ${at} answered 307, a redirect to ${at}/elsewhere; not followed`);
      expect(seen.filter((r) => r.includes('/elsewhere'))).toEqual([]);
    } finally {
      await new Promise<void>((resolve) => srv.close(() => resolve()));
    }
  });
});

describe('environments', () => {
  const setpriv = (() => {
    try {
      execFileSync('setpriv', ['--version'], { stdio: 'ignore' });
      return process.getuid?.() === 0;
    } catch {
      return false;
    }
  })();

  // docker --user / DynamicUser: a uid with no passwd entry (as root, setpriv runs the CLI as one).
  it.skipIf(!setpriv)('a uid without a passwd entry is named uid<N>@host', async () => {
    const keys = tempDir('amp-admin-uid-');
    extraDirs.push(keys);
    copyFileSync(join(dataDir, KEY_FILE), join(keys, KEY_FILE));
    for (const f of [keys, join(keys, KEY_FILE)]) chownSync(f, 54321, 54321);
    const uid = await register(server.api, 'uidtest');
    const args = [
      '--reuid=54321',
      '--regid=54321',
      '--clear-groups',
      process.execPath,
      join(ROOT, 'bin', 'amp-relay.js'),
    ];
    const env = { ...serverEnv(), HOME: keys, AMP_DATA_DIR: keys };
    const r = await exec('setpriv', [...args, 'admin', 'agents', 'suspend', uid.agent_id], env);
    expect(r.code, r.stderr).toBe(0);
    const shown = await adminJson('agents', 'show', uid.agent_id);
    expect(shown.suspension.by).toBe(`uid54321@${hostname()}`);
  });

  it('a self-signed TLS certificate: a hint naming NODE_EXTRA_CA_CERTS, exit 3; trusted with it', async () => {
    const dir = tempDir('amp-admin-tls-');
    extraDirs.push(dir);
    const { cert, key } = makeCert(dir, readmeBlock('tls-cert'));
    const tls = await startTestServer({ tlsCert: cert, tlsKey: key });
    try {
      const env = {
        AMP_HOST: '127.0.0.1',
        AMP_PORT: String(tls.server.port),
        AMP_DATA_DIR: tls.dataDir,
        AMP_TLS_CERT: cert,
        AMP_TLS_KEY: key,
      };
      const r = await adminWith(env, 'queues');
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(
        `the server's certificate is not trusted at https://127.0.0.1:${tls.server.port} (DEPTH_ZERO_SELF_SIGNED_CERT)`,
      );
      expect(r.stderr).toContain('NODE_EXTRA_CA_CERTS=cert.pem');
      const ok = await adminWith({ ...env, NODE_EXTRA_CA_CERTS: cert }, 'queues');
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toBe('0 message(s) queued for 0 agent(s) of default\n');
      // Also where localhost resolves to ::1 first (the server does not listen there).
      if (unshare) {
        const v6 = await adminV6First(dir, { ...env, NODE_EXTRA_CA_CERTS: cert }, 'queues');
        expect(v6.code, v6.stderr).toBe(0);
      }
    } finally {
      await tls.close();
    }
  });

  it('TLS on the default host (0.0.0.0) with a localhost certificate: the defaults work', async () => {
    const dir = tempDir('amp-admin-tls0-');
    extraDirs.push(dir);
    const { cert, key } = makeCert(dir, readmeBlock('tls-cert'));
    const tls = await startTestServer({ host: '0.0.0.0', tlsCert: cert, tlsKey: key });
    try {
      // No AMP_HOST: https://localhost:<port>, connected to 127.0.0.1, the certificate checked for localhost.
      const env = {
        AMP_PORT: String(tls.server.port),
        AMP_DATA_DIR: tls.dataDir,
        AMP_TLS_CERT: cert,
        AMP_TLS_KEY: key,
      };
      const ok = await adminWith({ ...env, NODE_EXTRA_CA_CERTS: cert }, 'queues');
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toBe('0 message(s) queued for 0 agent(s) of default\n');
      // Also where localhost resolves to ::1 first (the server does not listen there).
      if (unshare) {
        const v6 = await adminV6First(dir, { ...env, NODE_EXTRA_CA_CERTS: cert }, 'queues');
        expect(v6.code, v6.stderr).toBe(0);
      }
    } finally {
      await tls.close();
    }
  });

  it('admin --help documents NODE_EXTRA_CA_CERTS, --token-file and AMP_ADMIN_TOKEN', async () => {
    const r = await admin('--help');
    expect(r.stdout).toContain('NODE_EXTRA_CA_CERTS=cert.pem amp-relay admin');
    expect(r.stdout).toMatch(/--token-file FILE .*AMP_ADMIN_TOKEN/s);
  });
});

describe('command line', () => {
  it('checks the command line before contacting the server', async () => {
    const closed = String(await closedPort());
    const dereg = await adminWith({ AMP_PORT: closed }, 'agents', 'deregister', bob.agent_id);
    expect(dereg.code).toBe(2);
    expect(dereg.stderr).toContain('add --yes to confirm');
    const status = await adminWith({ AMP_PORT: closed }, 'registrations', 'list', '--status', 'bogus');
    expect(status.code).toBe(2);
    expect(status.stderr).toContain(
      "--status must be one of pending, active, rejected, suspended, deleted (got 'bogus')",
    );
    const hours = await adminWith({ AMP_PORT: closed }, 'agents', 'suspend', bob.agent_id, '--hours', 'x');
    expect(hours.code).toBe(2);
    const ftp = await admin('queues', '--url', 'ftp://x');
    expect(ftp.code).toBe(2);
    expect(ftp.stderr).toContain("--url must be an http(s) URL like http://127.0.0.1:23000 (got 'ftp://x')");
  });

  it('an agent by name@tenant', async () => {
    expect(await adminJson('agents', 'show', `bob@default`)).toMatchObject({ agent_id: bob.agent_id });
    expect(await adminJson('agents', 'show', 'BOB@default')).toMatchObject({ agent_id: bob.agent_id });
    const other = await admin('agents', 'show', 'ann@acme');
    expect(other.code).toBe(5);
  });

  it('a registration by the user code amp-register.sh shows', async () => {
    const cy = await register(server.api, 'cy');
    const req = await requestRegistrationAnswer(cy);
    const code = req.attributes.user_code as string;
    expect(code).toMatch(/^[A-Z0-9]{4}-[A-Z0-9]{4}$/);
    expect((await adminJson('registrations', 'show', code)).data.id).toBe(req.id);
    const r = await admin('registrations', 'approve', code);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${req.id}: ${cy.address} is now active\n`);
    const unknown = await admin('registrations', 'show', 'ZZZZ-ZZZZ');
    expect(unknown.code).toBe(5);
  });

  it('audit --registration takes a user code too', async () => {
    const dee = await register(server.api, 'dee');
    const req = await requestRegistrationAnswer(dee);
    const events = (await adminJson('audit', '--registration', req.attributes.user_code)).data;
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) expect(e.attributes.agent_registration_id).toBe(req.id);
  });

  it('a token from --token-file or AMP_ADMIN_TOKEN (no data dir needed)', async () => {
    const token = await mintedToken('agent_registrations:write amp:admin', port);
    const file = join(home, 'admin.jwt');
    writeFileSync(file, `${token}\n`);
    const noKeys = tempDir();
    extraDirs.push(noKeys);
    const f = await adminWith({ AMP_DATA_DIR: noKeys }, 'queues', '--token-file', file);
    expect(f.code, f.stderr).toBe(0);
    const e = await adminWith({ AMP_DATA_DIR: noKeys, AMP_ADMIN_TOKEN: token }, 'queues');
    expect(e.code, e.stderr).toBe(0);
    const minted = await adminWith({ AMP_DATA_DIR: noKeys }, 'queues');
    expect(minted.code).toBe(2);
    const missing = await admin('queues', '--token-file', join(home, 'nope'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read --token-file');
    const check = await exec(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), 'check-config'], {
      ...serverEnv(),
      AMP_ADMIN_TOKEN: token,
    });
    expect(check.stderr).not.toContain('AMP_ADMIN_TOKEN');
  });
});

describe('README: Admin CLI', () => {
  // Run as written with bash (-e -o pipefail: any failing line fails the test), in the repository
  // (npx finds amp-relay there), with the server's settings in the environment, as the README says.
  it('the admin-cli block', async () => {
    const dan = await register(server.api, 'dan');
    const danReg = await requestRegistration(dan);
    const r = await exec('bash', ['-e', '-o', 'pipefail', '-c', readmeBlock('admin-cli')], serverEnv());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('AGENT_ID');
    expect(r.stdout).toMatch(/message\(s\) queued for \d+ agent\(s\) of default/);
    expect(r.stdout).toContain(`${danReg}: ${dan.address} is now active`);
    expect(r.stdout).toContain(`${bob.agent_id}: suspended until`);
    expect(r.stdout).toContain(`${bob.agent_id}: not suspended`);
    expect(r.stdout).toMatch(/registration_approved\s+\S+@\S+\s+\S+\s+pending -> active/);
    expect((await call('GET', `${server.api}/messages/pending`, { key: bob.api_key })).status).toBe(200);
  });

  // Adapted: the example server URL is replaced by the test server's, and AMP_ADMIN_TOKEN is minted
  // with `amp-relay admin-token` as the README says, for the server's port (no data dir here).
  it('the admin-cli-remote block', async () => {
    const minted = await exec(
      process.execPath,
      [
        join(ROOT, 'bin', 'amp-relay.js'),
        'admin-token',
        '--email',
        'you@example.com',
        '--tenant',
        'acme',
        '--scopes',
        'agent_registrations:write amp:admin',
      ],
      serverEnv(),
    );
    expect(minted.code, minted.stderr).toBe(0);
    const block = readmeBlock('admin-cli-remote').replaceAll('https://amp.example.com', server.url);
    const r = await exec('bash', ['-e', '-o', 'pipefail', '-c', block], {
      PATH: process.env.PATH ?? '',
      HOME: home,
      AMP_ADMIN_TOKEN: minted.stdout.trim(),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^0 message\(s\) queued for 0 agent\(s\) of acme$/m);
  });
});
