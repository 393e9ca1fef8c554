// Ed25519 public keys: PEM parsing, fingerprints (spec §5) and API key hashing (§6). Signatures
// are checked by the server's one Ed25519 verifier (verifier.ts).

import { createPublicKey, type KeyObject } from 'node:crypto';
import { sha256Base64, sha256Hex } from './hash.js';

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

/** The raw 32 bytes of an Ed25519 public KeyObject. */
export function rawEd25519Key(key: KeyObject): Buffer {
  return key.export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length);
}

/** `SHA256:` + padded base64 of SHA-256 over the given bytes. */
export function fingerprintOf(bytes: Uint8Array): string {
  return 'SHA256:' + sha256Base64(bytes);
}

/** API keys are stored only as the lowercase hex SHA-256 of the whole key string. */
export function hashApiKey(apiKey: string): string {
  return sha256Hex(apiKey);
}
