// Both Ed25519 verifiers (sodium-native and node:crypto) accept a genuine signature and refuse
// tampering, a malleated signature (S + L, same R: non-canonical) and malformed lengths, checked
// against @noble/ed25519 as the oracle. The server makes one with createVerifier(AMP_ED25519:
// auto|sodium|node); it keeps each key parsed, in a bounded cache.

import { generateKeyPairSync, sign } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { describe, expect, it } from 'vitest';
import { createVerifier } from '../../src/crypto/verifier.js';

/** Order of the Ed25519 base point. */
const L = 2n ** 252n + 27742317777372353535851937790883648493n;

const leToBig = (b: Uint8Array) => b.reduceRight((acc, byte) => (acc << 8n) | BigInt(byte), 0n);
function bigToLe(n: bigint, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function keypair() {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, pem: publicKey.export({ format: 'pem', type: 'spki' }) as string, publicKey };
}

const { privateKey, publicKey, pem } = keypair();
const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
const data = Buffer.from('alice@acme.aimaestro.local|bob@acme.aimaestro.local|Hello|normal||hash', 'utf8');
const good = sign(null, data, privateKey);
const malleated = Buffer.concat([good.subarray(0, 32), bigToLe(leToBig(good.subarray(32)) + L, 32)]);

describe.each(['sodium', 'node'] as const)('Ed25519Verifier with %s', (choice) => {
  const verifier = createVerifier(choice);

  it('is the verifier asked for', () => {
    expect(verifier.name).toBe(choice === 'sodium' ? 'sodium-native' : 'node:crypto');
  });

  it('accepts a genuine signature, as the oracle does', async () => {
    expect(await ed.verifyAsync(good, data, raw)).toBe(true);
    expect(await verifier.verify(pem, data, good)).toBe(true);
  });

  it('refuses tampered data, a flipped signature bit, and wrong lengths', async () => {
    const flipped = Buffer.from(good);
    flipped[10]! ^= 1;
    expect(await verifier.verify(pem, Buffer.concat([data, Buffer.from('x')]), good)).toBe(false);
    expect(await verifier.verify(pem, data, flipped)).toBe(false);
    expect(await verifier.verify(pem, data, good.subarray(0, 63))).toBe(false);
    expect(await verifier.verify(pem, data, Buffer.concat([good, Buffer.alloc(1)]))).toBe(false);
    expect(await verifier.verify(pem, data, Buffer.alloc(0))).toBe(false);
  });

  it('refuses the malleated signature (S + L): non-canonical S', async () => {
    expect(leToBig(malleated.subarray(32))).toBeGreaterThanOrEqual(L);
    // The oracle in strict (RFC 8032) mode refuses it too, so the check is on canonical S.
    expect(await ed.verifyAsync(malleated, data, raw)).toBe(false);
    expect(await verifier.verify(pem, data, malleated)).toBe(false);
  });

  it('verifies nothing with a PEM that is not an Ed25519 public key', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'pem', type: 'spki' });
    expect(await verifier.verify('not a key', data, good)).toBe(false);
    expect(await verifier.verify(rsa as string, data, good)).toBe(false);
  });

  it('verifyAny: true when one candidate verifies, false when none does', async () => {
    const other = Buffer.from('other');
    expect(await verifier.verifyAny(pem, [other, data], good)).toBe(true);
    expect(await verifier.verifyAny(pem, [other], good)).toBe(false);
    expect(await verifier.verifyAny(pem, [], good)).toBe(false);
  });
});

describe('the key cache', () => {
  it('keeps one parsed key per PEM, at most the bound; a key that left is parsed again on use', async () => {
    const v = createVerifier('auto', 2);
    const [a, b, c] = [keypair(), keypair(), keypair()];
    const sig = (k: typeof a) => sign(null, data, k.privateKey);
    expect(await v.verify(a.pem, data, sig(a))).toBe(true);
    expect(await v.verify(a.pem, data, sig(a))).toBe(true);
    expect(v.cachedKeys()).toBe(1);
    expect(await v.verify(b.pem, data, sig(b))).toBe(true);
    expect(await v.verify(a.pem, data, sig(a))).toBe(true);
    expect(await v.verify(c.pem, data, sig(c))).toBe(true);
    expect(v.cachedKeys()).toBe(2);
    for (const k of [a, b, c]) expect(await v.verify(k.pem, data, sig(k))).toBe(true);
    // A key's signature never verifies under another key, cached or not.
    expect(await v.verify(b.pem, data, sig(a))).toBe(false);
  });

  it('does not keep PEMs that failed to parse', async () => {
    const v = createVerifier('auto');
    await v.verify('junk', data, good);
    expect(v.cachedKeys()).toBe(0);
  });
});
