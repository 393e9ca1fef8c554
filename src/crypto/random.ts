// Randomness from the CSPRNG for ids, codes and name suggestions. Message ids and API keys are
// made in proto/ids.ts (pure protocol code with its own pooled buffer).

import { randomBytes, randomInt as cryptoRandomInt, randomUUID as cryptoRandomUUID } from 'node:crypto';

/** A version 4 UUID (registration ids, audit event ids, JWT ids). */
export function randomUUID(): string {
  return cryptoRandomUUID();
}

/** A uniform integer in [0, max). */
export function randomInt(max: number): number {
  return cryptoRandomInt(max);
}

/** `bytes` random bytes as unpadded base64url. */
export function randomToken(bytes: number): string {
  return randomBytes(bytes).toString('base64url');
}

/** `bytes` random bytes as lowercase hex. */
export function randomHex(bytes: number): string {
  return randomBytes(bytes).toString('hex');
}
