// The README's admin-token block and signing-key block (list, rotate, rotate --immediate), run as written with real npx in a
// temp project whose node_modules/.bin links to this checkout (npxSandbox), beside a running server
// on that project's ./data. The block itself names no URL, so nothing in it is rewritten.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npxSandbox, readmeBlock, runReadmeBlock } from '../helpers/readme.js';
import { register, startTestServer, tempDir, type TestServer } from '../helpers/server.js';

let t: TestServer;
let work: string;

beforeAll(async () => {
  work = npxSandbox(tempDir('amp-readme-keys-'));
  t = await startTestServer({ dataDir: join(work, 'data') });
  await register(t.api, 'ops-agent', 'acme'); // tenant acme exists once it has an agent
});

afterAll(async () => {
  await t?.close();
  rmSync(work, { recursive: true, force: true });
});

async function jwksKids(): Promise<string[]> {
  const res = await fetch(`${t.url}/.well-known/jwks.json`);
  expect(res.status).toBe(200);
  const body = (await res.json()) as { keys: { kid: string }[] };
  return body.keys.map((k) => k.kid);
}

describe('README: admin token (block admin-token)', () => {
  it("mints a token the running server accepts (the server's port given as AMP_PORT, as the README says)", async () => {
    const r = runReadmeBlock('admin-token', {
      cwd: work,
      env: { npm_config_offline: 'true', AMP_PORT: String(t.server.port) },
    });
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
    expect(r.status).toBe(0);
    const token = r.stdout.trim();
    expect(token.split('.')).toHaveLength(3);
    const ok = await fetch(`${t.url}/acme/agent_registrations`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    const forged = `${token.slice(0, -4)}AAAA`;
    const refused = await fetch(`${t.url}/acme/agent_registrations`, {
      headers: { authorization: `Bearer ${forged}` },
    });
    expect(refused.status).toBe(401);
  });
});

describe('README: signing keys (block signing-keys)', () => {
  it('lists the keys, publishes one to sign later, then one to sign at once; the running server serves it beside the retired key', async () => {
    expect(readmeBlock('signing-keys')).toContain('npx amp-relay rotate-signing-key --immediate');
    const before = await jwksKids();
    expect(before).toHaveLength(1);
    const r = runReadmeBlock('signing-keys', { cwd: work, env: { npm_config_offline: 'true' } });
    expect(r.stderr).not.toMatch(/Error|at .*\.js:\d+/);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(before[0]);
    expect(r.stdout).toContain('"state": "next"');
    // The immediate rotation names the key that signs now; the old one stays published, retired.
    const now = /new key (\S+) signs now/.exec(r.stderr)?.[1];
    expect(now).toBeTruthy();
    expect(r.stdout).toContain('"state": "retired"');
    // The running server picks the changed key file up within a second: ask until it serves the new key.
    let kids = before;
    const deadline = Date.now() + 10_000;
    for (let i = 0; i < 200 && !kids.includes(now as string) && Date.now() < deadline; i++) kids = await jwksKids();
    expect(kids).toContain(now);
    expect(kids).toContain(before[0]);
  });
});
