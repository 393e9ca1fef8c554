// Ed25519 key handling: PEM parsing, fingerprints (spec §5), API key hashing (§6), and signature
// verification (the server's hot path: libsodium via sodium-native, node:crypto as the fallback;
// @noble/ed25519 is the test oracle).

import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';

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

interface Sodium {
  crypto_sign_verify_detached(signature: Buffer, message: Buffer, publicKey: Buffer): boolean;
}

/** libsodium through sodium-native, or undefined where its native binary cannot load. */
function loadSodium(): Sodium | undefined {
  try {
    return createRequire(import.meta.url)('sodium-native') as Sodium;
  } catch {
    return undefined;
  }
}
const sodiumNative = loadSodium();
let sodium = sodiumNative;

export type Ed25519Verifier = 'sodium-native' | 'node:crypto';

/**
 * Pick the verifier (config `ed25519`: auto, sodium, node) for this process; returns the one in
 * use. Asking for sodium where its binary does not load is an error, not a silent fallback.
 */
export function useEd25519Verifier(choice: 'auto' | 'sodium' | 'node'): Ed25519Verifier {
  if (choice === 'sodium' && !sodiumNative)
    throw new Error('AMP_ED25519=sodium, but sodium-native cannot be loaded on this machine (use auto or node)');
  sodium = choice === 'node' ? undefined : sodiumNative;
  return sodium ? 'sodium-native' : 'node:crypto';
}

/** Raw 32-byte keys of KeyObjects, so the cached KeyObject of an agent is all callers keep. */
const rawKeys = new WeakMap<KeyObject, Buffer>();
function rawOf(key: KeyObject): Buffer {
  let raw = rawKeys.get(key);
  if (!raw) rawKeys.set(key, (raw = key.export({ format: 'der', type: 'spki' }).subarray(ED25519_SPKI_PREFIX.length)));
  return raw;
}

/**
 * Verify an Ed25519 signature. Measured on the bench (bench/README.md): libsodium verifies in
 * about a third of the time node:crypto takes here, even with node:crypto's work moved to the
 * libuv pool, so sodium-native runs on the event loop (tens of microseconds) and node:crypto
 * with a callback is the fallback. Both refuse non-canonical signatures (S >= L), so malleated
 * signatures do not verify; libsodium also refuses small-order keys and R values.
 */
export function verifyEd25519(key: KeyObject, data: Buffer, signature: Buffer): Promise<boolean> {
  if (sodium) {
    if (signature.length !== 64) return Promise.resolve(false);
    return Promise.resolve(sodium.crypto_sign_verify_detached(signature, data, rawOf(key)));
  }
  return new Promise((resolve) => {
    cryptoVerify(null, data, key, signature, (err, ok) => resolve(!err && ok));
  });
}
