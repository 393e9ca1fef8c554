// AID issuer aliases (agent-identity §16): proofs may name an AID_ISSUER_ALIASES issuer (another
// name agents use for this server, e.g. its LAN address) while tokens keep the AMP_PUBLIC_URL one;
// `amp-relay check-config` refuses an alias that is not an http(s) base URL.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activeRegistration,
  introspect,
  jwtPayload,
  startAidServer,
  statusProof,
  tokenProof,
  tokenRequest,
  type AidServer,
} from '../helpers/aid.js';
import { call, register, ROOT, type Registered } from '../helpers/server.js';

const run = promisify(execFile);
const TENANT = 'acme';

describe('§16 issuer aliases', () => {
  let s: AidServer;
  let alias: string;
  let a: Registered;
  let id: string;
  beforeAll(async () => {
    // Names only, neither is where the server listens (requests go to s.url): the AMP_PUBLIC_URL
    // issuer, and the LAN address agents may name instead.
    alias = 'http://192.168.1.20:23000';
    s = await startAidServer({ publicUrl: 'https://amp.example.test', aidIssuerAliases: [alias] });
    a = await register(s.t.api, 'lan-agent', TENANT);
    id = await activeRegistration(s, a);
  });
  afterAll(() => s.t.close());

  it('accepts a token proof naming the alias issuer; the token keeps the AMP_PUBLIC_URL issuer', async () => {
    expect(s.issuer).toBe(`https://amp.example.test/${TENANT}`);
    expect(s.issuer).not.toContain('192.168.1.20');
    for (const named of [`${alias}/${TENANT}`, `${alias}/${TENANT}/`]) {
      const r = await tokenRequest(s, { fingerprint: a.body.fingerprint, proof: tokenProof(a.keys.privateKey, named) });
      expect(r.status).toBe(200);
      expect(jwtPayload(r.body.access_token)).toMatchObject({ iss: s.issuer, aud: [s.issuer], agent_id: id });
      expect((await introspect(s, r.body.access_token)).body).toMatchObject({ active: true, iss: s.issuer });
    }
  });

  it('refuses a proof naming an unlisted origin, or the alias with another tenant', async () => {
    for (const named of ['http://example.invalid/acme', `${alias}/globex`, `${alias}`]) {
      const r = await tokenRequest(s, { fingerprint: a.body.fingerprint, proof: tokenProof(a.keys.privateKey, named) });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('invalid_proof');
    }
  });

  it('accepts a status proof over the alias issuer and refuses one over an unlisted origin', async () => {
    const poll = (proof: string) =>
      call('POST', `${s.url}/agent_registrations/${id}/status`, {
        json: { fingerprint: a.body.fingerprint, proof },
      });
    // A refused proof never reaches the poll interval, so the good poll after it is not a slow_down.
    const bad = await poll(statusProof(a.keys.privateKey, 'http://example.invalid/acme'));
    expect(bad.status).toBe(401);
    expect(bad.body.error).toBe('invalid_proof');
    const good = await poll(statusProof(a.keys.privateKey, `${alias}/${TENANT}`));
    expect(good.status).toBe(200);
    expect(good.body.data).toMatchObject({
      id,
      attributes: { status: 'active', token_endpoint: `${s.issuer}/oauth/token`, oidc_issuer: s.issuer },
    });
  });

  it('check-config refuses an alias that is not an http(s) base URL (exit 2), and accepts a good one', async () => {
    const cli = (alias: string) =>
      run(process.execPath, [join(ROOT, 'bin', 'amp-relay.js'), 'check-config', '--aid-issuer-aliases', alias], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '' },
        timeout: 20_000,
      });
    const failed = await cli('ftp://x').then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain('--aid-issuer-aliases'); // the flag the test passed
    expect(failed.stderr).toContain("'ftp://x'");
    const ok = await cli('http://192.168.1.20:23000');
    expect(ok.stdout).toBe('configuration is valid\n');
  });
});
