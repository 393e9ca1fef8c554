// Digests and comparisons of secrets: SHA-256 in the encodings the protocol writes, and a
// comparison whose time does not depend on where two secrets differ.

import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

/** Lowercase hex SHA-256; strings are hashed as UTF-8. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Padded base64 SHA-256; strings are hashed as UTF-8. */
export function sha256Base64(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('base64');
}

/**
 * Do two secrets (registration keys, fingerprints) have the same UTF-8 bytes? Constant time in
 * their content; only a length difference answers early (a length is no secret here).
 */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A SHA-256 fed chunk by chunk (files too large to hold in memory at once). */
export interface Sha256Stream {
  update(chunk: Uint8Array): void;
  /** Lowercase hex; call once, after the last chunk. */
  digestHex(): string;
}

export function createSha256(): Sha256Stream {
  const hash = createHash('sha256');
  return {
    update: (chunk) => void hash.update(chunk),
    digestHex: () => hash.digest('hex'),
  };
}

/** Unpadded base64url HMAC-SHA256 of `data` (signed URLs). */
export function hmacSha256(key: Uint8Array, data: string): string {
  return createHmac('sha256', key).update(data, 'utf8').digest('base64url');
}
