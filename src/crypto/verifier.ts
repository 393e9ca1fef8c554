// The server's one Ed25519 verifier (DESIGN: one verifier object per server, keys cached), made by
// createVerifier(config.ed25519) in the composition root and used by AMP (message signatures,
// signed WebSocket auth, key recovery and rotation proofs) and AID (token, status and identity
// document proofs) alike. It keeps each public key parsed, so a PEM is parsed once per key.
//
// Measured on the bench (bench/README.md): libsodium verifies in about a third of the time
// node:crypto takes here, even with node:crypto's work moved to the libuv pool, so sodium-native
// runs on the event loop (tens of microseconds) and node:crypto with a callback is the fallback.
// Both refuse non-canonical signatures (S >= L), so malleated signatures do not verify; libsodium
// also refuses small-order keys and R values. @noble/ed25519 is the test oracle.

import { createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import { createRequire } from 'node:module';
import { rawEd25519Key } from './keys.js';

/** Config `ed25519` (AMP_ED25519). */
export type VerifierChoice = 'auto' | 'sodium' | 'node';
/** The implementation in use, for the start-up log line. */
export type VerifierName = 'sodium-native' | 'node:crypto';

/** Parsed keys kept per verifier; past it, the least recently used key is parsed again on its next use. */
export const MAX_CACHED_KEYS = 10_000;

export interface Ed25519Verifier {
  readonly name: VerifierName;
  /**
   * Does `signature` verify `data` under this SPKI PEM public key? A PEM that is not an Ed25519
   * public key verifies nothing.
   */
  verify(publicKeyPem: string, data: Buffer, signature: Buffer): Promise<boolean>;
  /**
   * The same answer at once where the implementation verifies synchronously (libsodium), so a
   * caller can stay synchronous; undefined where it cannot (node:crypto: use verify()).
   */
  verifyNow(publicKeyPem: string, data: Buffer, signature: Buffer): boolean | undefined;
  /** Does `signature` verify any of `candidates` (tried in order, up to the first that does)? */
  verifyAny(publicKeyPem: string, candidates: Iterable<Buffer>, signature: Buffer): Promise<boolean>;
  /** Keys held parsed now. */
  cachedKeys(): number;
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

/** One implementation: the form of a key it verifies with, and the check itself. */
interface Backend<K> {
  readonly name: VerifierName;
  prepare(key: KeyObject): K;
  check(key: K, data: Buffer, signature: Buffer): Promise<boolean>;
  /** The check without a promise, where the implementation is synchronous. */
  checkNow?(key: K, data: Buffer, signature: Buffer): boolean;
}

const nodeBackend: Backend<KeyObject> = {
  name: 'node:crypto',
  prepare: (key) => key,
  check: (key, data, signature) =>
    new Promise((resolve) => cryptoVerify(null, data, key, signature, (err, ok) => resolve(!err && ok))),
};

function sodiumBackend(sodium: Sodium): Backend<Buffer> {
  return {
    name: 'sodium-native',
    prepare: rawEd25519Key,
    check: (raw, data, signature) => Promise.resolve(sodium.crypto_sign_verify_detached(signature, data, raw)),
    checkNow: (raw, data, signature) => sodium.crypto_sign_verify_detached(signature, data, raw),
  };
}

/**
 * Pick the verifier for this server (auto: sodium where its binary loads, else node). Asking for
 * sodium where it does not load is an error, not a silent fallback.
 */
export function createVerifier(choice: VerifierChoice, maxKeys: number = MAX_CACHED_KEYS): Ed25519Verifier {
  if (choice === 'sodium' && !sodiumNative)
    throw new Error('AMP_ED25519=sodium, but sodium-native cannot be loaded on this machine (use auto or node)');
  if (choice !== 'node' && sodiumNative) return new CachingVerifier(sodiumBackend(sodiumNative), maxKeys);
  return new CachingVerifier(nodeBackend, maxKeys);
}

class CachingVerifier<K> implements Ed25519Verifier {
  readonly name: VerifierName;
  /** PEM -> prepared key; Map order is least recently used first. */
  private readonly keys = new Map<string, K>();

  constructor(
    private readonly backend: Backend<K>,
    private readonly maxKeys: number,
  ) {
    this.name = backend.name;
  }

  verify(publicKeyPem: string, data: Buffer, signature: Buffer): Promise<boolean> {
    if (signature.length !== 64) return Promise.resolve(false);
    const key = this.key(publicKeyPem);
    return key === undefined ? Promise.resolve(false) : this.backend.check(key, data, signature);
  }

  verifyNow(publicKeyPem: string, data: Buffer, signature: Buffer): boolean | undefined {
    const checkNow = this.backend.checkNow;
    if (!checkNow) return undefined;
    if (signature.length !== 64) return false;
    const key = this.key(publicKeyPem);
    return key === undefined ? false : checkNow(key, data, signature);
  }

  async verifyAny(publicKeyPem: string, candidates: Iterable<Buffer>, signature: Buffer): Promise<boolean> {
    for (const data of candidates) if (await this.verify(publicKeyPem, data, signature)) return true;
    return false;
  }

  cachedKeys(): number {
    return this.keys.size;
  }

  private key(pem: string): K | undefined {
    const hit = this.keys.get(pem);
    if (hit !== undefined) {
      this.keys.delete(pem);
      this.keys.set(pem, hit);
      return hit;
    }
    const parsed = parseEd25519(pem);
    if (!parsed) return undefined;
    const key = this.backend.prepare(parsed);
    if (this.keys.size >= this.maxKeys) this.keys.delete(this.keys.keys().next().value as string);
    this.keys.set(pem, key);
    return key;
  }
}

/** The Ed25519 public key in `pem`, or undefined (not parsed, or another algorithm); not cached. */
function parseEd25519(pem: string): KeyObject | undefined {
  try {
    const key = createPublicKey({ key: pem, format: 'pem' });
    return key.asymmetricKeyType === 'ed25519' ? key : undefined;
  } catch {
    return undefined;
  }
}
