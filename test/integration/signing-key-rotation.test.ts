// Rotating the AID token-signing key while the server runs (agent-identity §7): the built CLI
// `amp-relay rotate-signing-key` writes the key file, the server picks it up at its next look
// (at most once a second), publishes the successor at once and signs with it 10 min later, or at
// once with --immediate; tokens signed before still verify and introspect.

import { execFile } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { KeyStatus } from '../../src/identity/signing-keys.js';
import {
  AID_GRANT,
  activeRegistration,
  introspect,
  startAidServer,
  tokenProof,
  type AidServer,
} from '../helpers/aid.js';
import { call, register, ROOT, tempDir, type Registered } from '../helpers/server.js';
import { until } from '../helpers/ws.js';

const run = promisify(execFile);
const CLI = join(ROOT, 'bin', 'amp-relay.js');
/** The server looks at the key file at most once a second; give it a few. */
const PICKUP_TIMEOUT_MS = 5000;

let s: AidServer;
let issuer: string;
let admin: string;
let agent: Registered;
const dataDir = tempDir('amp-key-rotation-');

async function agentToken(): Promise<string> {
  const r = await call('POST', `${s.url}/oauth/token`, {
    json: {
      grant_type: AID_GRANT,
      fingerprint: agent.body.fingerprint,
      proof: tokenProof(agent.keys.privateKey, issuer),
    },
  });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body.access_token as string;
}
const kidOf = (token: string) => decodeProtectedHeader(token).kid;
const servedKids = async (): Promise<string[]> => {
  const r = await call('GET', `${s.url}/.well-known/jwks.json`);
  expect(r.status).toBe(200);
  return (r.body.keys as { kid: string }[]).map((k) => k.kid);
};
/** Verify as a relying party would: a fresh remote JWKS (no cache from before the rotation). */
const verifyRemote = (token: string) =>
  jwtVerify(token, createRemoteJWKSet(new URL(`${s.url}/.well-known/jwks.json`)), {
    issuer,
    audience: issuer,
    algorithms: ['RS256'],
  });

async function cli(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [CLI, ...args, '--data-dir', dataDir], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '' },
    timeout: 20_000,
  });
}
const keysOf = (stdout: string) => (JSON.parse(stdout) as { keys: KeyStatus[] }).keys;

beforeAll(async () => {
  s = await startAidServer({ dataDir }, { adminScopes: ['agent_registrations:write', 'aid:introspect'] });
  ({ issuer, admin } = s);
  agent = await register(s.t.api, 'rotating-agent', 'acme');
  await activeRegistration(s, agent);
});
afterAll(async () => {
  await s?.t.close();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('signing key rotation on a running server', () => {
  let tokenA: string;
  let kidA: string;
  let kidNext: string;
  let kidNow: string;

  it('a scheduled rotation is published at once but does not sign yet', async () => {
    tokenA = await agentToken();
    kidA = kidOf(tokenA)!;
    expect(await servedKids()).toEqual([kidA]);

    const { stdout, stderr } = await cli('rotate-signing-key');
    const listed = keysOf(stdout);
    expect(listed.map((k) => [k.kid, k.state])).toEqual([
      [kidA, 'signing'],
      [expect.any(String), 'next'],
    ]);
    kidNext = listed[1]!.kid;
    expect(stderr).toContain(`new key ${kidNext} is published now and signs from ${listed[1]!.activates_at}`);
    const activates = Date.parse(listed[1]!.activates_at);
    expect(activates - Date.now()).toBeGreaterThan(9 * 60_000);

    expect(
      await until(async () => (await servedKids()).length === 2, PICKUP_TIMEOUT_MS),
      'the server did not publish the scheduled key',
    ).toBe(true);
    expect(await servedKids()).toEqual([kidA, kidNext]);
    expect(kidOf(await agentToken())).toBe(kidA);
  });

  it('an immediate rotation signs new tokens at once; tokens and admin tokens from before still work', async () => {
    const { stdout, stderr } = await cli('rotate-signing-key', '--immediate');
    const listed = keysOf(stdout);
    // The scheduled successor is cancelled; the old key stays published, retired.
    expect(listed.map((k) => [k.kid, k.state])).toEqual([
      [kidA, 'retired'],
      [expect.any(String), 'signing'],
    ]);
    kidNow = listed[1]!.kid;
    expect(kidNow).not.toBe(kidNext);
    expect(stderr).toContain(`new key ${kidNow} signs now`);
    expect(Date.parse(listed[0]!.unpublish_at!) - Date.now()).toBeGreaterThan(24 * 3600_000);

    expect(
      await until(async () => (await servedKids()).includes(kidNow), PICKUP_TIMEOUT_MS),
      'the server did not pick up the immediate rotation',
    ).toBe(true);
    expect(await servedKids()).toEqual([kidA, kidNow]);
    const tokenB = await agentToken();
    expect(kidOf(tokenB)).toBe(kidNow);

    expect((await introspect(s, tokenA)).body).toMatchObject({ active: true, agent_address: agent.address });
    expect((await introspect(s, tokenB)).body).toMatchObject({ active: true, agent_address: agent.address });
    expect((await verifyRemote(tokenA)).protectedHeader.kid).toBe(kidA);
    expect((await verifyRemote(tokenB)).protectedHeader.kid).toBe(kidNow);

    // The admin token was signed by the retired key before the rotation.
    expect(kidOf(admin)).toBe(kidA);
    const list = await call('GET', `${s.url}/agent_registrations`, { headers: { Authorization: `Bearer ${admin}` } });
    expect(list.status, JSON.stringify(list.body)).toBe(200);
    expect(JSON.stringify(list.body)).toContain(agent.address);
  });

  it('signing-keys lists exactly one signing key, the one the server signs with', async () => {
    const { stdout } = await cli('signing-keys');
    const listed = keysOf(stdout);
    expect(listed.filter((k) => k.state === 'signing').map((k) => k.kid)).toEqual([kidNow]);
    expect(listed.map((k) => [k.kid, k.alg, k.state])).toEqual([
      [kidA, 'RS256', 'retired'],
      [kidNow, 'RS256', 'signing'],
    ]);
    expect(kidOf(await agentToken())).toBe(kidNow);
  });

  it('signing-keys --immediate is a usage error: exit 2, a message on stderr, nothing rotated', async () => {
    const err = await cli('signing-keys', '--immediate').then(
      () => null,
      (e: { code?: number; stdout?: string; stderr?: string }) => e,
    );
    expect(err).not.toBeNull();
    expect(err!.code).toBe(2);
    expect(err!.stderr).toContain("--immediate belongs to 'rotate-signing-key'");
    expect(err!.stdout).toBe('');
    expect(keysOf((await cli('signing-keys')).stdout).map((k) => k.kid)).toEqual([kidA, kidNow]);
  });

  it('a data dir without keys (a wrong --data-dir) is refused by both commands, and nothing is created', async () => {
    const parent = tempDir('amp-keys-wrong-');
    const wrong = join(parent, 'data');
    for (const cmd of ['signing-keys', 'rotate-signing-key']) {
      const err = await run(process.execPath, [CLI, cmd, '--data-dir', wrong], { cwd: ROOT, timeout: 20_000 }).then(
        () => null,
        (e: { code?: number; stderr?: string }) => e,
      );
      expect(err?.code).toBe(2);
      expect(err?.stderr).toMatch(/no signing keys in .*is the data dir right/);
    }
    expect(existsSync(wrong)).toBe(false);
    rmSync(parent, { recursive: true, force: true });
  });
});
