// Ed25519 key handling: PEM parsing, fingerprints (spec §5), API key hashing (§6), and signature
// verification through node:crypto (the server's hot path; @noble/ed25519 is the test oracle).

import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';

/** DER prefix of an Ed25519 SubjectPublicKeyInfo; the raw 32-byte key follows it. */
const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export interface ParsedPublicKey {
  keyObject: KeyObject;
  raw: Buffer;
  spkiDer: Buffer;
  /** Canonical re-exported PEM (no trailing newline). */
  pem: string;
  fingerprint: string;
  fingerprintRaw: string;
}

export type KeyProblem = 'private_key' | 'not_pem' | 'not_ed25519';

/** Parse an SPKI PEM public key; only Ed25519 keys are accepted. */
export function parsePublicKeyPem(pem: string): ParsedPublicKey | KeyProblem {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) return 'private_key';
  if (!/-----BEGIN PUBLIC KEY-----/.test(pem)) return 'not_pem';
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: pem, format: 'pem' });
  } catch {
    return 'not_pem';
  }
  if (keyObject.asymmetricKeyType !== 'ed25519') return 'not_ed25519';
  return fromKeyObject(keyObject);
}

function fromKeyObject(keyObject: KeyObject): ParsedPublicKey {
  const spkiDer = keyObject.export({ format: 'der', type: 'spki' });
  const raw = spkiDer.subarray(ED25519_SPKI_PREFIX.length);
  const pem = (keyObject.export({ format: 'pem', type: 'spki' }) as string).trim();
  return { keyObject, raw, spkiDer, pem, fingerprint: fingerprintOf(spkiDer), fingerprintRaw: fingerprintOf(raw) };
}

/** `SHA256:` + padded base64 of SHA-256 over the given bytes. */
export function fingerprintOf(bytes: Uint8Array): string {
  return 'SHA256:' + createHash('sha256').update(bytes).digest('base64');
}

/** API keys are stored only as the lowercase hex SHA-256 of the whole key string. */
export function hashApiKey(apiKey: string): string {
  return createHash('sha256').update(apiKey, 'utf8').digest('hex');
}

/**
 * Verify an Ed25519 signature on the libuv thread pool, keeping the event loop free.
 * OpenSSL refuses non-canonical signatures (S >= L), so malleated signatures do not verify.
 */
export function verifyEd25519(key: KeyObject, data: Buffer, signature: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    cryptoVerify(null, data, key, signature, (err, ok) => resolve(!err && ok));
  });
}
