// `amp-relay admin login` as an operator runs it: --help, one line on stdout (the link) that a
// running server on the same data dir accepts once, and clear usage errors.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readmeBlock } from '../helpers/readme.js';
import { call, ROOT, startTestServer, type TestServer } from '../helpers/server.js';

const PUBLIC_URL = 'http://console-cli.test:8080';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

let t: TestServer;

function login(...args: string[]): Promise<Run> {
  return run(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), 'admin', 'login', ...args]);
}

function run(cmd: string, args: string[]): Promise<Run> {
  const env = { PATH: process.env.PATH ?? '', HOME: t.dataDir, AMP_DATA_DIR: t.dataDir, AMP_PUBLIC_URL: PUBLIC_URL };
  return new Promise((resolve) => {
    execFile(cmd, args, { env, cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => {
      const c = (err as { code?: unknown } | null)?.code;
      resolve({ code: err ? (typeof c === 'number' ? c : null) : 0, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

beforeAll(async () => {
  t = await startTestServer({ publicUrl: PUBLIC_URL });
});
afterAll(async () => {
  await t.close();
});

describe('amp-relay admin login', () => {
  it('--help explains the link, scopes and read-only sessions', async () => {
    const r = await login('--help');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: amp-relay admin login');
    expect(r.stdout).toContain('amp:admin:read');
    expect(r.stdout).toContain('--ttl');
  });

  it('prints only the link; the server signs in with it once', async () => {
    const r = await login(
      '--tenant',
      'default',
      '--email',
      'ops@example.com',
      '--scopes',
      'agent_registrations:read,amp:admin:read',
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n').filter(Boolean);
    expect(lines).toHaveLength(1);
    const m = /^http:\/\/console-cli\.test:8080\/admin\/#login=([\w-]+\.[\w-]+\.[\w-]+)$/.exec(lines[0]);
    expect(m, lines[0]).not.toBeNull();
    const token = (m as RegExpExecArray)[1];
    const first = await call('POST', `${t.api}/console/session`, { json: { token } });
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    expect(first.body).toMatchObject({
      email: 'ops@example.com',
      tenant: 'default',
      scopes: ['agent_registrations:read', 'amp:admin:read'],
    });
    const second = await call('POST', `${t.api}/console/session`, { json: { token } });
    expect(second.body.error).toBe('login_link_used');
  });

  it('runs the README block as written (npx amp-relay from the clone)', async () => {
    const block = readmeBlock('admin-login');
    const r = await run('bash', ['--norc', '-euo', 'pipefail', '-c', block]);
    expect(r.code, r.stderr).toBe(0);
    const token = /#login=(\S+)\n$/.exec(r.stdout)?.[1] ?? '';
    const session = await call('POST', `${t.api}/console/session`, { json: { token } });
    expect(session.status, JSON.stringify(session.body)).toBe(201);
    expect(session.body).toMatchObject({ tenant: 'acme', email: 'ops@acme.com' });
  });

  it('--url changes the base of the link', async () => {
    const r = await login('--url', 'https://amp.example.org/');
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^https:\/\/amp\.example\.org\/admin\/#login=\S+\n$/);
  });

  it('a bad --scopes, --ttl or --url is a clear usage error (exit 2, nothing on stdout)', async () => {
    for (const [args, says] of [
      [['--scopes', 'amp:admin,root'], /unknown scope\(s\): root; known: .*amp:admin:read/],
      [['--ttl', '99999'], /--ttl must be 1\.\.3600 seconds/],
      [['--ttl', 'soon'], /--ttl must be a whole number/],
      [['--url', 'ftp://x'], /--url must be an http\(s\) URL/],
      [['--scopes'], /option '--scopes' needs a value/],
    ] as const) {
      const r = await login(...args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(says);
    }
  });
});
