// `amp-relay admin-token` signs for the issuer the server uses with the same configuration
// (AMP_PUBLIC_URL, else http://localhost:<AMP_PORT>), and never creates signing keys: a data dir
// without them (a wrong one, or a server that never ran) is an error that says so.

import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KEY_FILE } from '../../src/identity/signing-keys.js';
import { call, register, ROOT, startTestServer, tempDir, type TestServer } from '../helpers/server.js';
import { readmeBlock } from '../helpers/readme.js';
import { setupOrFailEveryTest } from '../helpers/setup.js';
import { makeCert } from '../helpers/tls.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The built CLI as its own process, with only PATH and the given AMP_* variables. */
function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin', 'amp-relay.js'), ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : null
          : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
  });
}

const MINT = ['admin-token', '--email', 'ops@acme.com', '--tenant', 'acme', '--scopes', 'amp:admin'];
const dirs: string[] = [];
let t: TestServer;
let ed: TestServer;

setupOrFailEveryTest(async () => {
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [join(ROOT, 'scripts', 'ensure-built.mjs')], { timeout: 300_000 }, (e) =>
      e ? reject(e) : resolve(),
    ),
  );
  t = await startTestServer();
  ed = await startTestServer({ aidJwtAlg: 'EdDSA' });
  await register(t.api, 'alice', 'acme');
});
afterAll(async () => {
  await t?.close();
  await ed?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const agentsWith = (token: string) =>
  call('GET', `${t.api}/admin/agents`, { headers: { Authorization: `Bearer ${token}` } });

describe('amp-relay admin-token', () => {
  it("signs for the server's issuer when given the server's port, and says which issuer", async () => {
    const r = await cli([...MINT, '--data-dir', t.dataDir, '--port', String(t.server.port)]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`issuer http://localhost:${t.server.port}/acme`);
    expect((await agentsWith(r.stdout.trim())).status).toBe(200);
    // The same through the environment, as the server reads it.
    const e = await cli(MINT, { AMP_DATA_DIR: t.dataDir, AMP_PORT: String(t.server.port) });
    expect((await agentsWith(e.stdout.trim())).status).toBe(200);
  });

  it('another port makes another issuer: the server refuses it, and the CLI said which issuer it used', async () => {
    const r = await cli([...MINT, '--data-dir', t.dataDir]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('issuer http://localhost:23000/acme');
    expect((await agentsWith(r.stdout.trim())).status).toBe(401);
  });

  it('with TLS on (AMP_TLS_CERT/KEY) and no public URL the issuer is https://localhost:<port>', async () => {
    const dir = tempDir('amp-admin-token-tls-');
    dirs.push(dir);
    const { cert, key } = makeCert(dir, readmeBlock('tls-cert'));
    const r = await cli([...MINT, '--port', '8443', '--data-dir', t.dataDir], { AMP_TLS_CERT: cert, AMP_TLS_KEY: key });
    expect(r.stderr).toContain('issuer https://localhost:8443/acme');
    expect(r.code).toBe(0);
  });

  it('the usage names the https issuer with TLS', async () => {
    const r = await cli(['help']);
    expect(r.stdout).toMatch(
      /else http:\/\/localhost:<--port>\/<tenant>\s+\(https:\/\/localhost:<--port>\/<tenant> with AMP_TLS_CERT\/KEY\)/,
    );
  });

  it('AMP_PUBLIC_URL names the issuer', async () => {
    const r = await cli([...MINT, '--data-dir', t.dataDir, '--public-url', 'https://amp.example.com/']);
    expect(r.code).toBe(0);
    const claims = JSON.parse(Buffer.from(r.stdout.trim().split('.')[1], 'base64url').toString('utf8'));
    expect(claims).toMatchObject({ iss: 'https://amp.example.com/acme', aud: 'https://amp.example.com/acme' });
  });

  it('refuses to create keys: a data dir without them is an error, and stays untouched', async () => {
    const empty = tempDir();
    dirs.push(empty);
    const missing = join(empty, 'not-here');
    for (const dir of [empty, missing]) {
      const r = await cli([...MINT, '--data-dir', dir]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain(`no signing keys in ${dir}`);
      expect(r.stderr).toMatch(/is the data dir right .* has the server run once/);
      expect(existsSync(join(dir, KEY_FILE))).toBe(false);
    }
    expect(existsSync(missing)).toBe(false);
  });

  it("an algorithm the data dir has no key for is an error naming AID_JWT_ALG; the server's keys stay as they are", async () => {
    const file = join(ed.dataDir, KEY_FILE);
    const before = readFileSync(file, 'utf8');
    const r = await cli([...MINT, '--data-dir', ed.dataDir, '--port', String(ed.server.port)]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/no RS256 signing key .*it holds EdDSA.*AID_JWT_ALG/);
    expect(readFileSync(file, 'utf8')).toBe(before);
    const ok = await cli([
      ...MINT,
      '--data-dir',
      ed.dataDir,
      '--port',
      String(ed.server.port),
      '--aid-jwt-alg',
      'EdDSA',
    ]);
    expect(ok.code, ok.stderr).toBe(0);
  });

  it('port 0 has no issuer before the server listens: an error that says what to set', async () => {
    const r = await cli([...MINT, '--data-dir', t.dataDir, '--port', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/port 0 .* AMP_PUBLIC_URL/);
  });
});
