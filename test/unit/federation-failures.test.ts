// Failed provider signatures (spec §19.1, inbound): they spend neither the overall 1000/min nor the
// provider's 100/min; they are counted per client IP (`federation_failures`, 100/min), and an IP with
// no failures left is refused with 429 before any verification. The real FederationInbound with its
// real collaborators (rate limits of the public profile, a pinned provider, the Ed25519 verifier);
// the key lookup (GET federation/keys) is the request used, as it needs no store.

import { rmSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { isAmpError } from '../../proto/index.js';
import { providerSigner } from '../../src/crypto/federation-keys.js';
import { loadOrCreateProviderKey } from '../../src/crypto/provider-key.js';
import { createVerifier } from '../../src/crypto/verifier.js';
import { parseAllowList } from '../../src/outbound/allow-list.js';
import type { RelayContext } from '../../src/relay/context.js';
import { HomeKeys } from '../../src/relay/federation/home-keys.js';
import { FederationInbound, type ProviderHeaders } from '../../src/relay/federation/inbound.js';
import { Providers } from '../../src/relay/federation/providers.js';
import { RateLimits } from '../../src/relay/ratelimit.js';
import { tempDir } from '../helpers/server.js';

const dir = tempDir('amp-fedfail-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function setup(profile: 'local' | 'public') {
  const key = loadOrCreateProviderKey(dir);
  const allowHttp = parseAllowList('127.0.0.1').allow;
  const pins = [
    {
      domain: 'a.example',
      endpoint: 'http://127.0.0.1:1/v1',
      fingerprint: 'SHA256:x',
      publicKeyPem: key.publicKey.pem,
    },
  ];
  const limits = new RateLimits({ rateLimits: 'on', rateLimitProfile: profile, rateLimitOverrides: [] });
  const ctx = { limits, knownProviders: ['b.example'] } as unknown as RelayContext;
  const signer = { domain: 'b.example', sign: providerSigner(key), allowHttp };
  const inbound = new FederationInbound({
    ctx,
    verifier: createVerifier('node'),
    providers: new Providers({ pins, allowHttp }),
    homeKeys: new HomeKeys(signer),
    store: { findRevokedKey: () => undefined },
    foreign: {
      accept: () => Promise.reject(new Error('not used')),
      findRecipient: () => undefined,
    },
    findAgent: () => undefined,
    trusts: (d) => d === 'a.example',
    federatedDomains: ['a.example'],
  });
  const sign = providerSigner(key);
  const headers = (good: boolean): ProviderHeaders => {
    const timestamp = String(Math.floor(Date.now() / 1000));
    const signature = good ? sign(timestamp, 'x@a.example\n') : Buffer.alloc(64, 7).toString('base64');
    return { provider: 'a.example', timestamp, signature, keyRevoked: '' };
  };
  /** The error code of a key lookup (`not_found`: authenticated, no such agent here). */
  const code = (good: boolean, ip: string) =>
    inbound.key(headers(good), 'x@a.example', '', ip).then(
      () => 'ok',
      (e: unknown) => (isAmpError(e) ? e.code : String(e)),
    );
  return { code };
}

describe('federation: failed provider signatures', () => {
  it('are limited per client IP (100/min), refused with 429 before verifying; other IPs and verified requests pass', async () => {
    const { code } = setup('public');
    const codes: string[] = [];
    for (let i = 0; i < 101; i++) codes.push(await code(false, '203.0.113.5'));
    expect(codes.slice(0, 100).every((c) => c === 'signature_invalid')).toBe(true);
    expect(codes[100]).toBe('rate_limited');
    // Another client IP, forged or genuine, is not affected; a genuine request is authenticated
    // (not_found: the agent asked about is not ours), and the overall budget was not spent.
    expect(await code(false, '198.51.100.7')).toBe('signature_invalid');
    expect(await code(true, '198.51.100.7')).toBe('not_found');
  });

  it('do not spend the overall 1000/min: 1100 forged, then a verified request passes', async () => {
    const { code } = setup('local'); // loopback is exempt from per-IP buckets in the local profile
    for (let i = 0; i < 1100; i++) expect(await code(false, '127.0.0.1')).toBe('signature_invalid');
    expect(await code(true, '127.0.0.1')).toBe('not_found');
  });
});
