// AID foundations (agent-identity §7, §10, §12): the platform signing keys and their JWKS, the
// discovery documents per tenant (an unknown tenant is a 404 in the AID error shape), and admin
// JWTs minted by `amp-relay admin-token`, checked by a standard library (jose) against the served
// JWKS and discovered by openid-client.

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SignJWT, calculateJwkThumbprint, createRemoteJWKSet, jwtVerify, type JWK } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkAdminToken, mintAdminToken } from '../../src/identity/admin-tokens.js';
import { SigningKeys } from '../../src/identity/signing-keys.js';
import { AID_GRANT, expectAidError, issuerOf } from '../helpers/aid.js';
import { ROOT, call, register, startTestServer, tempDir, type TestServer } from '../helpers/server.js';

const run = promisify(execFile);

let t: TestServer; // no public URL: the issuer is http://localhost:<listening port>/acme
let pub: TestServer; // AMP_PUBLIC_URL https://amp.example.test, not where it listens
let issuer: string;
const dataDir = tempDir('amp-aid-');

beforeAll(async () => {
  t = await startTestServer({ dataDir });
  pub = await startTestServer({ publicUrl: 'https://amp.example.test' });
  issuer = issuerOf(t);
  await register(t.api, 'someone', 'acme');
  await register(pub.api, 'someone', 'acme');
});
afterAll(async () => {
  await t.close();
  await pub.close();
});

describe('discovery', () => {
  it('serves the authorization-server metadata, its issuer from the public URL or localhost:<port>', async () => {
    for (const [srv, iss] of [
      [t, issuer],
      [pub, 'https://amp.example.test/acme'],
    ] as const) {
      for (const url of [
        `${srv.url}/acme/.well-known/oauth-authorization-server`,
        `${srv.url}/.well-known/oauth-authorization-server/acme`,
      ]) {
        const r = await call('GET', url);
        expect(r.status).toBe(200);
        expect(r.headers.get('cache-control')).toBe('public, max-age=300');
        expect(r.body).toMatchObject({
          issuer: iss,
          token_endpoint: `${iss}/oauth/token`,
          introspection_endpoint: `${iss}/oauth/introspect`,
          jwks_uri: `${iss}/.well-known/jwks.json`,
          grant_types_supported: ['urn:aid:agent-identity'],
          aid_grant: {
            aid_version: '1.0',
            registration_request_endpoint: `${iss}/agent_registrations/request`,
            proof_window_seconds: 300,
          },
        });
      }
    }
  });

  it('serves openid-configuration and the protected-resource document; never uses the Host header', async () => {
    const oc = await call('GET', `${t.url}/acme/.well-known/openid-configuration`, {
      headers: { Host: 'evil.example' },
    });
    expect(oc.body).toMatchObject({
      issuer,
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
    });
    expect(oc.body.claims_supported).toContain('agent_address');
    expect(oc.body.authorization_endpoint).toBeUndefined();
    const pr = await call('GET', `${t.url}/acme/.well-known/oauth-protected-resource`);
    expect(pr.body).toEqual({
      resource: issuer,
      resource_name: 'acme AMP provider',
      authorization_servers: [issuer],
      scopes_supported: ['agent:identity'],
      bearer_methods_supported: ['header'],
    });
  });

  it('answers 404 for an organisation nobody registered in', async () => {
    const r = await call('GET', `${t.url}/nobody/.well-known/openid-configuration`);
    expect(r.status).toBe(404);
    expect(r.body.error).toBe('not_found');
  });

  it('is discovered by a standard OIDC client library', async () => {
    const config = await oidc.discovery(new URL(issuer), 'agent', undefined, undefined, {
      execute: [oidc.allowInsecureRequests],
    });
    const meta = config.serverMetadata();
    expect(meta.issuer).toBe(issuer);
    expect(meta.jwks_uri).toBe(`${issuer}/.well-known/jwks.json`);
  });

  it('discovery and JWKS of an unknown tenant are 404 in the AID shape; a 40 KB token body is 413 invalid_request', async () => {
    for (const path of [
      '/nosuch/.well-known/jwks.json',
      '/nosuch/.well-known/openid-configuration',
      '/nosuch/.well-known/oauth-authorization-server',
      '/nosuch/.well-known/oauth-protected-resource',
      '/.well-known/openid-configuration/nosuch',
      '/.well-known/oauth-authorization-server/nosuch',
    ]) {
      const r = await call('GET', `${t.url}${path}`);
      expectAidError(r, 404, 'not_found');
    }
    const big = await call('POST', `${t.url}/acme/oauth/token`, {
      headers: { 'Content-Type': 'application/json' },
      raw: JSON.stringify({ grant_type: AID_GRANT, pad: 'x'.repeat(40_000) }),
    });
    expect(big.status).toBe(413);
    expect(big.body.error).toBe('invalid_request');
    expectAidError(big, 413, 'invalid_request');
  });
});

describe('signing keys and admin tokens', () => {
  it('publishes public RSA keys only, kid = RFC 7638 thumbprint', async () => {
    const r = await call('GET', `${issuer}/.well-known/jwks.json`);
    expect(r.status).toBe(200);
    const keys = r.body.keys as JWK[];
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ kty: 'RSA', e: 'AQAB', alg: 'RS256', use: 'sig' });
    for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(keys[0]).not.toHaveProperty(secret);
    expect(keys[0].kid).toBe(await calculateJwkThumbprint({ kty: 'RSA', n: keys[0].n, e: keys[0].e }, 'sha256'));
    expect((await call('GET', `${t.url}/.well-known/jwks.json`)).body).toEqual(r.body);
  });

  it('mints an admin JWT with the CLI that jose verifies against the served JWKS', async () => {
    const { stdout } = await run(
      process.execPath,
      [
        join(ROOT, 'bin', 'amp-relay.js'),
        'admin-token',
        '--email',
        'ops@acme.com',
        '--tenant',
        'acme',
        '--scopes',
        'agent_registrations:read agent_registrations:write',
        '--data-dir',
        dataDir,
        '--public-url',
        t.publicBase,
      ],
      { timeout: 20_000 },
    );
    const token = stdout.trim();
    const { payload, protectedHeader } = await jwtVerify(
      token,
      createRemoteJWKSet(new URL(`${issuer}/.well-known/jwks.json`)),
      { issuer, audience: issuer },
    );
    expect(protectedHeader.alg).toBe('RS256');
    expect(payload).toMatchObject({
      sub: 'admin:ops@acme.com',
      token_type: 'admin',
      email: 'ops@acme.com',
      company_url_id: 'acme',
      scopes: ['agent_registrations:read', 'agent_registrations:write'],
    });
    expect((payload.exp as number) - (payload.iat as number)).toBe(3600);
  });

  it('checks admin tokens: tenant, type, scope (write implies read)', async () => {
    const keys = await SigningKeys.load(dataDir, 'RS256');
    const mint = (tenant: string, scopes: string[]) =>
      mintAdminToken(keys, { issuer: issuerOf(t, tenant), tenant, email: 'a@b.c', scopes });
    const write = await mint('acme', ['agent_registrations:write']);
    expect((await checkAdminToken(keys, write, issuer, 'acme', 'agent_registrations:read')).ok).toBe(true);
    expect(
      await checkAdminToken(
        keys,
        await mint('acme', ['agent_registrations:read']),
        issuer,
        'acme',
        'agent_registrations:write',
      ),
    ).toMatchObject({ ok: false, status: 403, error: 'insufficient_scope' });
    expect(
      await checkAdminToken(
        keys,
        await mint('other', ['agent_registrations:write']),
        issuer,
        'acme',
        'agent_registrations:read',
      ),
    ).toMatchObject({ ok: false, status: 401, error: 'invalid_token' });
    expect(await checkAdminToken(keys, write + 'x', issuer, 'acme', 'agent_registrations:read')).toMatchObject({
      ok: false,
      status: 401,
    });
    const key = await keys.current();
    const agentToken = await new SignJWT({
      token_type: 'agent',
      email: 'a@b.c',
      company_url_id: 'acme',
      scopes: ['agent_registrations:write'],
    })
      .setProtectedHeader({ alg: key.alg, kid: key.kid })
      .setIssuer(issuer)
      .setAudience(issuer)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(key.privateKey);
    expect(await checkAdminToken(keys, agentToken, issuer, 'acme', 'agent_registrations:read')).toMatchObject({
      ok: false,
      status: 403,
      error: 'insufficient_scope',
      description: 'agent tokens are not accepted on admin endpoints',
    });
  });

  it('refuses unknown scopes and bad e-mails at minting', async () => {
    const keys = await SigningKeys.load(dataDir, 'RS256');
    await expect(mintAdminToken(keys, { issuer, tenant: 'acme', email: 'a@b.c', scopes: ['root'] })).rejects.toThrow(
      /unknown scope/,
    );
    await expect(
      mintAdminToken(keys, { issuer, tenant: 'acme', email: 'nobody', scopes: ['amp:admin'] }),
    ).rejects.toThrow(/e-mail/);
  });

  it('selects EdDSA signing keys with AID_JWT_ALG', async () => {
    const t2 = await startTestServer({ aidJwtAlg: 'EdDSA' });
    try {
      await register(t2.api, 'x', 'acme');
      const jwks = (await call('GET', `${t2.url}/acme/.well-known/jwks.json`)).body.keys as JWK[];
      expect(jwks).toEqual([expect.objectContaining({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' })]);
      expect(
        (await call('GET', `${t2.url}/acme/.well-known/openid-configuration`)).body
          .id_token_signing_alg_values_supported,
      ).toEqual(['EdDSA']);
    } finally {
      await t2.close();
    }
  });
});
