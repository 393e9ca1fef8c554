// The request signatures of webhooks, mesh and federation (src/crypto/request-signing.ts) against
// the spec's vectors (amp_relay_extra.webhook_hmac, mesh_hmac, federation_signature in
// test/fixtures/test-vectors.json, the copy of ../shared/spec/test-vectors.json), then the ways a
// verification must fail: another body, timestamp, secret or key; malformed headers.
import { readFileSync } from 'node:fs';
import { createPrivateKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  hmacRequestHeader,
  meshAuthHeader,
  requestSignedBytes,
  signRequest,
  timestampProblem,
  verifyHmacRequestHeader,
  verifyRequestSignature,
  webhookSignatureHeader,
} from '../../src/crypto/request-signing.js';
import { createVerifier } from '../../src/crypto/verifier.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const V: Any = JSON.parse(readFileSync(new URL('../fixtures/test-vectors.json', import.meta.url), 'utf8'));
const X: Any = V.amp_relay_extra;
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

function keyVector(id: string): Any {
  const k = (X.keys as Any[]).find((k) => k.id === id);
  if (!k) throw new Error(`vector refers to unknown key ${id}`);
  return k;
}
function privateKey(id: string) {
  const der = Buffer.concat([PKCS8_ED25519_PREFIX, Buffer.from(keyVector(id).seed_hex, 'hex')]);
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
}

describe('webhook_hmac', () => {
  it.each(X.webhook_hmac as Any[])('$id', (c) => {
    expect(requestSignedBytes(c.timestamp, c.raw_body).toString('utf8')).toBe(c.signed_string);
    expect(webhookSignatureHeader(c.webhook_secret, c.timestamp, c.raw_body)).toBe(c.expected_header);
    expect(verifyHmacRequestHeader(c.webhook_secret, c.timestamp, c.raw_body, c.expected_header)).toBe(true);
    expect(verifyHmacRequestHeader(c.webhook_secret, c.timestamp, Buffer.from(c.raw_body), c.expected_header)).toBe(
      true,
    );
  });
});

describe('mesh_hmac', () => {
  it.each(X.mesh_hmac as Any[])('$id', (c) => {
    expect(requestSignedBytes(c.timestamp, c.raw_body).toString('utf8')).toBe(c.signed_string);
    expect(meshAuthHeader(c.shared_secret, c.timestamp, c.raw_body)).toBe(c.expected_header);
    expect(verifyHmacRequestHeader(c.shared_secret, c.timestamp, c.raw_body, c.expected_header)).toBe(true);
  });
});

describe('federation_signature', () => {
  for (const choice of ['node', 'auto'] as const) {
    it.each(X.federation_signature as Any[])(`$id (verifier ${choice})`, async (c) => {
      const verifier = createVerifier(choice);
      const pem = keyVector(c.provider_key).public_pem;
      expect(signRequest(privateKey(c.provider_key), c.timestamp, c.raw_body)).toBe(c.expected_signature_base64);
      const sig = c.expected_signature_base64;
      expect(await verifyRequestSignature(verifier, pem, c.timestamp, c.raw_body, sig)).toBe(true);
      expect(await verifyRequestSignature(verifier, pem, c.timestamp, c.raw_body + ' ', sig)).toBe(false);
      expect(await verifyRequestSignature(verifier, pem, String(Number(c.timestamp) + 1), c.raw_body, sig)).toBe(false);
      const otherPem = keyVector('key-rfc8032-1').public_pem;
      expect(await verifyRequestSignature(verifier, otherPem, c.timestamp, c.raw_body, sig)).toBe(false);
    });
  }
});

describe('HMAC verification refuses', () => {
  const c = X.webhook_hmac[0];
  const ok = (header: string | undefined, body = c.raw_body, ts = c.timestamp, secret = c.webhook_secret) =>
    verifyHmacRequestHeader(secret, ts, body, header);

  it('another body, timestamp or secret', () => {
    expect(ok(c.expected_header)).toBe(true);
    expect(ok(c.expected_header, c.raw_body + '\n')).toBe(false);
    expect(ok(c.expected_header, c.raw_body, String(Number(c.timestamp) + 1))).toBe(false);
    expect(ok(c.expected_header, c.raw_body, c.timestamp, c.webhook_secret + 'x')).toBe(false);
  });

  it('any header not exactly sha256=<64 lowercase hex>', () => {
    const hex = c.expected_header.slice('sha256='.length);
    for (const h of [
      undefined,
      '',
      hex,
      'sha256=' + hex.toUpperCase(),
      'SHA256=' + hex,
      'sha256=' + hex.slice(2),
      'sha256=' + hex + '00',
      ' sha256=' + hex,
      'sha256=' + hex + '\n',
      'sha1=' + hex,
    ]) {
      expect(ok(h), JSON.stringify(h)).toBe(false);
    }
  });

  it('signs the raw bytes, not a re-encoding of them', () => {
    const bytes = Buffer.from([0x7b, 0xff, 0xfe, 0x7d]); // not valid UTF-8
    const header = hmacRequestHeader('s', '1', bytes);
    expect(verifyHmacRequestHeader('s', '1', bytes, header)).toBe(true);
    expect(verifyHmacRequestHeader('s', '1', bytes.toString('utf8'), header)).toBe(false);
  });
});

describe('Ed25519 request signature verification refuses malformed base64', () => {
  const c = X.federation_signature[0];
  const pem = keyVector(c.provider_key).public_pem;
  const verifier = createVerifier('node');
  it.each([
    ['missing', undefined],
    ['unpadded', c.expected_signature_base64.replace(/=+$/, '')],
    ['base64url', c.expected_signature_base64.replace(/\+/g, '-').replace(/\//g, '_')],
    ['with whitespace', ' ' + c.expected_signature_base64],
    ['truncated', c.expected_signature_base64.slice(4)],
    ['non-canonical last character', c.expected_signature_base64.replace(/.==$/, 'x==')],
  ])('%s', async (_name, sig) => {
    expect(await verifyRequestSignature(verifier, pem, c.timestamp, c.raw_body, sig)).toBe(false);
  });
});

describe('timestampProblem', () => {
  const now = 1_767_225_600_000;
  it.each([
    ['1767225600', undefined],
    ['1767225900', undefined],
    ['1767225300', undefined],
    ['1767225901', 'skewed'],
    ['1767225299', 'skewed'],
    [undefined, 'malformed'],
    ['', 'malformed'],
    ['1767225600.5', 'malformed'],
    ['-1767225600', 'malformed'],
    ['+1767225600', 'malformed'],
    [' 1767225600', 'malformed'],
    ['1e9', 'malformed'],
    ['0x69553800', 'malformed'],
  ])('%s → %s', (ts, problem) => {
    expect(timestampProblem(ts, now)).toBe(problem);
  });
});
