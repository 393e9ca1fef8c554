// Both Ed25519 verifiers (sodium-native and node:crypto) accept a genuine signature and refuse
// tampering, a malleated signature (S + L, same R: non-canonical) and malformed lengths, checked
// against @noble/ed25519 as the oracle. The server picks one with AMP_ED25519 (auto|sodium|node).

import { generateKeyPairSync, sign } from 'node:crypto';
import * as ed from '@noble/ed25519';
import { afterAll, describe, expect, it } from 'vitest';
import { useEd25519Verifier, verifyEd25519 } from '../../src/crypto/keys.js';

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

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
const data = Buffer.from('alice@acme.aimaestro.local|bob@acme.aimaestro.local|Hello|normal||hash', 'utf8');
const good = sign(null, data, privateKey);
const malleated = Buffer.concat([good.subarray(0, 32), bigToLe(leToBig(good.subarray(32)) + L, 32)]);

afterAll(() => {
  useEd25519Verifier('auto');
});

describe.each(['sodium', 'node'] as const)('verifyEd25519 with %s', (choice) => {
  it('selects the verifier asked for', () => {
    expect(useEd25519Verifier(choice)).toBe(choice === 'sodium' ? 'sodium-native' : 'node:crypto');
  });

  it('accepts a genuine signature, as the oracle does', async () => {
    useEd25519Verifier(choice);
    expect(await ed.verifyAsync(good, data, raw)).toBe(true);
    expect(await verifyEd25519(publicKey, data, good)).toBe(true);
  });

  it('refuses tampered data, a flipped signature bit, and wrong lengths', async () => {
    useEd25519Verifier(choice);
    const flipped = Buffer.from(good);
    flipped[10]! ^= 1;
    expect(await verifyEd25519(publicKey, Buffer.concat([data, Buffer.from('x')]), good)).toBe(false);
    expect(await verifyEd25519(publicKey, data, flipped)).toBe(false);
    expect(await verifyEd25519(publicKey, data, good.subarray(0, 63))).toBe(false);
    expect(await verifyEd25519(publicKey, data, Buffer.concat([good, Buffer.alloc(1)]))).toBe(false);
    expect(await verifyEd25519(publicKey, data, Buffer.alloc(0))).toBe(false);
  });

  it('refuses the malleated signature (S + L): non-canonical S', async () => {
    useEd25519Verifier(choice);
    expect(leToBig(malleated.subarray(32))).toBeGreaterThanOrEqual(L);
    // The oracle in strict (RFC 8032) mode refuses it too, so the check is on canonical S.
    expect(await ed.verifyAsync(malleated, data, raw)).toBe(false);
    expect(await verifyEd25519(publicKey, data, malleated)).toBe(false);
  });
});
