// Decoding a keypair rotation (spec §6, POST auth/rotate-keys). Shape, algorithm and the proof's
// encoding are checked here; parsing the PEM (node:crypto key objects) and verifying the proof
// are left to the caller.

import { AmpError, invalidField, missingField } from './errors.js';
import { decodeSignature } from './route-body.js';

export interface RotateKeysRequest {
  /** The new public key exactly as sent: the proof may sign these bytes. Not parsed yet. */
  new_public_key: string;
  /** The current key's Ed25519 signature (64 bytes) over the new key. */
  proof: Buffer;
}

export function decodeRotateKeysBody(body: unknown): RotateKeysRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AmpError('invalid_request', 'Request body must be a JSON object');
  }
  const b = body as Record<string, unknown>;
  const pem = b.new_public_key;
  if (pem === undefined || pem === null) throw missingField('new_public_key');
  if (typeof pem !== 'string') throw invalidField('new_public_key', 'new_public_key must be a PEM string');
  const algorithm = b.key_algorithm ?? 'Ed25519';
  if (typeof algorithm !== 'string' || algorithm.toLowerCase() !== 'ed25519') {
    throw new AmpError(
      'invalid_field',
      `key_algorithm '${String(algorithm)}' is not supported by this provider; only Ed25519 is accepted`,
      { field: 'key_algorithm', details: { supported: ['Ed25519'] } },
    );
  }
  if (b.proof === undefined || b.proof === null) throw missingField('proof');
  const proof = typeof b.proof === 'string' ? decodeSignature(b.proof) : null;
  if (!proof) throw invalidField('proof', 'proof must be a base64 Ed25519 signature of 64 bytes');
  return { new_public_key: pem, proof };
}
