// Signatures on provider-to-outside HTTP requests (spec §18, §19.1, §19.2). All three sign the same
// bytes, "<timestamp>.<raw body>", with the body exactly as sent (its bytes, never a re-encoding):
// - webhooks (`X-AMP-Signature`) and mesh hosts with a shared secret (`X-AMP-Mesh-Auth`):
//   `sha256=` + lowercase hex HMAC-SHA256(secret, signed bytes);
// - federation (`X-AMP-Signature`) and mesh hosts with a key (`X-AMP-Mesh-Signature`): base64
//   Ed25519 by the provider key over the signed bytes, checked by the server's one verifier.
// Freshness (±300 s) and "each MAC once" are the receiver's checks: see timestampProblem() here
// and ReplayCache (replay.ts).

import { createHmac, sign, timingSafeEqual, type KeyObject } from 'node:crypto';
import type { Ed25519Verifier } from './verifier.js';

/** How far a request timestamp may be from the receiver's clock (§18, §19), in seconds. */
export const REQUEST_TIMESTAMP_WINDOW_S = 300;

const HMAC_HEADER_RE = /^sha256=([0-9a-f]{64})$/;
/** Exactly 64 bytes as padded standard base64 (86 characters, then `==`). */
const ED25519_BASE64_RE = /^[A-Za-z0-9+/]{85}[AQgw]==$/;

/** The bytes every request signature covers: `<timestamp>.` then the raw body. */
export function requestSignedBytes(timestamp: string, rawBody: string | Uint8Array): Buffer {
  const body = typeof rawBody === 'string' ? Buffer.from(rawBody, 'utf8') : rawBody;
  return Buffer.concat([Buffer.from(`${timestamp}.`, 'utf8'), body]);
}

/** `sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>` (X-AMP-Signature of a webhook). */
export function hmacRequestHeader(
  secret: string | Uint8Array,
  timestamp: string,
  rawBody: string | Uint8Array,
): string {
  return 'sha256=' + hmacOf(secret, timestamp, rawBody).toString('hex');
}

/**
 * Does `header` carry the HMAC of this request? Only the exact form `sha256=` + 64 lowercase hex
 * digits is accepted; the MACs are compared in constant time.
 */
export function verifyHmacRequestHeader(
  secret: string | Uint8Array,
  timestamp: string,
  rawBody: string | Uint8Array,
  header: string | undefined,
): boolean {
  const m = header === undefined ? null : HMAC_HEADER_RE.exec(header);
  if (!m) return false;
  return timingSafeEqual(Buffer.from(m[1], 'hex'), hmacOf(secret, timestamp, rawBody));
}

function hmacOf(secret: string | Uint8Array, timestamp: string, rawBody: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(requestSignedBytes(timestamp, rawBody)).digest();
}

/** Webhook `X-AMP-Signature` (§18). */
export const webhookSignatureHeader = hmacRequestHeader;
/** Mesh `X-AMP-Mesh-Auth` with a shared secret (§19.2): the same construction. */
export const meshAuthHeader = hmacRequestHeader;

/** Base64 Ed25519 signature by `privateKey` (the provider or mesh host key) over the request. */
export function signRequest(privateKey: KeyObject, timestamp: string, rawBody: string | Uint8Array): string {
  return sign(null, requestSignedBytes(timestamp, rawBody), privateKey).toString('base64');
}

/**
 * Does `signatureBase64` (X-AMP-Signature of a federation request, X-AMP-Mesh-Signature) verify
 * under `publicKeyPem`? The signature must be exactly 64 bytes in padded standard base64.
 */
export async function verifyRequestSignature(
  verifier: Ed25519Verifier,
  publicKeyPem: string,
  timestamp: string,
  rawBody: string | Uint8Array,
  signatureBase64: string | undefined,
): Promise<boolean> {
  if (signatureBase64 === undefined || !ED25519_BASE64_RE.test(signatureBase64)) return false;
  const signature = Buffer.from(signatureBase64, 'base64');
  return verifier.verify(publicKeyPem, requestSignedBytes(timestamp, rawBody), signature);
}

/**
 * Why a request timestamp (decimal Unix seconds, as in X-AMP-Timestamp) is not acceptable now, or
 * undefined when it is: `malformed` (not 1-12 decimal digits), `skewed` (outside ±window).
 */
export function timestampProblem(
  timestamp: string | undefined,
  nowMs: number = Date.now(),
  windowS: number = REQUEST_TIMESTAMP_WINDOW_S,
): 'malformed' | 'skewed' | undefined {
  if (timestamp === undefined || !/^[0-9]{1,12}$/.test(timestamp)) return 'malformed';
  return Math.abs(Math.floor(nowMs / 1000) - Number(timestamp)) > windowS ? 'skewed' : undefined;
}
